"""The derivative store: ∂G/∂r of every atom's symmetry functions, per neighbour pair, for force training.

Force training on cached features needs, besides G, how each atom's features change with the
positions of its neighbours. With r_ij = x_j − x_i (+ image shift) and pair p = (i, j),
``dG[p, f, :] = ∂G_i[f] / ∂r_ij`` (a pair only moves its own centre's features). For any
energy E = Σ_i E_i(G_i), with ``g_p = Σ_f (∂E/∂G_i[f]) dG[p, f, :]`` (= ∂E/∂r_ij):

* forces  F_i += g_p, F_j −= g_p  (F = −∂E/∂x);
* stress  σ = (1/V) Σ_p r_ij ⊗ g_p  (ASE convention, (1/V) ∂E/∂ε).

So a training step needs only the small networks (∂E/∂G by autograd) and one contraction with
the stored derivatives; the geometry is done once (PyXtal_FF and n2p2 do the same).

One HDF5 file per (dataset, feature set, frames, dtype), next to the descriptor cache
(``results/<run>/descriptors/<featureset>.derivatives.h5``). Layout::

    /frames/frame_id (n,)           frames in store order; atom_offset, pair_offset (n+1,)
    /frames/energy (n,)             reference energies; stress (n, 6) Voigt (NaN: none); volume (n,)
    /atoms/species (N,)             element index per atom; forces (N, 3) reference forces
    /pairs/center, /pairs/neighbor  (P,) atom indices within the frame (periodic images
                                    map to the atom itself); rij (P, 3) float64
    /pairs/dG (P, F_max, 3)         derivatives (float32 or float64); columns as G of the cache:
                                    per centre element its first F_e functions, zeros after
    /.attrs                         complete, key, featureset_hash, frames_key, dtype, backend,
                                    elements, f_max, n_frames, n_atoms, n_pairs, bytes_per_pair,
                                    skipped (frames without forces), seconds, format_version

Key: sha256 of (feature-set hash, dataset frames key, the stored frame ids, dtype, format).
An existing file with that key is reused; anything else (another key, incomplete, corrupt) is
rebuilt with a warning, written to ``<out>.partial`` and renamed when complete.

Size: 12·F_max bytes per pair in float32 (24·F_max in float64) plus 32 for indices and r_ij;
liquid Al at r_c 6.8 Å has ≈ 70 neighbours, so a 256-atom frame with 22 functions takes ≈ 5 MB
in float32.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from ..errors import FrameError, MeltpotError
from .cache import _attr_str, _check_dtype, _sha, check_elements, frames_key, inspect_h5, read_index
from .featureset import FeatureSet

log = logging.getLogger("meltpot.descriptors.derivatives")

FORMAT = "meltpot-derivatives"
FORMAT_VERSION = 1
BACKENDS = ("auto", "kernel", "autograd")
_CHUNK_BYTES = 1 << 20


class DerivativeStoreError(MeltpotError):
    """A derivative store that cannot be used (missing, incomplete, corrupt, other key)."""


# ---------------------------------------------------------------------------------- computation
def autograd_derivatives(sf, species, center, neighbor, rij, n_local) -> tuple[torch.Tensor, torch.Tensor]:
    """``(G, dG)`` from the torch :class:`SymmetryFunctions` ``sf`` by reverse mode, one backward
    pass per feature column: the reference that the compiled kernel is tested against (slow)."""
    rij = rij.detach().clone().requires_grad_(True)
    G = sf(species, center, neighbor, rij, n_local)
    dG = torch.zeros(rij.shape[0], G.shape[1], 3, dtype=rij.dtype, device=rij.device)
    if rij.shape[0]:
        for f in range(G.shape[1]):
            if G[:, f].requires_grad:
                (g,) = torch.autograd.grad(G[:, f].sum(), rij, retain_graph=True, allow_unused=True)
                if g is not None:
                    dG[:, f] = g
    return G.detach(), dG


class PairDerivatives:
    """``(G, dG)`` of one frame's pair list by the compiled kernel (``backend="kernel"``), the
    torch reference (``"autograd"``) or the kernel when it builds, else autograd (``"auto"``)."""

    def __init__(self, featureset: FeatureSet, backend: str = "auto"):
        from .symmetry import SymmetryFunctions

        if backend not in BACKENDS:
            raise MeltpotError(f"derivative backend {backend!r} unknown; allowed: {', '.join(BACKENDS)}")
        self.featureset = featureset
        self.kernel = None
        if backend in ("auto", "kernel"):
            try:
                from .kernel import KernelSymmetryFunctions

                self.kernel = KernelSymmetryFunctions(featureset)
            except (ImportError, MeltpotError) as exc:
                if backend == "kernel":
                    raise
                log.warning("compiled symmetry-function kernel unavailable (%s); using autograd (slow)", exc)
        self.backend = "kernel" if self.kernel is not None else "autograd"
        self.sf = SymmetryFunctions(featureset) if self.kernel is None else None

    def __call__(self, species, center, neighbor, rij, n_local) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kernel is not None:
            return self.kernel.compute(species, center, neighbor, rij, n_local, derivatives=True)
        return autograd_derivatives(self.sf, species, center, neighbor, rij, n_local)


# ---------------------------------------------------------------------------------- keys
def store_key(featureset_hash: str, frames_key_: str, frame_ids, dtype: str) -> str:
    """sha256 of feature set, dataset frames key, stored frame ids (in order), dtype, format."""
    return _sha({"format": [FORMAT, FORMAT_VERSION], "featureset": featureset_hash, "frames": frames_key_,
                 "ids": [int(i) for i in frame_ids], "dtype": _check_dtype(dtype)})


def choose_frames(splits: pd.DataFrame, index: pd.DataFrame, split: str, n: int | None, seed: int) -> np.ndarray:
    """Up to ``n`` frames of ``split`` (None: all), drawn per state in proportion to its frames
    (seeded), returned in dataset order: the frames whose forces enter the loss."""
    ids = splits.loc[splits["split"] == split, "frame_id"].to_numpy(np.int64)
    order = index.set_index("frame_id").loc[ids]
    if n is None or n >= len(ids):
        chosen = ids
    else:
        rng = np.random.default_rng(seed)
        states = order["state_id"].astype(str).to_numpy() if "state_id" in order else np.zeros(len(ids), str)
        chosen = []
        names, counts = np.unique(states, return_counts=True)
        quota = np.floor(counts * n / len(ids)).astype(int)
        # largest remainders get the frames the floors left over
        rest = n - int(quota.sum())
        quota[np.argsort(-(counts * n / len(ids) - quota), kind="stable")[:rest]] += 1
        for name, q in zip(names, quota):
            members = ids[states == name]
            chosen.extend(rng.choice(members, size=min(q, len(members)), replace=False).tolist())
        chosen = np.asarray(chosen, dtype=np.int64)
    pos = {int(f): k for k, f in enumerate(index["frame_id"].to_numpy())}
    return np.asarray(sorted(chosen, key=lambda f: pos[int(f)]), dtype=np.int64)



def store_frames(cfg: dict, index: pd.DataFrame, splits: pd.DataFrame) -> dict:
    """Frame ids per split whose forces the derivative store holds (``descriptors.derivatives``:
    ``train_frames`` / ``validation_frames``, null = all; drawn per state, seeded)."""
    from ..seeds import derive_seed

    d = cfg["descriptors"]["derivatives"]
    out = {}
    for split, key in (("train", "train_frames"), ("validation", "validation_frames")):
        out[split] = choose_frames(splits, index, split, d[key], derive_seed(cfg["seed"], "force-frames", split))
    return out


def in_dataset_order(index: pd.DataFrame, *frame_ids) -> np.ndarray:
    """The union of the ``frame_ids`` arrays, sorted in the order of the dataset index."""
    ids = np.sort(np.concatenate(frame_ids))
    pos = {int(f): k for k, f in enumerate(index["frame_id"])}
    return np.asarray(sorted(ids, key=lambda f: pos[int(f)]), dtype=np.int64)

# ---------------------------------------------------------------------------------- building
@dataclass
class StoreResult:
    """What :func:`build_store` did (``computed`` or ``reused``), with the store's size."""

    path: Path
    action: str
    n_frames: int
    n_pairs: int
    bytes: int
    seconds: float
    skipped: list
    backend: str = ""


def inspect_store(path: str | os.PathLike, key: str | None = None) -> tuple[bool, str]:
    """``(usable, reason)``: complete, our format, consistent and (if given) of ``key``."""

    def check(f) -> str | None:
        a = f.attrs
        if _attr_str(a.get("format", "")) != FORMAT:
            return "not a meltpot derivative store"
        if int(a.get("format_version", -1)) != FORMAT_VERSION:
            return f"layout version {a.get('format_version')}, expected {FORMAT_VERSION}"
        if not bool(a.get("complete", False)):
            return "incomplete (an interrupted computation)"
        n, P = int(a["n_frames"]), int(a["n_pairs"])
        if f["frames/pair_offset"].shape != (n + 1,) or f["pairs/dG"].shape[0] != P:
            return "pair counts do not add up"
        if key is not None and _attr_str(a["key"]) != key:
            return "stale (key differs)"
        return None

    return inspect_h5(path, check)


def _stress_voigt(st) -> np.ndarray:
    if st is None:
        return np.full(6, np.nan)
    st = np.asarray(st, dtype=float)
    if st.shape == (3, 3):
        from ase.stress import full_3x3_to_voigt_6_stress

        st = full_3x3_to_voigt_6_stress(st)
    return st.reshape(6)


def build_store(index_path: str | os.PathLike, out: str | os.PathLike, featureset: FeatureSet, frame_ids, *,
                dtype: str = "float32", missing_forces: str = "error", backend: str = "auto",
                progress: bool = True) -> StoreResult:
    """Make ``out`` an up-to-date derivative store of the frames ``frame_ids`` of a dataset.

    ``missing_forces``: ``error`` (FrameError naming the first frame without forces) or ``skip``
    (such frames are left out and listed in ``skipped`` and the file's attributes).
    """
    from tqdm import tqdm

    from ..data.frames import labels
    from ..data.io import read_frames
    from ..model.batch import frame_graph

    t0 = time.perf_counter()
    index_path, out = Path(index_path), Path(out)
    dtype = _check_dtype(dtype)
    if missing_forces not in ("error", "skip"):
        raise MeltpotError(f"missing_forces must be error or skip, got {missing_forces!r}")
    index = read_index(index_path)
    root = index_path.parent
    check_elements(featureset, index, root, str(index_path))
    ids = np.asarray(frame_ids, dtype=np.int64)
    unknown = np.setdiff1d(ids, index["frame_id"].to_numpy())
    if unknown.size:
        raise MeltpotError(f"frames {unknown[:5].tolist()} are not in the dataset index {index_path}")
    fs_hash = featureset.content_hash()
    fkey = frames_key(index, root, str(index_path))
    key = store_key(fs_hash, fkey, ids, dtype)
    usable, reason = inspect_store(out, key)
    if usable:
        with h5py.File(out, "r") as f:
            a = f.attrs
            res = StoreResult(out, "reused", int(a["n_frames"]), int(a["n_pairs"]), out.stat().st_size,
                              time.perf_counter() - t0, [int(s) for s in a["skipped"]], _attr_str(a["backend"]))
        log.info("%s: up to date (key %s); reused", out, key[:12])
        return res
    if out.exists():
        log.warning("derivative store %s is %s; rebuilding it", out, reason)

    compute = PairDerivatives(featureset, backend)
    elements = featureset.elements
    f_max = max(featureset.n_features(e) for e in elements)
    np_dtype = np.dtype(dtype)
    rows = index.set_index("frame_id", drop=False).loc[ids]
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        partial.unlink()
    skipped: list[int] = []
    t_start = time.perf_counter()
    try:
        with h5py.File(partial, "w") as f:
            a = f.attrs
            a.update({"format": FORMAT, "format_version": FORMAT_VERSION, "complete": False, "key": key,
                      "featureset_hash": fs_hash, "featureset_name": featureset.name, "frames_key": fkey,
                      "dtype": dtype, "backend": compute.backend, "f_max": f_max,
                      "elements": np.array(elements, dtype=h5py.string_dtype()), "index_file": str(index_path)})
            chunk_rows = max(64, _CHUNK_BYTES // (f_max * 3 * np_dtype.itemsize))
            kw = dict(fletcher32=True)
            ds = {"center": f.create_dataset("pairs/center", (0,), maxshape=(None,), dtype=np.int32,
                                             chunks=(1 << 16,), **kw),
                  "neighbor": f.create_dataset("pairs/neighbor", (0,), maxshape=(None,), dtype=np.int32,
                                               chunks=(1 << 16,), **kw),
                  "rij": f.create_dataset("pairs/rij", (0, 3), maxshape=(None, 3), dtype=np.float64,
                                          chunks=(1 << 14, 3), **kw),
                  "dG": f.create_dataset("pairs/dG", (0, f_max, 3), maxshape=(None, f_max, 3), dtype=np_dtype,
                                         chunks=(chunk_rows, f_max, 3), **kw),
                  "species": f.create_dataset("atoms/species", (0,), maxshape=(None,), dtype=np.int16,
                                              chunks=(1 << 16,), **kw),
                  "forces": f.create_dataset("atoms/forces", (0, 3), maxshape=(None, 3), dtype=np.float64,
                                             chunks=(1 << 14, 3), **kw)}

            def append(name, block):
                d = ds[name]
                m = d.shape[0]
                d.resize(m + len(block), axis=0)
                d[m:] = block

            kept, energy, stress, volume, atom_off, pair_off = [], [], [], [], [0], [0]
            bar = tqdm(total=len(ids), unit="frame", disable=not progress, mininterval=1.0,
                       desc=f"derivatives {featureset.name}", dynamic_ncols=True)
            cur_file, cur_frames = None, None
            for fid, file, fi in zip(rows["frame_id"], rows["file"], rows["file_index"]):
                path = root / file
                if file != cur_file:
                    cur_file, cur_frames = file, read_frames(path)
                if not 0 <= int(fi) < len(cur_frames):
                    raise FrameError(str(path), int(fi), f"the index lists this frame but the file has "
                                                         f"{len(cur_frames)} frames (rebuild the dataset)")
                atoms = cur_frames[int(fi)]
                lab = labels(atoms)
                if "forces" not in lab or "energy" not in lab:
                    if missing_forces == "error":
                        raise FrameError(str(path), int(fi), "no forces (or no energy) in this frame, but the "
                                         "loss has a force term; drop the frame or set "
                                         "descriptors.derivatives.missing_forces: skip")
                    skipped.append(int(fid))
                    bar.update(1)
                    continue
                g = frame_graph(atoms, elements, featureset.cutoff_radius, torch.float64, source=str(path),
                                index=int(fi))
                rij = g.positions[g.neighbor] - g.positions[g.center] + g.shift @ g.cell
                _G, dG = compute(g.species, g.center, g.neighbor, rij, g.n_atoms)
                append("center", g.center.numpy().astype(np.int32))
                append("neighbor", g.neighbor.numpy().astype(np.int32))
                append("rij", rij.numpy())
                append("dG", dG.numpy().astype(np_dtype, copy=False))
                append("species", g.species.numpy().astype(np.int16))
                append("forces", np.asarray(lab["forces"], dtype=np.float64).reshape(-1, 3))
                kept.append(int(fid))
                energy.append(float(lab["energy"]))
                stress.append(_stress_voigt(lab.get("stress")))
                volume.append(float(abs(np.linalg.det(atoms.cell.array))) if atoms.cell.rank == 3 else np.nan)
                atom_off.append(atom_off[-1] + g.n_atoms)
                pair_off.append(pair_off[-1] + int(g.center.numel()))
                bar.update(1)
            bar.close()
            if not kept:
                raise MeltpotError(f"no frame of the {len(ids)} requested has forces: nothing to store")
            f.create_dataset("frames/frame_id", data=np.asarray(kept, dtype=np.int64), **kw)
            f.create_dataset("frames/atom_offset", data=np.asarray(atom_off, dtype=np.int64), **kw)
            f.create_dataset("frames/pair_offset", data=np.asarray(pair_off, dtype=np.int64), **kw)
            f.create_dataset("frames/energy", data=np.asarray(energy), **kw)
            f.create_dataset("frames/stress", data=np.asarray(stress).reshape(-1, 6), **kw)
            f.create_dataset("frames/volume", data=np.asarray(volume), **kw)
            seconds = time.perf_counter() - t_start
            n_pairs = pair_off[-1]
            a.update({"n_frames": len(kept), "n_atoms": atom_off[-1], "n_pairs": n_pairs,
                      "bytes_per_pair": f_max * 3 * np_dtype.itemsize + 4 + 4 + 24,
                      "skipped": np.asarray(skipped, dtype=np.int64), "seconds": seconds})
            a["complete"] = True
        os.replace(partial, out)
    finally:
        if partial.exists():
            partial.unlink()
    if skipped:
        log.warning("%s: %d frame(s) without forces left out of the force term: %s", out, len(skipped),
                    ", ".join(map(str, skipped[:20])) + (" …" if len(skipped) > 20 else ""))
    size = out.stat().st_size
    log.info("%s: %d frames, %d pairs (%.0f per atom), %.2f GB, %.1f s (%s, %.1f frames/s)", out, len(kept),
             n_pairs, n_pairs / max(atom_off[-1], 1), size / 1e9, seconds, compute.backend,
             len(ids) / max(seconds, 1e-9))
    return StoreResult(out, "computed", len(kept), n_pairs, size, time.perf_counter() - t0, skipped, compute.backend)


# ---------------------------------------------------------------------------------- reading
def read_store(path: str | os.PathLike, frame_ids=None) -> dict:
    """The arrays of a store (all frames, or those of ``frame_ids`` that it holds) as numpy,
    frames in store order: ``frame_id, atom_offset, pair_offset, energy, stress, volume, species,
    forces, center, neighbor, rij, dG`` and the attributes (``attrs``)."""
    path = Path(path)
    usable, reason = inspect_store(path)
    if not usable:
        raise DerivativeStoreError(f"derivative store {path} is {reason}")
    with h5py.File(path, "r") as f:
        try:
            fid = f["frames/frame_id"][:]
            aoff, poff = f["frames/atom_offset"][:], f["frames/pair_offset"][:]
            take = np.arange(len(fid)) if frame_ids is None else np.flatnonzero(np.isin(fid, np.asarray(frame_ids)))
            out = {"attrs": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()},
                   "frame_id": fid[take]}
            for name in ("energy", "stress", "volume"):
                out[name] = f[f"frames/{name}"][:][take]
            full = len(take) == len(fid)

            def gather(ds, off):
                if full:
                    return ds[:]
                parts = [ds[int(off[k]):int(off[k + 1])] for k in take]
                return np.concatenate(parts) if parts else np.zeros((0,) + ds.shape[1:], ds.dtype)

            for name in ("species", "forces"):
                out[name] = gather(f[f"atoms/{name}"], aoff)
            for name in ("center", "neighbor", "rij", "dG"):
                out[name] = gather(f[f"pairs/{name}"], poff)
        except (OSError, RuntimeError) as exc:
            raise DerivativeStoreError(f"derivative store {path} is corrupt ({exc}); delete it and recompute") from exc
    counts_a = np.diff(aoff)[take]
    counts_p = np.diff(poff)[take]
    out["atom_offset"] = np.concatenate([[0], np.cumsum(counts_a)])
    out["pair_offset"] = np.concatenate([[0], np.cumsum(counts_p)])
    out["elements"] = [_attr_str(e) for e in out["attrs"]["elements"]]
    return out
