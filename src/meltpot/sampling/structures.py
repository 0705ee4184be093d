"""Initial structures: fcc/bcc/hcp supercells near a target atom count, random alloys.

Liquids start from an fcc lattice at the state's volume and are melted by the protocol.
Cells are orthorhombic (cubic for fcc/bcc), with repeats chosen so that the supercell is
as close to cubic as the lattice allows; the atom count is the nearest the lattice gives.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_masses, atomic_numbers, reference_states

from ..errors import ConfigError

AMU_PER_CM3_TO_ANGSTROM3 = 1.66053906660  # 1 amu/Å³ = 1.6605 g/cm³

#: atoms per unit cell and unit-cell volume / a³ of the orthorhombic cells we use
_LATTICES = {"fcc": (4, 1.0), "bcc": (2, 1.0), "hcp": (4, math.sqrt(3) * math.sqrt(8 / 3))}
HCP_C_OVER_A = math.sqrt(8.0 / 3.0)


def mean_mass(composition: dict, elements, masses: dict | None = None) -> float:
    """Composition-weighted atomic mass (amu)."""
    comp = composition or {elements[0]: 1.0}
    masses = masses or {}
    return sum(frac * masses.get(el, atomic_masses[atomic_numbers[el]]) for el, frac in comp.items())


def volume_per_atom_from_density(density: float, composition: dict, elements, masses=None) -> float:
    """Å³ per atom from a mass density in g/cm³."""
    return mean_mass(composition, elements, masses) * AMU_PER_CM3_TO_ANGSTROM3 / density


def reference_volume_per_atom(composition: dict, elements) -> float:
    """Vegard average of the elements' reference-crystal volumes per atom (Å³)."""
    comp = composition or {elements[0]: 1.0}
    total = 0.0
    for el, frac in comp.items():
        if frac == 0:
            continue
        ref = reference_states[atomic_numbers[el]]
        if ref is None or ref.get("symmetry") not in ("fcc", "bcc", "hcp", "diamond"):
            raise ConfigError(f"no reference crystal volume for {el}: give sampling.volume_per_atom")
        atoms = bulk(el)
        total += frac * atoms.get_volume() / len(atoms)
    return total


def lattice_constant(phase: str, volume_per_atom: float) -> float:
    """Lattice constant a (Å or σ) of ``phase`` at the given volume per atom (ideal c/a for hcp)."""
    if phase not in _LATTICES:
        raise ConfigError(f"phase {phase!r} has no lattice; allowed: {', '.join(_LATTICES)}")
    basis, vol_factor = _LATTICES[phase]
    if phase == "hcp":
        # orthorhombic hcp cell: a × √3 a × c with 4 atoms
        return (basis * volume_per_atom / (math.sqrt(3) * HCP_C_OVER_A)) ** (1 / 3)
    return (basis * volume_per_atom / vol_factor) ** (1 / 3)


def build_lattice(phase: str, n_atoms: int, volume_per_atom: float, symbol: str = "Al") -> Atoms:
    """A near-cubic supercell of ``phase`` with about ``n_atoms`` atoms at the given volume."""
    a = lattice_constant(phase, volume_per_atom)
    if phase == "fcc":
        cell = bulk(symbol, "fcc", a=a, cubic=True)
    elif phase == "bcc":
        cell = bulk(symbol, "bcc", a=a, cubic=True)
    else:
        cell = bulk(symbol, "hcp", a=a, c=a * HCP_C_OVER_A, orthorhombic=True)
    edge = (n_atoms * volume_per_atom) ** (1 / 3)
    lengths = cell.cell.lengths()
    reps = [max(1, round(edge / length)) for length in lengths]
    atoms = cell.repeat(reps)
    atoms.pbc = True
    return atoms


def decorate(atoms: Atoms, composition: dict, elements, rng: np.random.Generator) -> Atoms:
    """Assign species at random with exact counts (largest-remainder rounding)."""
    if not composition:
        atoms.set_chemical_symbols([elements[0]] * len(atoms))
        return atoms
    n = len(atoms)
    items = [(el, frac) for el, frac in composition.items() if frac > 0]
    raw = np.array([frac * n for _, frac in items])
    counts = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - counts))[: n - counts.sum()]:
        counts[k] += 1
    symbols = np.repeat([el for el, _ in items], counts)
    rng.shuffle(symbols)
    atoms.set_chemical_symbols(list(symbols))
    return atoms


def initial_structure(phase: str, n_atoms: int, volume_per_atom: float, composition: dict,
                      elements, rng: np.random.Generator) -> Atoms:
    """Starting cell of a state: a lattice (fcc for liquids), decorated with the composition."""
    lattice = "fcc" if phase == "liquid" else phase
    atoms = build_lattice(lattice, n_atoms, volume_per_atom, symbol=elements[0])
    return decorate(atoms, composition, elements, rng)
