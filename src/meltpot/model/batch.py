"""Batches of frames as one pair-list graph, for energies, forces and stress by autograd.

Frames are concatenated: atoms get global indices, each pair stays within its frame. A
per-frame strain ε (zero, requiring grad) deforms positions and cells by (I + ε), so
stress_f = (1/V_f) ∂E_f/∂ε_f; forces are −∂E/∂x. Neighbour lists are computed once per
frame (no autograd) and reused, e.g. across training epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from ..descriptors.neighbors import neighbor_pairs
from ..errors import FrameError


@dataclass
class FrameGraph:
    """One frame's fixed data: species, positions, cell and its neighbour pairs."""

    species: torch.Tensor   # (n,)
    positions: torch.Tensor  # (n, 3)
    cell: torch.Tensor       # (3, 3)
    center: torch.Tensor     # (P,)
    neighbor: torch.Tensor   # (P,)
    shift: torch.Tensor      # (P, 3) float

    @property
    def n_atoms(self) -> int:
        return int(self.species.shape[0])


def frame_graph(atoms: Atoms, elements: list[str], cutoff: float, dtype=torch.float64, device="cpu",
                source: str = "frame", index: int | None = None) -> FrameGraph:
    """Neighbour pairs and tensors of one frame (FrameError for unknown elements)."""
    lookup = {e: k for k, e in enumerate(elements)}
    symbols = atoms.get_chemical_symbols()
    unknown = sorted(set(symbols) - set(lookup))
    if unknown:
        raise FrameError(source, index, f"element(s) {', '.join(unknown)} not in the model's {elements}")
    pos = torch.tensor(atoms.positions, dtype=dtype, device=device)
    cell = torch.tensor(atoms.cell.array, dtype=dtype, device=device)
    i, j, s = neighbor_pairs(pos, cell, atoms.pbc, cutoff)
    return FrameGraph(torch.tensor([lookup[x] for x in symbols], dtype=torch.long, device=device),
                      pos, cell, i, j, s.to(dtype))


def predict(model, graphs: list[FrameGraph], forces: bool = True, stress: bool = False,
            create_graph: bool = False) -> dict:
    """Energies (n_frames,), and optionally forces (N_total, 3) and stresses (n_frames, 3, 3).

    ``create_graph=True`` keeps the graph of the forces (for force terms in a loss).
    """
    dev = graphs[0].positions.device
    dtype = graphs[0].positions.dtype
    n_atoms = torch.tensor([g.n_atoms for g in graphs], device=dev)
    atom_off = torch.cumsum(n_atoms, 0) - n_atoms
    species = torch.cat([g.species for g in graphs])
    pos = torch.cat([g.positions for g in graphs]).clone().requires_grad_(forces)
    cells = torch.stack([g.cell for g in graphs])
    frame_of_atom = torch.repeat_interleave(torch.arange(len(graphs), device=dev), n_atoms)
    n_pairs = torch.tensor([g.center.numel() for g in graphs], device=dev)
    frame_of_pair = torch.repeat_interleave(torch.arange(len(graphs), device=dev), n_pairs)
    center = torch.cat([g.center for g in graphs]) + atom_off[frame_of_pair]
    neighbor = torch.cat([g.neighbor for g in graphs]) + atom_off[frame_of_pair]
    shift = torch.cat([g.shift for g in graphs])
    strain = torch.zeros(len(graphs), 3, 3, dtype=dtype, device=dev, requires_grad=stress)
    deform = torch.eye(3, dtype=dtype, device=dev) + strain
    pos_d = torch.bmm(pos[:, None, :], deform[frame_of_atom]).squeeze(1)
    cell_d = torch.bmm(cells, deform)
    rij = pos_d[neighbor] - pos_d[center] + torch.bmm(shift[:, None, :], cell_d[frame_of_pair]).squeeze(1)
    e_atom = model(species, center, neighbor, rij, int(species.shape[0]))
    energy = torch.zeros(len(graphs), dtype=dtype, device=dev).index_add(0, frame_of_atom, e_atom)
    out = {"energy": energy, "n_atoms": n_atoms, "atomic_energies": e_atom}
    wrt = [t for t, on in ((pos, forces), (strain, stress)) if on]
    if wrt:
        grads = torch.autograd.grad(energy.sum(), wrt, create_graph=create_graph)
        k = 0
        if forces:
            out["forces"] = -grads[k]
            k += 1
        if stress:
            volume = torch.linalg.det(cells).abs()
            out["stress"] = grads[k] / volume[:, None, None]
    return out


def voigt(stress: torch.Tensor) -> np.ndarray:
    """(…, 3, 3) → (…, 6) in ASE's order xx, yy, zz, yz, xz, xy."""
    s = stress.detach().cpu().numpy()
    return np.stack([s[..., 0, 0], s[..., 1, 1], s[..., 2, 2], s[..., 1, 2], s[..., 0, 2], s[..., 0, 1]], -1)


def predict_compiled(model, graphs: list[FrameGraph], stress: bool = False) -> dict:
    """As :func:`predict` with forces (no ``create_graph``), but the symmetry functions and their
    derivatives ∂G/∂r_ij come from the compiled kernel (:mod:`meltpot.descriptors.kernel`): only
    the networks go through autograd (∂E/∂G), forces and stress are contractions with ∂G/∂r.
    The same numbers to round-off, several times faster on the CPU; KernelBuildError without a
    C++ compiler."""
    from ..descriptors.kernel import KernelSymmetryFunctions

    kernel = getattr(model, "_compiled_kernel", None)
    if kernel is None:
        kernel = KernelSymmetryFunctions(model.featureset)
        object.__setattr__(model, "_compiled_kernel", kernel)   # not a module attribute
    energies, forces, stresses, e_atoms = [], [], [], []
    for g in graphs:
        dtype = g.positions.dtype
        rij = g.positions[g.neighbor] - g.positions[g.center] + g.shift @ g.cell
        G, dG = kernel.compute(g.species, g.center, g.neighbor, rij, g.n_atoms, derivatives=True)
        G = G.to(dtype).requires_grad_(True)
        with torch.enable_grad():
            e = model.atomic_energies(G, g.species)
            (dEdG,) = torch.autograd.grad(e.sum(), G)
        gp = torch.bmm(dEdG[g.center].unsqueeze(1), dG.to(dtype)).squeeze(1)       # ∂E/∂r_ij
        f = torch.zeros(g.n_atoms, 3, dtype=dtype).index_add(0, g.center, gp).index_add(0, g.neighbor, -gp)
        energies.append(e.detach().sum())
        e_atoms.append(e.detach())
        forces.append(f)
        if stress:
            volume = torch.linalg.det(g.cell).abs()
            stresses.append((rij[:, :, None] * gp[:, None, :]).sum(0) / volume)
    out = {"energy": torch.stack(energies), "forces": torch.cat(forces),
           "n_atoms": torch.tensor([g.n_atoms for g in graphs]), "atomic_energies": torch.cat(e_atoms)}
    if stress:
        out["stress"] = torch.stack(stresses)
    return out
