"""Reference engines: label frames with energy, forces and stress, and run MD.

``make_engine(config["reference"], elements, units)`` builds the engine a config names. The
interface is :mod:`.base`, the helpers both engines share :mod:`.common`; the engines are
:mod:`.lammps_engine`, :mod:`.ase_engine` and the DFT codes of :mod:`.dft` (imported only when built: the factory lives
here, above them, so no module imports back into the engines).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError
from .base import MDSegment, ReferenceEngine

__all__ = ["MDSegment", "ReferenceEngine", "make_engine"]


def make_engine(spec: dict, elements: Sequence[str], units: str = "metal", workdir=None) -> ReferenceEngine:
    """Build the engine named by a config's ``reference`` block (``workdir``: the folder for a
    DFT code's own files, one per job)."""
    kind = spec.get("engine")
    if kind == "lammps":
        from .lammps_engine import LammpsEngine

        return LammpsEngine(elements, units=units, pair_style=spec["pair_style"],
                            pair_coeff=spec.get("pair_coeff", []), masses=spec.get("masses"),
                            extra_commands=spec.get("commands", []),
                            base_dir=spec.get("base_dir"))
    if kind == "ase":
        from .ase_engine import AseEngine

        return AseEngine(elements, units=units, calculator=spec["calculator"],
                         kwargs=spec.get("kwargs", {}), masses=spec.get("masses"),
                         thermostat=spec.get("thermostat", "nose-hoover"))
    if kind in ("gpaw", "cp2k"):
        from .dft import make_dft_engine

        return make_dft_engine(spec, elements, units, workdir=workdir)
    raise ConfigError(f"reference.engine {kind!r} unknown; allowed: lammps, ase, gpaw, cp2k")
