"""Starting structures of MD protocols, written as LAMMPS data files.

Lattices come from :mod:`meltpot.sampling.structures` (the sampler's builders): a
near-cubic supercell of about ``n_atoms`` (liquids start from fcc and are melted by the
protocol), or a supercell of ``cells`` unit cells (two-phase boxes, elongated along z),
randomly decorated with ``composition`` (exact counts, seeded). Or a given file (any format
ASE reads; its last frame).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

from ..errors import ConfigError
from ..sampling.structures import (HCP_C_OVER_A, decorate, initial_structure, lattice_constant,
                                   reference_volume_per_atom, volume_per_atom_from_density)


def volume_per_atom(elements: Sequence[str], composition: Mapping[str, float] | None, *,
                    density: float | None = None, volume: float | None = None, units: str = "metal",
                    masses: Mapping[str, float] | None = None) -> float:
    """Å³ (σ³) per atom: ``volume`` if given, else from the mass ``density`` (g/cm³, metal),
    else the elements' reference crystal (Vegard average; lj: 1)."""
    if volume is not None:
        return float(volume)
    comp = composition or {elements[0]: 1.0}
    if density is not None:
        if units != "metal":
            raise ConfigError("a mass density (g/cm³) needs metal units; give volume_per_atom in lj units")
        return volume_per_atom_from_density(density, comp, list(elements), masses)
    if units == "lj":
        return 1.0
    return reference_volume_per_atom(comp, list(elements))


def lattice_structure(phase: str, n_atoms: int, vol: float, elements: Sequence[str],
                      composition: Mapping[str, float] | None, seed: int) -> Atoms:
    """About ``n_atoms`` atoms of ``phase`` (fcc for ``liquid``) at ``vol`` per atom."""
    rng = np.random.default_rng(seed)
    return initial_structure(phase, int(n_atoms), vol, dict(composition or {}), list(elements), rng)


def cells_structure(phase: str, cells: Sequence[int], vol: float, elements: Sequence[str],
                    composition: Mapping[str, float] | None, seed: int) -> Atoms:
    """``cells`` = (nx, ny, nz) cubic (fcc, bcc) or orthorhombic (hcp) unit cells of ``phase``."""
    if len(cells) != 3 or any(int(c) < 1 for c in cells):
        raise ConfigError(f"cells = {list(cells)} must be three positive integers")
    a = lattice_constant(phase, vol)
    if phase in ("fcc", "bcc"):
        unit = bulk(elements[0], phase, a=a, cubic=True)
    elif phase == "hcp":
        unit = bulk(elements[0], "hcp", a=a, c=a * HCP_C_OVER_A, orthorhombic=True)
    else:
        raise ConfigError(f"crystal phase {phase!r}; allowed: fcc, bcc, hcp")
    atoms = unit.repeat([int(c) for c in cells])
    atoms.pbc = True
    return decorate(atoms, dict(composition or {}), list(elements), np.random.default_rng(seed))


def read_structure(path: str | os.PathLike, elements: Sequence[str]) -> Atoms:
    """Last frame of a structure file (extxyz, LAMMPS data/dump, POSCAR, …)."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"structure file {path} does not exist")
    try:
        atoms = read(path, index=-1)
    except Exception as exc:  # noqa: BLE001 - ASE raises many kinds
        raise ConfigError(f"cannot read structure file {path}: {exc}") from None
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(elements))
    if unknown:
        raise ConfigError(f"structure file {path} has element(s) {unknown} not in {list(elements)}")
    return atoms


def write_data(atoms: Atoms, path: str | os.PathLike, elements: Sequence[str], units: str = "metal") -> Path:
    """LAMMPS data file (atom_style atomic) with element ``i`` as type ``i + 1``; the cell is
    rotated into LAMMPS's lower-triangular form when needed. Masses are not written (the
    potential's ``mass`` commands set them)."""
    from ase.io.lammpsdata import write_lammps_data

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # ASE converts lengths from Å to the target units; lj lengths are already reduced, so the
    # identity conversion ("metal": Å → Å) is the right one for both (ASE has no "lj" unit set)
    write_lammps_data(str(path), atoms, specorder=list(elements), atom_style="atomic", units="metal",
                      masses=False, force_skew=False)
    return path
