"""Symmetry functions of ASE frames: features, and energies' forces/stress by autograd.

:class:`AtomsDescriptor` wraps the neighbour search and :class:`SymmetryFunctions` for one
frame at a time. ``with_gradients`` returns ``G`` as a function of positions and a strain
ε (cell and positions deformed by I + ε) so that for any energy E(G):
forces = −∂E/∂x and stress = (1/V) ∂E/∂ε (ASE sign convention).
"""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms

from ..errors import FrameError
from .featureset import FeatureSet
from .neighbors import neighbor_pairs, pair_vectors
from .symmetry import SymmetryFunctions


class AtomsDescriptor:
    """Features of ASE frames for a feature set (dtype and device of the computation)."""

    def __init__(self, featureset: FeatureSet, dtype: torch.dtype = torch.float64, device: str = "cpu",
                 chunk_size: int = 32, backend: str = "auto"):
        self.featureset = featureset
        self.dtype = dtype
        self.device = torch.device(device)
        self.sf = SymmetryFunctions(featureset, chunk_size=chunk_size).to(self.device)
        self.index = {e: k for k, e in enumerate(featureset.elements)}
        self.kernel = None
        if backend not in ("auto", "torch", "kernel"):
            raise ValueError(f"backend must be auto, torch or kernel, got {backend!r}")
        if backend != "torch" and self.device.type == "cpu" and not featureset.has_noise:
            from .kernel import KernelBuildError, KernelSymmetryFunctions

            try:
                self.kernel = KernelSymmetryFunctions(featureset)
            except KernelBuildError as exc:
                if backend == "kernel":
                    raise
                import logging

                logging.getLogger(__name__).warning("compiled kernel unavailable (%s): torch descriptors", exc)
        #: what computes :meth:`features`: the compiled kernel (CPU, ≈ 3× the torch forward) or torch
        self.backend = "kernel" if self.kernel is not None else "torch"

    def species(self, atoms: Atoms, source: str = "frame", frame: int | None = None) -> torch.Tensor:
        """Element index of each atom; FrameError for an element the feature set lacks."""
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(self.index))
        if unknown:
            raise FrameError(source, frame, f"element(s) {', '.join(unknown)} not in feature set "
                                            f"{self.featureset.name} (elements {self.featureset.elements})")
        return torch.tensor([self.index[s] for s in symbols], dtype=torch.long, device=self.device)

    def _tensors(self, atoms: Atoms):
        pos = torch.tensor(atoms.positions, dtype=self.dtype, device=self.device)
        cell = torch.tensor(atoms.cell.array, dtype=self.dtype, device=self.device)
        return pos, cell

    def features(self, atoms: Atoms, source: str = "frame", frame: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(G, species)``: G (N, F_max) without autograd, species (N,)."""
        species = self.species(atoms, source, frame)
        pos, cell = self._tensors(atoms)
        i, j, s = neighbor_pairs(pos, cell, atoms.pbc, self.sf.cutoff)
        with torch.no_grad():
            rij = pair_vectors(pos, cell, i, j, s)
            if self.kernel is not None:
                G, _ = self.kernel.compute(species, i, j, rij, len(atoms), derivatives=False, dtype=self.dtype)
            else:
                G = self.sf(species, i, j, rij, len(atoms))
        return G, species

    def per_element(self, atoms: Atoms) -> dict[str, np.ndarray]:
        """Features as numpy arrays per element (rows in atom order, F_e columns)."""
        G, species = self.features(atoms)
        return {e: g.cpu().numpy() for e, g in zip(self.featureset.elements, self.sf.split(G, species))}

    def with_gradients(self, atoms: Atoms):
        """``(G, species, positions, strain)`` with positions and strain (3×3, zero) requiring grad."""
        species = self.species(atoms)
        pos0, cell0 = self._tensors(atoms)
        i, j, s = neighbor_pairs(pos0, cell0, atoms.pbc, self.sf.cutoff)
        pos = pos0.clone().requires_grad_(True)
        strain = torch.zeros(3, 3, dtype=self.dtype, device=self.device, requires_grad=True)
        deform = torch.eye(3, dtype=self.dtype, device=self.device) + strain
        G = self.sf(species, i, j, pair_vectors(pos @ deform, cell0 @ deform, i, j, s), len(atoms))
        return G, species, pos, strain


def forces_and_stress(energy: torch.Tensor, positions: torch.Tensor, strain: torch.Tensor, volume: float,
                      create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Forces −∂E/∂x (N, 3) and stress (1/V) ∂E/∂ε (3, 3) of a scalar energy."""
    g_pos, g_strain = torch.autograd.grad(energy, (positions, strain), create_graph=create_graph)
    return -g_pos, g_strain / volume
