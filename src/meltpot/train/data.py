"""Datasets for training and evaluation.

:class:`EnergyDataset` holds the cached symmetry functions of a set of frames (one tensor per
element, rows grouped by frame) with the frames' reference energies, so that a batch of
frames is evaluated by gathering its rows: fast energy-only training and evaluation with no
neighbour search. :class:`ForceDataset` holds per-frame neighbour graphs with energies,
forces and stress, for training and evaluation through positions (autograd forces).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ase.stress import full_3x3_to_voigt_6_stress

from ..data.io import read_frames
from ..data.frames import labels
from ..errors import FrameError, MeltpotError
from ..model.batch import FrameGraph, frame_graph


class EnergyDataset:
    """Cached features and energies of the frames ``frame_ids`` (dataset order kept).

    Attributes: ``frame_ids`` (n,), ``energy`` (n,) reference energies, ``n_atoms`` (n,),
    ``counts`` (n, n_elements), ``state_id``/``phase`` arrays, and per element ``G[k]``
    (rows, F_k) with ``row_start[k]``/``row_count[k]`` (n,) locating each frame's rows.
    """

    #: force labels and cached derivatives of some of the frames (:meth:`attach_forces`)
    forces_store: "StoreForces | None" = None

    def __init__(self, cache, index: pd.DataFrame, frame_ids=None, dtype=torch.float64, device="cpu"):
        self.elements = list(cache.elements)
        index = index.set_index("frame_id", drop=False)
        all_ids = np.asarray(cache.frame_ids)
        ids = all_ids if frame_ids is None else np.asarray(frame_ids, dtype=np.int64)
        missing = np.setdiff1d(ids, all_ids)
        if missing.size:
            raise MeltpotError(f"frames {missing[:5].tolist()} are not in the descriptor cache {cache.path}")
        self.frame_ids = ids
        self.device = torch.device(device)
        self.dtype = dtype
        rows = index.loc[ids]
        self.energy = torch.tensor(rows["energy"].to_numpy(float), dtype=dtype, device=self.device)
        self.n_atoms = torch.tensor(rows["n_atoms"].to_numpy(int), dtype=torch.long, device=self.device)
        self.state_id = rows["state_id"].astype(str).to_numpy()
        self.phase = rows["phase"].astype(str).to_numpy()
        pos_of = {int(f): p for p, f in enumerate(ids)}
        self.G, self.row_start, self.row_count = [], [], []
        counts = np.zeros((len(ids), len(self.elements)), dtype=np.int64)
        for k, el in enumerate(self.elements):
            G, fid, _atom = cache.rows(el, ids)
            pos = np.fromiter((pos_of[int(f)] for f in fid), dtype=np.int64, count=len(fid))
            order = np.argsort(pos, kind="stable")
            cnt = np.bincount(pos, minlength=len(ids))
            counts[:, k] = cnt
            self.G.append(torch.tensor(G[order], dtype=dtype, device=self.device))
            self.row_count.append(torch.tensor(cnt, dtype=torch.long, device=self.device))
            self.row_start.append(torch.tensor(np.cumsum(cnt) - cnt, dtype=torch.long, device=self.device))
        self.counts = torch.tensor(counts, dtype=dtype, device=self.device)
        if not torch.equal(self.counts.sum(1).long(), self.n_atoms):
            raise MeltpotError(f"descriptor cache {cache.path} and the dataset index disagree on atom counts")

    @classmethod
    def from_arrays(cls, elements, G: list, frame_of_row: list, energy, dtype=torch.float64,
                    device="cpu", state_id=None, phase=None) -> "EnergyDataset":
        """A dataset from plain arrays (synthetic problems, appended noise features):
        ``G[k]`` (rows, F_k) of element k, ``frame_of_row[k]`` (rows,) frame positions 0..n−1,
        ``energy`` (n,) total energies."""
        self = cls.__new__(cls)
        n = len(energy)
        self.elements, self.dtype, self.device = list(elements), dtype, torch.device(device)
        self.frame_ids = np.arange(n)
        self.energy = torch.as_tensor(np.asarray(energy, dtype=float), dtype=dtype, device=self.device)
        self.state_id = np.asarray(state_id if state_id is not None else ["synthetic"] * n)
        self.phase = np.asarray(phase if phase is not None else ["synthetic"] * n)
        self.G, self.row_start, self.row_count = [], [], []
        counts = np.zeros((n, len(self.elements)), dtype=np.int64)
        for k in range(len(self.elements)):
            pos = np.asarray(frame_of_row[k], dtype=np.int64)
            order = np.argsort(pos, kind="stable")
            cnt = np.bincount(pos, minlength=n)
            counts[:, k] = cnt
            self.G.append(torch.as_tensor(np.asarray(G[k])[order], dtype=dtype, device=self.device))
            self.row_count.append(torch.as_tensor(cnt, device=self.device))
            self.row_start.append(torch.as_tensor(np.cumsum(cnt) - cnt, device=self.device))
        self.counts = torch.as_tensor(counts, dtype=dtype, device=self.device)
        self.n_atoms = torch.as_tensor(counts.sum(1), device=self.device)
        return self

    def __len__(self) -> int:
        return len(self.frame_ids)

    def select_features(self, keep: dict) -> "EnergyDataset":
        """A view with only the feature columns ``keep[element]`` (indices into the cached
        feature set, kept in the given order), for a model whose input layer was shrunk."""
        import copy

        view = copy.copy(self)
        view.G = [g[:, torch.as_tensor(list(keep[el]), dtype=torch.long, device=self.device)]
                  for g, el in zip(self.G, self.elements)]
        if self.forces_store is not None:
            width = max(len(keep[el]) for el in self.elements)
            cols = torch.full((len(self.elements), width), -1, dtype=torch.long, device=self.device)
            for k, el in enumerate(self.elements):
                cols[k, :len(keep[el])] = torch.as_tensor(list(keep[el]), dtype=torch.long)
            view.forces_store = self.forces_store.select_features(cols)
        return view

    def attach_forces(self, store_path, element_weights: dict | None = None) -> "EnergyDataset":
        """Attach the force labels and derivatives of a derivative store (those of its frames
        that are in this dataset): the trainer then fits forces (and stress) without positions."""
        self.forces_store = StoreForces(self, store_path, element_weights)
        return self

    def _rows(self, k: int, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of element k for the frames ``batch`` (positions), and each row's batch slot."""
        cnt = self.row_count[k][batch]
        start = self.row_start[k][batch]
        slot = torch.repeat_interleave(torch.arange(len(batch), device=self.device), cnt)
        first = torch.repeat_interleave(start - (torch.cumsum(cnt, 0) - cnt), cnt)
        rows = torch.arange(int(cnt.sum()), device=self.device) + first
        return rows, slot

    def predict(self, model, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Total energies of the frames ``batch`` (positions in this dataset; all if None)."""
        if batch is None:
            batch = torch.arange(len(self), device=self.device)
        energy = torch.zeros(len(batch), dtype=self.dtype, device=self.device)
        for k in range(len(self.elements)):
            rows, slot = self._rows(k, batch)
            if rows.numel():
                energy = energy.index_add(0, slot, model.element_energies(k, self.G[k][rows]))
        return energy


class ForceDataset:
    """Frames as neighbour graphs with energy, forces and (if present) stress labels."""

    def __init__(self, frames, elements: list[str], cutoff: float, dtype=torch.float64, device="cpu",
                 sources=None, frame_ids=None):
        frames = list(frames)
        self.frame_ids = np.arange(len(frames)) if frame_ids is None else np.asarray(frame_ids)
        self.graphs: list[FrameGraph] = []
        self.energy, self.forces, self.stress = [], [], []
        for n, atoms in enumerate(frames):
            src = sources[n] if sources is not None else (atoms.info.get("source", "frame"), atoms.info.get("source_index", n))
            self.graphs.append(frame_graph(atoms, elements, cutoff, dtype, device, source=str(src[0]), index=src[1]))
            lab = labels(atoms)
            if "energy" not in lab or "forces" not in lab:
                raise FrameError(str(src[0]), src[1], "frame lacks energy or forces labels")
            self.energy.append(float(lab["energy"]))
            self.forces.append(torch.tensor(lab["forces"], dtype=dtype, device=device))
            st = lab.get("stress")
            if st is not None:
                st = np.asarray(st, dtype=float)
                st = full_3x3_to_voigt_6_stress(st) if st.shape == (3, 3) else st.reshape(6)
                st = torch.tensor(st, dtype=dtype, device=device)
            self.stress.append(st)
        self.energy = torch.tensor(self.energy, dtype=dtype, device=device)
        self.n_atoms = torch.tensor([g.n_atoms for g in self.graphs], device=device)

    def __len__(self) -> int:
        return len(self.graphs)

    @classmethod
    def from_index(cls, index: pd.DataFrame, root: str | Path, frame_ids, elements, cutoff, dtype=torch.float64,
                   device="cpu") -> "ForceDataset":
        """Read the frames ``frame_ids`` of a dataset index (file paths relative to ``root``)."""
        rows = index.set_index("frame_id", drop=False).loc[np.asarray(frame_ids)]
        frames, sources = [], []
        for file, grp in rows.groupby("file", sort=False):
            loaded = read_frames(Path(root) / file)
            for fi in grp["file_index"]:
                frames.append(loaded[int(fi)])
                sources.append((str(Path(root) / file), int(fi)))
        # back to the requested order
        order = {(s, i): n for n, (s, i) in enumerate(sources)}
        want = [(str(Path(root) / f), int(i)) for f, i in zip(rows["file"], rows["file_index"])]
        perm = [order[w] for w in want]
        return cls([frames[p] for p in perm], elements, cutoff, dtype, device, sources=[sources[p] for p in perm],
                   frame_ids=np.asarray(frame_ids))


def _ranges(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Concatenated ``arange(s, s + c)`` for each (s, c), without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long, device=starts.device)
    first = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
    return torch.arange(total, device=starts.device) + first


class StoreForces:
    """Force (and stress) labels and cached derivatives ∂G/∂r of some frames of an
    :class:`EnergyDataset` (a :mod:`~meltpot.descriptors.derivatives` store): forces of a model
    without positions, as ``F_i += g_p, F_j −= g_p`` with ``g_p = (∂E/∂G_i) · dG_p``.

    Layout in memory, per store frame (so that a batch needs no gather of the big arrays):
    ``D[f]`` (n_atoms, F, 3·M) — each centre's pairs side by side (M = most neighbours in
    that frame; empty slots zero), ``nbr[f]`` (n_atoms, M) the neighbour of each slot (empty:
    the dummy index n_atoms), ``rij[f]`` (n_atoms, M, 3). Then per frame one batched product
    (1×F)·(F×3M) per atom gives every ∂E/∂r_ij: a dense GEMV instead of a gather per pair
    (measured 5× faster than per-pair products on one thread). ``D`` keeps the store's dtype
    and the contraction runs in it (float32: forces to ~1e-7 relative, half the memory).

    ``frame_of[pos]`` is the store frame of dataset position ``pos`` (−1: no forces there).
    Per atom in store order: ``G`` (the dataset's cached features), ``species``, ``forces``.
    """

    def __init__(self, dataset: "EnergyDataset", store_path, element_weights: dict | None = None):
        from ..descriptors.derivatives import read_store

        arrays = read_store(store_path, dataset.frame_ids)
        if arrays["elements"] != list(dataset.elements):
            raise MeltpotError(f"derivative store {store_path} is for elements {arrays['elements']}, the "
                               f"data for {dataset.elements}")
        dev, dtype = dataset.device, dataset.dtype
        self.path = str(store_path)
        pos_of = {int(f): p for p, f in enumerate(dataset.frame_ids)}
        positions = np.asarray([pos_of[int(f)] for f in arrays["frame_id"]], dtype=np.int64)
        self.frame_ids = arrays["frame_id"]
        self.frame_of = torch.full((len(dataset),), -1, dtype=torch.long, device=dev)
        self.frame_of[torch.as_tensor(positions, device=dev)] = torch.arange(len(positions), device=dev)
        aoff = torch.as_tensor(arrays["atom_offset"], dtype=torch.long, device=dev)
        self.atom_start, self.n_atoms = aoff[:-1], aoff[1:] - aoff[:-1]
        if not torch.equal(self.n_atoms, dataset.n_atoms[torch.as_tensor(positions, device=dev)]):
            raise MeltpotError(f"derivative store {store_path} and the descriptor cache disagree on atom counts")
        self.species = torch.as_tensor(arrays["species"].astype(np.int64), device=dev)
        self.forces = torch.as_tensor(arrays["forces"], dtype=dtype, device=dev)
        self.stress = torch.as_tensor(arrays["stress"], dtype=dtype, device=dev)
        self.volume = torch.as_tensor(arrays["volume"], dtype=dtype, device=dev)
        self.dtype = dtype
        self.n_pairs = int(arrays["pair_offset"][-1])
        self.D, self.nbr, self.rij = [], [], []
        poff = arrays["pair_offset"]
        for k in range(len(positions)):
            p0, p1 = int(poff[k]), int(poff[k + 1])
            D, nbr, rij = _pad_by_center(arrays["center"][p0:p1], arrays["neighbor"][p0:p1], arrays["rij"][p0:p1],
                                         arrays["dG"][p0:p1], int(self.n_atoms[k]))
            self.D.append(D.to(dev))
            self.nbr.append(nbr.to(dev))
            self.rij.append(rij.to(dtype=dtype, device=dev))
        f_max = arrays["dG"].shape[1]
        # the dataset's cached features in the store's atom order (frames in dataset order, atoms
        # of one element in atom order on both sides)
        self.G = torch.zeros(self.species.numel(), f_max, dtype=dtype, device=dev)
        pos_t = torch.as_tensor(positions, device=dev)
        for k in range(len(dataset.elements)):
            rows = _ranges(dataset.row_start[k][pos_t], dataset.row_count[k][pos_t])
            sel = torch.nonzero(self.species == k).squeeze(-1)
            if sel.numel() != rows.numel():
                raise MeltpotError(f"derivative store {store_path} and the descriptor cache disagree on the "
                                   f"atoms of {dataset.elements[k]}")
            fk = dataset.G[k].shape[1]
            self.G[sel, :fk] = dataset.G[k][rows]
        w = torch.ones(len(dataset.elements), dtype=dtype, device=dev)
        for el, val in (element_weights or {}).items():
            if el not in dataset.elements:
                raise MeltpotError(f"force weight for element {el!r}, which the data lack ({dataset.elements})")
            w[dataset.elements.index(el)] = float(val)
        self.atom_weight = w[self.species]

    @property
    def has_stress(self) -> bool:
        return self.stress.numel() > 0 and bool(torch.isfinite(self.stress).all())

    def thin(self, n: int) -> "StoreForces":
        """A view whose force term uses only ``n`` of the frames, evenly spaced in store order
        (the store's frames are drawn per state, so the thinned set still spans the states)."""
        import copy

        view = copy.copy(self)
        count = len(self.frame_ids)
        if n >= count:
            return view
        keep = torch.as_tensor(np.unique(np.linspace(0, count - 1, n).round().astype(np.int64)), device=self.G.device)
        mask = torch.zeros(count, dtype=torch.bool, device=self.G.device)
        mask[keep] = True
        view.frame_of = torch.where((self.frame_of >= 0) & mask[self.frame_of.clamp(min=0)], self.frame_of,
                                    torch.full_like(self.frame_of, -1))
        return view

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (derivatives, neighbour slots, pair vectors, features, labels)."""
        tensors = self.D + self.nbr + self.rij + [self.G, self.forces, self.species]
        return sum(t.numel() * t.element_size() for t in tensors)

    def select_features(self, keep_cols: torch.Tensor) -> "StoreForces":
        """A copy with the derivative and feature columns ``keep_cols[e]`` (n_elements, F_new;
        −1 padding) per centre element, as :meth:`EnergyDataset.select_features` makes."""
        import copy

        view = copy.copy(self)
        cols = keep_cols[self.species]                              # (N, F_new)
        view.G = torch.gather(self.G, 1, cols.clamp(min=0)) * (cols >= 0).to(self.dtype)
        view.D = []
        for k, D in enumerate(self.D):
            a0 = int(self.atom_start[k])
            c = cols[a0:a0 + D.shape[0]]
            idx = c.clamp(min=0)[:, :, None].expand(-1, -1, D.shape[2])
            view.D.append(torch.gather(D, 1, idx) * (c >= 0)[:, :, None].to(D.dtype))
        return view

    def predict(self, model, fidx: torch.Tensor, create_graph: bool, stress: bool = False,
                atom_fraction: float = 1.0, generator: torch.Generator | None = None) -> dict:
        """Forces (and stress) of the store frames ``fidx``. With ``atom_fraction`` < 1 only a
        random fraction of the atoms (drawn with ``generator``) counts in the loss (``mask``;
        n2p2's fraction of force updates: it thins the loss, not the work)."""
        dev = self.G.device
        na = self.n_atoms[fidx]
        atoms = _ranges(self.atom_start[fidx], na)
        G = self.G[atoms].detach().requires_grad_(True)
        e = model.atomic_energies(G, self.species[atoms])
        (dEdG,) = torch.autograd.grad(e.sum(), G, create_graph=create_graph)
        forces, virials = [], []
        start = 0
        for k in fidx.tolist():
            D, nbr = self.D[k], self.nbr[k]
            n, M = nbr.shape
            a = dEdG[start:start + n].to(D.dtype)
            start += n
            g = torch.bmm(a.unsqueeze(1), D).view(n, M, 3)                  # ∂E/∂r_ij per slot
            f = g.sum(1) - torch.zeros(n + 1, 3, dtype=g.dtype, device=dev).index_add(
                0, nbr.reshape(-1), g.reshape(-1, 3))[:n]
            forces.append(f)
            if stress:
                virials.append(torch.einsum("nmc,nmd->cd", self.rij[k].to(g.dtype), g))
        out = {"forces": torch.cat(forces).to(dEdG.dtype), "reference": self.forces[atoms],
               "weight": self.atom_weight[atoms], "mask": None}
        if atom_fraction < 1.0:
            out["mask"] = (torch.rand(atoms.numel(), generator=generator) < atom_fraction).to(dev)
        if stress:
            out["stress"] = torch.stack(virials).to(dEdG.dtype) / self.volume[fidx][:, None, None]
            out["stress_reference"] = self.stress[fidx]
        return out


def _pad_by_center(center, neighbor, rij, dG, n_atoms: int):
    """One frame's pairs as per-centre slots: ``D`` (n_atoms, F, 3·M), ``nbr`` (n_atoms, M) with
    the dummy index n_atoms in empty slots, ``rij`` (n_atoms, M, 3) (see :class:`StoreForces`)."""
    center = torch.as_tensor(center.astype(np.int64))
    order = torch.argsort(center, stable=True)
    c = center[order]
    counts = torch.bincount(c, minlength=n_atoms)
    M = max(int(counts.max()) if c.numel() else 0, 1)
    slot = torch.arange(c.numel()) - (torch.cumsum(counts, 0) - counts)[c]
    dG = torch.as_tensor(dG)[order]
    F = dG.shape[1]
    D = torch.zeros(n_atoms, M, F, 3, dtype=dG.dtype)
    D[c, slot] = dG
    nbr = torch.full((n_atoms, M), n_atoms, dtype=torch.long)
    nbr[c, slot] = torch.as_tensor(neighbor.astype(np.int64))[order]
    R = torch.zeros(n_atoms, M, 3, dtype=torch.float64)
    R[c, slot] = torch.as_tensor(rij)[order]
    return D.permute(0, 2, 1, 3).reshape(n_atoms, F, M * 3).contiguous(), nbr, R
