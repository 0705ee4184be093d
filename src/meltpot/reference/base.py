"""The engine interface shared by the LAMMPS and ASE reference engines.

An engine does two things:

* ``label(atoms)``: a single-point calculation; returns a copy of ``atoms`` carrying
  energy (force-consistent), forces and stress (see :mod:`meltpot.data.frames`).
* ``md(atoms, segments, seed)``: one continuous MD trajectory made of consecutive
  :class:`MDSegment` s (e.g. melt, equilibrate, produce; or the steps of a quench
  branch); yields ``(segment_index, frame)`` for every sampled frame.

Units: the engine's ``units`` is ``"metal"`` (eV, Å, ps, K, GPa for pressures in this
interface) or ``"lj"`` (reduced ε, σ, τ, with k_B = 1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ase import Atoms

from ..errors import ConfigError


class RelaxationTimes:
    """``t_damp``/``p_damp`` of a settings object with ``tdamp``, ``pdamp`` (None = default)
    and ``timestep``: MD segments here, protocol settings in :mod:`meltpot.md.protocols`."""

    @property
    def t_damp(self) -> float:
        return thermostat_time(self.tdamp, self.timestep)

    @property
    def p_damp(self) -> float:
        return barostat_time(self.pdamp, self.timestep)


@dataclass(frozen=True)
class MDSegment(RelaxationTimes):
    """One stretch of an MD run with fixed settings.

    Attributes
    ----------
    ensemble: ``"nvt"``, ``"npt"`` or ``"nve"``.
    temperature: target temperature at the start (K, or reduced).
    temperature_stop: target at the end (linear ramp); ``None`` = constant.
    steps: number of MD steps.
    timestep: ps (metal) or τ (lj).
    sample_every: keep a frame every this many steps (0: keep none, e.g. equilibration).
    pressure: target pressure for NPT (GPa in metal units, reduced in lj); ignored otherwise.
    barostat: ``"iso"``, ``"aniso"`` or ``"tri"`` coupling for NPT.
    tdamp, pdamp: thermostat/barostat relaxation times (same unit as timestep);
        ``None`` = 100 and 1000 timesteps.
    volume: if given, the cell is scaled affinely (positions remapped) to this volume
        (Å³ or σ³) before the segment starts: the thesis's "resize to the density at T".
    velocity_seed: if given, velocities are drawn from Maxwell–Boltzmann at
        ``temperature`` with this seed (zero total momentum) before the segment.
    label: free text carried into the frames' ``info["segment"]``.
    """

    ensemble: str
    temperature: float
    steps: int
    timestep: float
    sample_every: int = 0
    temperature_stop: float | None = None
    pressure: float = 0.0
    barostat: str = "iso"
    tdamp: float | None = None
    pdamp: float | None = None
    volume: float | None = None
    velocity_seed: int | None = None
    label: str = ""

    def __post_init__(self):
        if self.ensemble not in ("nvt", "npt", "nve"):
            raise ConfigError(f"MD ensemble {self.ensemble!r} unknown; allowed: nvt, npt, nve")
        if self.barostat not in ("iso", "aniso", "tri"):
            raise ConfigError(f"barostat {self.barostat!r} unknown; allowed: iso, aniso, tri")
        if self.steps < 0 or self.sample_every < 0:
            raise ConfigError("MD steps and sample_every must be >= 0")
        if self.timestep <= 0:
            raise ConfigError(f"MD timestep must be > 0, got {self.timestep}")

def thermostat_time(tdamp: float | None, timestep: float) -> float:
    """Nosé–Hoover thermostat relaxation time: ``tdamp``, or 100 timesteps (LAMMPS's advice)."""
    return tdamp if tdamp is not None else 100.0 * timestep


def barostat_time(pdamp: float | None, timestep: float) -> float:
    """Barostat relaxation time: ``pdamp``, or 1000 timesteps (LAMMPS's advice)."""
    return pdamp if pdamp is not None else 1000.0 * timestep


class ReferenceEngine(ABC):
    """Labels frames and runs MD with a reference potential (see module docstring)."""

    #: short name written into every frame's ``info["engine"]``
    name: str = "engine"

    def __init__(self, elements: Sequence[str], units: str = "metal"):
        if units not in ("metal", "lj"):
            raise ConfigError(f"units {units!r} unknown; allowed: metal, lj")
        self.elements = list(elements)
        self.units = units

    @abstractmethod
    def label(self, atoms: Atoms) -> Atoms:
        """Copy of ``atoms`` with energy, forces and stress attached."""

    @abstractmethod
    def md(self, atoms: Atoms, segments: Sequence[MDSegment], seed: int) -> Iterator[tuple[int, Atoms]]:
        """Run the segments back to back from ``atoms``; yield ``(segment_index, frame)``.

        Every yielded frame is labelled (energy, forces, stress) and carries
        ``info["T_inst"]`` (instantaneous kinetic temperature), ``info["step"]`` (step
        counted from the start of the run), ``info["time"]`` (same unit as timestep) and
        ``info["segment"]`` (the segment's label). Velocities are kept in the frame.
        """

    def describe(self) -> dict:
        """JSON-able description for manifests."""
        return {"engine": self.name, "units": self.units, "elements": self.elements}
