"""Frame conventions shared by every stage.

A *frame* is an :class:`ase.Atoms` whose labels live in a
:class:`~ase.calculators.singlepoint.SinglePointCalculator` (``energy`` in eV, ``forces``
in eV/Å, ``stress`` in eV/Å³ as the 6-vector in Voigt order xx, yy, zz, yz, xz, xy,
ASE's sign convention: stress = −pressure tensor). In Lennard-Jones runs (``units: lj``)
the same keys hold reduced units (ε, ε/σ, ε/σ³).

``energy`` is always the force-consistent energy (the electronic free energy under
smearing, VASP's TOTEN): the forces are its derivatives. Where a source also gives the
zero-smearing extrapolation it is kept in ``atoms.info["energy_zero"]``.

Metadata tags live in ``atoms.info`` under the keys of :data:`TAG_KEYS`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

#: Tags written into ``atoms.info`` of every sampled or imported frame.
TAG_KEYS = (
    "state_id",     # str: thermodynamic state (one trajectory, or one step of a branch)
    "branch",       # str: branch id (quench/heating) or "" for a single state
    "phase",        # str: liquid, fcc, bcc, hcp, imported, ...
    "T_target",     # float: target temperature (K, or ε/k_B in lj units)
    "P_target",     # float: target pressure (GPa, or reduced in lj units); nan under NVT
    "composition",  # str: e.g. "Al0.75Ni0.25"
    "engine",       # str: reference engine that labelled the frame
    "units",        # str: "metal" (eV, Å) or "lj" (reduced)
)


def attach_labels(atoms: Atoms, energy: float, forces: np.ndarray,
                  stress: np.ndarray | None = None, **info) -> Atoms:
    """Return ``atoms`` (modified in place) carrying the given labels and info tags.

    ``stress`` may be a Voigt 6-vector or a 3×3 matrix.
    """
    results = {"energy": float(energy), "forces": np.asarray(forces, dtype=float).reshape(-1, 3)}
    if stress is not None:
        s = np.asarray(stress, dtype=float)
        if s.shape == (3, 3):
            s = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        results["stress"] = s.reshape(6)
    results["free_energy"] = results["energy"]
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info.update(info)
    return atoms


def mark_source(atoms: Atoms, path, index: int) -> Atoms:
    """Tag a frame read from a file: ``info["source"]`` the file, ``info["source_index"]`` its
    0-based position there."""
    atoms.info["source"] = str(path)
    atoms.info["source_index"] = int(index)
    return atoms


def labels(atoms: Atoms) -> dict:
    """The labels of a frame as a dict (``energy``, ``forces`` and, if present, ``stress``).

    Missing labels are absent from the dict; nothing is computed.
    """
    calc = atoms.calc
    if calc is None:
        return {}
    results = getattr(calc, "results", {})
    out = {}
    for key in ("energy", "forces", "stress"):
        if key in results and results[key] is not None:
            out[key] = np.asarray(results[key], dtype=float)
    if "free_energy" in results and results["free_energy"] is not None:
        # force-consistent energy wins over the zero-smearing extrapolation
        out["energy"] = np.asarray(results["free_energy"], dtype=float)
    return out


def composition_string(symbols, order=None) -> str:
    """``"Al0.75Ni0.25"`` from a list of chemical symbols (fractions to 4 digits)."""
    symbols = list(symbols)
    n = len(symbols)
    elements = order if order is not None else sorted(set(symbols))
    parts = []
    for el in elements:
        c = symbols.count(el)
        if c:
            parts.append(f"{el}{c / n:.4g}")
    return "".join(parts)


def tags(atoms: Atoms) -> Mapping:
    """The metadata tags of a frame (missing ones as None)."""
    return {k: atoms.info.get(k) for k in TAG_KEYS}
