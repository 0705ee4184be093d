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
        return view

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
