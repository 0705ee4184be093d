"""The descriptor cache: symmetry functions of a whole dataset in one HDF5 file.

One file per dataset and feature set (``results/<run>/descriptors/<featureset>.h5`` in the
workflow). Layout::

    /elements/<El>/G          (rows, F_e)  features of every atom of element El, all frames,
                                           in dataset order (float64 or float32 as computed)
    /elements/<El>/frame_id   (rows,)      frame of each row (int64)
    /elements/<El>/atom       (rows,)      index of the atom within its frame (int32)
    /elements/<El>.attrs      labels (feature labels), n_features
    /frames/frame_id          (n_frames,)  dataset order (the index's order)
    /frames/atom_offset       (n_frames+1,) atom offsets of the frames in dataset order
    /frames/n_atoms, file, file_index      where each frame came from (file relative to the index)
    /atoms/species            (n_atoms,)   element index (into attrs["elements"]) per atom
    /atoms/row                (n_atoms,)   row of that atom in its element's G
    /stats/<El>/min, max, mean, std        per feature, over the training split's atoms
                                           (all frames when no split was given); attrs n_rows
    /.attrs                   complete, key, featureset_hash, frames_key, dtype, elements,
                              featureset_name, featureset_yaml, meltpot_version, stats_over
                              ("train" or "all"), stats_key, n_frames, n_atoms, format_version

The cache **key** is sha256 of (feature-set :meth:`~meltpot.descriptors.featureset.FeatureSet.content_hash`,
frames key, dtype, format version); the **frames key** is sha256 over the index rows in
order of (sha256 of the frame's file, index of the frame in the file). A changed frame file
or feature set recomputes everything; a touched but identical file changes nothing; a
changed split recomputes only the statistics (the features are kept).

:func:`build_cache` computes chunk by chunk (one frames file read at a time, ``chunk_frames``
frames appended to resizable datasets at a time), writes ``<out>.partial`` and renames it
when ``complete`` is set. An existing file that cannot be read, is incomplete, fails its
checksums (every dataset carries Fletcher-32 checksums) or has another key is reported
with a warning naming the file and the reason, and rebuilt — never used.
:class:`DescriptorCache` reads a finished file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import yaml

from ..errors import FrameError, MeltpotError
from .featureset import FeatureSet

log = logging.getLogger("meltpot.descriptors.cache")

#: Version of the file layout; part of the key, so a layout change recomputes.
FORMAT_VERSION = 1
DTYPES = ("float64", "float32")
#: rows of the HDF5 chunks aim at about this many bytes
_CHUNK_BYTES = 1 << 20
#: rows read at once when computing statistics or verifying
_READ_ROWS = 1 << 16


class CacheError(MeltpotError):
    """A descriptor cache file that cannot be used (unreadable, incomplete, corrupt)."""


# ----------------------------------------------------------------------------------------
# keys


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _check_dtype(dtype) -> str:
    name = str(dtype).replace("torch.", "")
    if name not in DTYPES:
        raise MeltpotError(f"descriptor dtype {dtype!r} unknown; allowed: {', '.join(DTYPES)}")
    return name


def read_index(index_path: str | os.PathLike) -> pd.DataFrame:
    """The dataset index (checks the columns the cache needs)."""
    index_path = Path(index_path)
    if not index_path.exists():
        raise MeltpotError(f"dataset index {index_path} does not exist")
    try:
        index = pd.read_parquet(index_path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
        raise MeltpotError(f"{index_path}: cannot read the dataset index ({type(exc).__name__}: {exc})") from exc
    missing = sorted({"frame_id", "file", "file_index", "n_atoms"} - set(index.columns))
    if missing:
        raise MeltpotError(f"{index_path}: not a dataset index (missing columns {', '.join(missing)})")
    if index.empty:
        raise MeltpotError(f"{index_path}: the dataset index has no frames")
    if index["frame_id"].duplicated().any():
        dup = index.loc[index["frame_id"].duplicated(), "frame_id"].iloc[0]
        raise MeltpotError(f"{index_path}: frame_id {dup} appears twice")
    return index


def frames_key(index: pd.DataFrame, root: str | os.PathLike, index_path: str = "dataset index") -> str:
    """sha256 over the index rows in order of (sha256 of the frame's file, file_index).

    Each file is hashed once. A file listed in the index but missing raises MeltpotError.
    """
    from ..data.io import file_sha256

    root = Path(root)
    hashes: dict[str, str] = {}
    h = hashlib.sha256()
    for file, file_index in zip(index["file"], index["file_index"]):
        if file not in hashes:
            path = root / file
            if not path.is_file():
                raise MeltpotError(f"{index_path} lists frames of {file}, but {path} does not exist "
                                   "(index and frame files do not match; rebuild the dataset)")
            hashes[file] = file_sha256(path)
        h.update(f"{hashes[file]}:{int(file_index)}\n".encode())
    return h.hexdigest()


def cache_key(featureset_hash: str, frames_key_: str, dtype: str) -> str:
    """The cache key: sha256 of feature-set hash, frames key, dtype and the format version."""
    return _sha({"featureset": featureset_hash, "frames": frames_key_, "dtype": _check_dtype(dtype),
                 "format": FORMAT_VERSION})


def _load_splits(splits, index: pd.DataFrame) -> pd.DataFrame | None:
    if splits is None:
        return None
    if not isinstance(splits, pd.DataFrame):
        from ..data.splits import read_splits

        if not Path(splits).exists():
            raise MeltpotError(f"split table {splits} does not exist")
        source = str(splits)
        splits = read_splits(splits)
    else:
        source = "split table"
    ids_index = set(index["frame_id"].astype(int))
    ids_split = set(splits["frame_id"].astype(int))
    if ids_index != ids_split:
        extra, missing = sorted(ids_split - ids_index), sorted(ids_index - ids_split)
        raise MeltpotError(f"{source} does not match the dataset index: "
                           + (f"frames {extra[:5]} are not in the index " if extra else "")
                           + (f"frames {missing[:5]} have no split" if missing else ""))
    return splits


def stats_key(splits: pd.DataFrame | None) -> str:
    """``"all"`` without a split, else sha256 over (frame_id, split) sorted by frame."""
    if splits is None:
        return "all"
    s = splits.sort_values("frame_id")
    return _sha([[int(f), str(x)] for f, x in zip(s["frame_id"], s["split"])])


# ----------------------------------------------------------------------------------------
# inspection


def _attr_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def inspect_h5(path: str | os.PathLike, check) -> tuple[bool, str]:
    """``(usable, reason)`` of an HDF5 file: missing, unreadable or corrupt (whatever h5py
    raises), or what ``check(file)`` objects to (a reason string; None: usable)."""
    path = Path(path)
    if not path.exists():
        return False, "does not exist"
    try:
        with h5py.File(path, "r") as f:
            reason = check(f)
    except Exception as exc:  # noqa: BLE001 - whatever h5py raises, the file is not usable
        return False, f"unreadable or corrupt ({type(exc).__name__}: {exc})"
    return (False, reason) if reason else (True, "ok")


def inspect_cache(path: str | os.PathLike, key: str | None = None, verify: bool = False) -> tuple[bool, str]:
    """``(usable, reason)`` for a cache file: whether it is complete, readable, consistent and
    (if ``key`` is given) has that key. ``verify`` reads every dataset once (Fletcher-32)."""

    def check(f) -> str | None:
        a = f.attrs
        if "complete" not in a or "key" not in a:
            return "not a meltpot descriptor cache (no key/complete attributes)"
        if int(a.get("format_version", -1)) != FORMAT_VERSION:
            return f"written in layout version {a.get('format_version')}, expected {FORMAT_VERSION}"
        if not bool(a["complete"]):
            return "incomplete (complete = False: an interrupted or failed computation)"
        elements = [_attr_str(e) for e in a["elements"]]
        n_atoms, n_frames = int(a["n_atoms"]), int(a["n_frames"])
        rows = 0
        for el in elements:
            g = f[f"elements/{el}"]
            if not (g["G"].shape[0] == g["frame_id"].shape[0] == g["atom"].shape[0]):
                return f"element {el}: G, frame_id and atom have different lengths"
            rows += g["G"].shape[0]
            for k in ("min", "max", "mean", "std"):
                if f[f"stats/{el}/{k}"].shape != (g["G"].shape[1],):
                    return f"stats/{el}/{k} has the wrong shape"
        if rows != n_atoms or f["atoms/species"].shape != (n_atoms,) or f["atoms/row"].shape != (n_atoms,):
            return f"atom counts do not add up ({rows} rows for {n_atoms} atoms)"
        if f["frames/atom_offset"].shape != (n_frames + 1,) or int(f["frames/atom_offset"][-1]) != n_atoms:
            return "frame offsets do not match the atom count"
        if verify:
            _verify(f)
        if key is not None and _attr_str(a["key"]) != key:
            return "stale (key differs)"
        return None

    return inspect_h5(path, check)


def _verify(f: h5py.File) -> None:
    """Read every dataset once so that HDF5 checks its Fletcher-32 checksums."""
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            if obj.ndim == 0:
                obj[()]
            for s in range(0, obj.shape[0] if obj.ndim else 0, _READ_ROWS):
                obj[s:s + _READ_ROWS]
    f.visititems(visit)


def _stale_reason(path: Path, fs_hash: str, fkey: str, dtype: str) -> str:
    with h5py.File(path, "r") as f:
        a = f.attrs
        parts = []
        if _attr_str(a.get("featureset_hash", "")) != fs_hash:
            parts.append("the feature set changed")
        if _attr_str(a.get("frames_key", "")) != fkey:
            parts.append("the frames changed")
        if _attr_str(a.get("dtype", "")) != dtype:
            parts.append(f"dtype {_attr_str(a.get('dtype', ''))} → {dtype}")
    return "stale: " + (", ".join(parts) or "key differs")


# ----------------------------------------------------------------------------------------
# building


@dataclass
class BuildResult:
    """What :func:`build_cache` did: ``action`` is ``computed``, ``stats`` (statistics only)
    or ``reused``; ``reason`` why; ``rate`` in atom environments per second when computed."""

    path: Path
    action: str
    reason: str
    n_frames: int
    n_atoms: int
    seconds: float
    rate: float | None = None


def data_elements(index: pd.DataFrame) -> list[str] | None:
    """Elements of the dataset from the index's ``symbols`` column (None without it)."""
    if "symbols" not in index:
        return None
    return sorted({s for row in index["symbols"] for s in str(row).split(",") if s})


def check_elements(featureset: FeatureSet, index: pd.DataFrame, root: Path, index_path: str) -> None:
    """Feature-set elements missing from the data → MeltpotError; a frame with an element the
    feature set lacks → FrameError naming its file and frame (from the index, before computing)."""
    present = data_elements(index)
    if present is None:
        return
    absent = [e for e in featureset.elements if e not in present]
    if absent:
        raise MeltpotError(f"feature set {featureset.name} has functions for element(s) {', '.join(absent)}, "
                           f"which the dataset {index_path} does not contain (its elements: {', '.join(present)}); "
                           "use a feature set for the data's elements")
    known = set(featureset.elements)
    for file, file_index, symbols in zip(index["file"], index["file_index"], index["symbols"]):
        unknown = sorted(set(str(symbols).split(",")) - known - {""})
        if unknown:
            raise FrameError(str(root / file), int(file_index),
                             f"element(s) {', '.join(unknown)} not in feature set {featureset.name} "
                             f"(elements {featureset.elements})")


def build_cache(index_path: str | os.PathLike, out: str | os.PathLike, featureset: FeatureSet, *,
                splits=None, dtype: str = "float64", device: str = "cpu", chunk_frames: int = 32,
                progress: bool = True, atom_chunk: int | None = None, verify: bool = True) -> BuildResult:
    """Make ``out`` an up-to-date descriptor cache of the dataset ``index_path`` (see module docstring).

    ``splits``: split table (path or DataFrame) whose ``train`` frames give the statistics;
    None: statistics over all frames. ``dtype``: float64 or float32 (computation and
    storage). ``device``: cpu or cuda. ``chunk_frames``: frames computed before each write.
    ``atom_chunk``: centres per block inside the symmetry functions (default 32 on CPU,
    where the M×M neighbour-pair tables then stay in cache, 512 on CUDA). ``verify``: read
    an existing cache once (checksums) before reusing it.
    """
    t0 = time.perf_counter()
    index_path, out = Path(index_path), Path(out)
    dtype = _check_dtype(dtype)
    if chunk_frames < 1:
        raise MeltpotError(f"chunk_frames must be >= 1, got {chunk_frames}")
    index = read_index(index_path)
    root = index_path.parent
    check_elements(featureset, index, root, str(index_path))
    split_table = _load_splits(splits, index)
    skey = stats_key(split_table)
    fs_hash = featureset.content_hash()
    fkey = frames_key(index, root, str(index_path))
    key = cache_key(fs_hash, fkey, dtype)
    n_frames, n_atoms = len(index), int(index["n_atoms"].sum())

    if out.exists():
        usable, reason = inspect_cache(out, verify=verify)
        if usable:
            with h5py.File(out, "r") as f:
                same = _attr_str(f.attrs["key"]) == key
                same_stats = _attr_str(f.attrs.get("stats_key", "")) == skey
            if same and same_stats:
                log.info("%s: up to date (key %s); reused", out, key[:12])
                return BuildResult(out, "reused", "up to date", n_frames, n_atoms, time.perf_counter() - t0)
            if same:
                log.info("%s: features up to date; the split changed: recomputing the statistics only", out)
                with h5py.File(out, "r+") as f:
                    f.attrs["complete"] = False
                    f.flush()
                    _write_stats(f, split_table, skey)
                    f.attrs["complete"] = True
                return BuildResult(out, "stats", "split changed", n_frames, n_atoms, time.perf_counter() - t0)
            reason = _stale_reason(out, fs_hash, fkey, dtype)
        log.warning("descriptor cache %s is %s; rebuilding it", out, reason)
    else:
        reason = "no cache yet"
        log.info("%s: no cache yet; computing", out)

    rate = _compute(index, root, out, featureset, split_table, skey, key, fs_hash, fkey, dtype, device,
                    chunk_frames, progress, atom_chunk, str(index_path))
    return BuildResult(out, "computed", reason, n_frames, n_atoms, time.perf_counter() - t0, rate)


def _rows_per_chunk(n_features: int, itemsize: int) -> int:
    return max(256, _CHUNK_BYTES // max(1, n_features * itemsize))


def _compute(index, root, out, featureset, split_table, skey, key, fs_hash, fkey, dtype, device,
             chunk_frames, progress, atom_chunk, index_name) -> float:
    import torch
    from tqdm import tqdm

    from .. import __version__
    from ..data.io import read_frames
    from .compute import AtomsDescriptor

    if device == "cuda" and not torch.cuda.is_available():
        raise MeltpotError("descriptors.device = cuda, but torch sees no CUDA device")
    if atom_chunk is None:
        atom_chunk = 32 if device == "cpu" else 512
    desc = AtomsDescriptor(featureset, dtype=getattr(torch, dtype), device=device, chunk_size=atom_chunk)
    elements = featureset.elements
    n_el = len(elements)
    nfeat = [featureset.n_features(e) for e in elements]
    np_dtype = np.dtype(dtype)
    n_frames = len(index)
    counts = index["n_atoms"].to_numpy(dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    n_atoms = int(offsets[-1])

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        partial.unlink()
    str_dt = h5py.string_dtype()
    t_start = time.perf_counter()
    try:
        with h5py.File(partial, "w") as f:
            a = f.attrs
            a["complete"] = False
            a["format_version"] = FORMAT_VERSION
            a["key"] = key
            a["featureset_hash"] = fs_hash
            a["frames_key"] = fkey
            a["dtype"] = dtype
            a["device"] = device
            a["backend"] = desc.backend
            a["elements"] = np.array(elements, dtype=str_dt)
            a["featureset_name"] = featureset.name
            a["featureset_yaml"] = yaml.safe_dump(featureset.to_dict(), sort_keys=False)
            a["cutoff_radius"] = featureset.cutoff_radius
            a["meltpot_version"] = __version__
            a["index_file"] = str(index_name)
            a["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            a["n_frames"] = n_frames
            a["n_atoms"] = n_atoms
            ds_G, ds_fid, ds_atom = [], [], []
            for e, nf in zip(elements, nfeat):
                g = f.create_group(f"elements/{e}")
                g.attrs["labels"] = np.array(featureset.labels(e), dtype=str_dt)
                g.attrs["n_features"] = nf
                rows = _rows_per_chunk(nf, np_dtype.itemsize)
                ds_G.append(g.create_dataset("G", shape=(0, nf), maxshape=(None, nf), dtype=np_dtype,
                                             chunks=(rows, nf), fletcher32=True))
                ds_fid.append(g.create_dataset("frame_id", shape=(0,), maxshape=(None,), dtype=np.int64,
                                               chunks=(1 << 16,), fletcher32=True))
                ds_atom.append(g.create_dataset("atom", shape=(0,), maxshape=(None,), dtype=np.int32,
                                                chunks=(1 << 16,), fletcher32=True))
            fr = f.create_group("frames")
            kw = dict(chunks=True, fletcher32=True)
            fr.create_dataset("frame_id", data=index["frame_id"].to_numpy(dtype=np.int64), **kw)
            fr.create_dataset("atom_offset", data=offsets, **kw)
            fr.create_dataset("n_atoms", data=counts, **kw)
            fr.create_dataset("file", data=np.array(index["file"].astype(str).tolist(), dtype=str_dt))
            fr.create_dataset("file_index", data=index["file_index"].to_numpy(dtype=np.int64), **kw)
            at = f.create_group("atoms")
            species_ds = at.create_dataset("species", shape=(n_atoms,), dtype=np.int16, chunks=(min(n_atoms, 1 << 16),),
                                           fletcher32=True)
            row_ds = at.create_dataset("row", shape=(n_atoms,), dtype=np.int64, chunks=(min(n_atoms, 1 << 16),),
                                       fletcher32=True)

            n_rows = [0] * n_el
            buf: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (position, frame_id, G, species)

            def flush():
                if not buf:
                    return
                pos0 = buf[0][0]
                species_all = np.concatenate([b[3] for b in buf])
                rows_all = np.empty(len(species_all), dtype=np.int64)
                start = 0
                per_el = [([], [], []) for _ in range(n_el)]
                for _, fid, G, sp in buf:
                    for k in range(n_el):
                        sel = np.flatnonzero(sp == k)
                        if sel.size:
                            per_el[k][0].append(G[sel, : nfeat[k]])
                            per_el[k][1].append(np.full(sel.size, fid, dtype=np.int64))
                            per_el[k][2].append(sel.astype(np.int32))
                            rows_all[start + sel] = n_rows[k] + np.arange(sel.size)
                            n_rows[k] += sel.size
                    start += len(sp)
                for k in range(n_el):
                    if per_el[k][0]:
                        for ds, parts in zip((ds_G[k], ds_fid[k], ds_atom[k]), per_el[k]):
                            block = np.concatenate(parts)
                            m = ds.shape[0]
                            ds.resize(m + len(block), axis=0)
                            ds[m:] = block
                a0 = int(offsets[pos0])
                species_ds[a0:a0 + len(species_all)] = species_all
                row_ds[a0:a0 + len(species_all)] = rows_all
                buf.clear()

            bar = tqdm(total=n_frames, unit="frame", disable=not progress, mininterval=1.0,
                       desc=f"descriptors {featureset.name}", dynamic_ncols=True)
            done_atoms = 0
            cur_file, cur_frames = None, None
            try:
                for pos, (fid, file, file_index, n_at) in enumerate(zip(index["frame_id"], index["file"],
                                                                         index["file_index"], counts)):
                    path = root / file
                    if file != cur_file:
                        cur_file, cur_frames = file, None  # one frames file in memory at a time
                        if not path.is_file():
                            raise MeltpotError(f"{index_name} lists frames of {file}, but {path} does not exist")
                        cur_frames = read_frames(path)
                    if not 0 <= int(file_index) < len(cur_frames):
                        raise FrameError(str(path), int(file_index),
                                         f"the index lists this frame but the file has {len(cur_frames)} frames "
                                         "(index and frame files do not match; rebuild the dataset)")
                    atoms = cur_frames[int(file_index)]
                    if len(atoms) != n_at:
                        raise FrameError(str(path), int(file_index),
                                         f"{len(atoms)} atoms, but the index says {n_at} "
                                         "(index and frame files do not match; rebuild the dataset)")
                    G, species = desc.features(atoms, source=str(path), frame=int(file_index))
                    buf.append((pos, int(fid), G.cpu().numpy().astype(np_dtype, copy=False),
                                species.cpu().numpy().astype(np.int16)))
                    done_atoms += int(n_at)
                    if len(buf) >= chunk_frames:
                        flush()
                        bar.set_postfix_str(f"{done_atoms / (time.perf_counter() - t_start):.0f} atoms/s",
                                            refresh=False)
                    bar.update(1)
                flush()
            finally:
                bar.close()
            seconds = time.perf_counter() - t_start
            rate = n_atoms / seconds if seconds > 0 else float("inf")
            for k, e in enumerate(elements):
                f[f"elements/{e}"].attrs["n_rows"] = n_rows[k]
            a["seconds"] = seconds
            _write_stats(f, split_table, skey)
            a["complete"] = True
        os.replace(partial, out)
    finally:
        if partial.exists():
            partial.unlink()
    log.info("%s: %d frames, %d atom environments in %.1f s (%.0f atom environments/s, %s, %s)",
             out, n_frames, n_atoms, seconds, rate, dtype, device)
    return rate


def _write_stats(f: h5py.File, split_table: pd.DataFrame | None, skey: str) -> None:
    """(Re)write /stats from the features in ``f``: over the train frames, or all frames."""
    if "stats" in f:
        del f["stats"]
    train = None
    if split_table is not None:
        train = np.sort(split_table.loc[split_table["split"] == "train", "frame_id"].to_numpy(dtype=np.int64))
    elements = [_attr_str(e) for e in f.attrs["elements"]]
    for el in elements:
        g = f[f"elements/{el}"]
        G, fid = g["G"], g["frame_id"]
        nf = G.shape[1]
        n, mean, m2 = 0, np.zeros(nf), np.zeros(nf)
        lo, hi = np.full(nf, np.inf), np.full(nf, -np.inf)
        for s in range(0, G.shape[0], _READ_ROWS):
            x = np.asarray(G[s:s + _READ_ROWS], dtype=np.float64)
            if train is not None:
                x = x[np.isin(fid[s:s + _READ_ROWS], train)]
            nb = x.shape[0]
            if nb == 0:
                continue
            mb = x.mean(0)
            m2b = ((x - mb) ** 2).sum(0)
            delta = mb - mean
            tot = n + nb
            mean = mean + delta * (nb / tot)
            m2 = m2 + m2b + delta ** 2 * (n * nb / tot)
            n = tot
            lo, hi = np.minimum(lo, x.min(0)), np.maximum(hi, x.max(0))
        if n == 0:
            log.warning("element %s has no atoms in the %s frames: its statistics are NaN", el,
                        "training" if train is not None else "")
            lo = hi = mean = np.full(nf, np.nan)
            std = np.full(nf, np.nan)
        else:
            std = np.sqrt(m2 / n)
        sg = f.create_group(f"stats/{el}")
        for name, val in (("min", lo), ("max", hi), ("mean", mean), ("std", std)):
            sg.create_dataset(name, data=np.asarray(val, dtype=np.float64))
        sg.attrs["n_rows"] = n
        sg.attrs["labels"] = g.attrs["labels"]
    f.attrs["stats_over"] = "all" if train is None else "train"
    f.attrs["stats_key"] = skey
    f.attrs["stats_frames"] = int(f.attrs["n_frames"]) if train is None else len(train)


# ----------------------------------------------------------------------------------------
# reading


def _runs(idx: np.ndarray) -> Iterable[tuple[int, int]]:
    """Contiguous runs ``(start, stop)`` of sorted indices."""
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [idx.size]])
    return [(int(idx[a]), int(idx[b - 1]) + 1) for a, b in zip(starts, stops)]


class DescriptorCache:
    """Read access to a finished descriptor cache (see module docstring).

    Raises :class:`CacheError` for a file that is missing, unreadable or incomplete. Use as a
    context manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise CacheError(f"descriptor cache {self.path} does not exist")
        usable, reason = inspect_cache(self.path)
        if not usable:
            raise CacheError(f"descriptor cache {self.path} is {reason}")
        self._f = h5py.File(self.path, "r")
        a = self._f.attrs
        self.elements: list[str] = [_attr_str(e) for e in a["elements"]]
        self.key: str = _attr_str(a["key"])
        self.dtype: str = _attr_str(a["dtype"])
        self._frame_pos: dict[int, int] | None = None
        self._fid_cache: dict[str, np.ndarray] = {}

    # -- context
    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read(self, ds, sl=slice(None)):
        try:
            return ds[sl]
        except (OSError, RuntimeError) as exc:  # a checksum failure inside HDF5
            raise CacheError(f"descriptor cache {self.path}: {ds.name} is corrupt ({exc}); delete it "
                             "and recompute") from exc

    def _group(self, el: str):
        if el not in self.elements:
            raise CacheError(f"descriptor cache {self.path} has no element {el!r}; elements: {', '.join(self.elements)}")
        return self._f[f"elements/{el}"]

    # -- metadata
    @property
    def n_frames(self) -> int:
        return int(self._f.attrs["n_frames"])

    @property
    def n_atoms(self) -> int:
        return int(self._f.attrs["n_atoms"])

    @property
    def frame_ids(self) -> np.ndarray:
        """Frame ids in dataset order."""
        return self._read(self._f["frames/frame_id"])

    @property
    def atom_offset(self) -> np.ndarray:
        return self._read(self._f["frames/atom_offset"])

    def labels(self, el: str) -> list[str]:
        return [_attr_str(s) for s in self._group(el).attrs["labels"]]

    def n_features(self, el: str) -> int:
        return int(self._group(el)["G"].shape[1])

    def n_rows(self, el: str) -> int:
        return int(self._group(el)["G"].shape[0])

    def featureset(self) -> FeatureSet:
        """The feature set the cache was computed with (from its stored YAML)."""
        return FeatureSet.from_dict(yaml.safe_load(_attr_str(self._f.attrs["featureset_yaml"])),
                                    source=str(self.path))

    # -- data
    def _frame_id_rows(self, el: str) -> np.ndarray:
        if el not in self._fid_cache:
            self._fid_cache[el] = self._read(self._group(el)["frame_id"])
        return self._fid_cache[el]

    def _select(self, el: str, frame_ids) -> np.ndarray | None:
        if frame_ids is None:
            return None
        ids = np.asarray(list(frame_ids) if not isinstance(frame_ids, np.ndarray) else frame_ids, dtype=np.int64)
        return np.flatnonzero(np.isin(self._frame_id_rows(el), ids))

    def _take(self, ds, rows: np.ndarray | None) -> np.ndarray:
        if rows is None:
            return self._read(ds)
        parts = [self._read(ds, slice(a, b)) for a, b in _runs(rows)]
        if not parts:
            return np.zeros((0,) + ds.shape[1:], dtype=ds.dtype)
        return np.concatenate(parts)

    def features(self, el: str, frame_ids=None) -> np.ndarray:
        """G rows (rows, F_e) of element ``el``: all, or those of the frames ``frame_ids`` (dataset order)."""
        g = self._group(el)
        return self._take(g["G"], self._select(el, frame_ids))

    def rows(self, el: str, frame_ids=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(G, frame_id, atom)`` of element ``el`` (all rows, or those of ``frame_ids``)."""
        g = self._group(el)
        sel = self._select(el, frame_ids)
        fid = self._frame_id_rows(el).copy() if sel is None else self._frame_id_rows(el)[sel]
        return self._take(g["G"], sel), fid, self._take(g["atom"], sel)

    def frame_features(self, frame_id: int) -> dict[str, np.ndarray]:
        """Features of one frame per element, rows in the frame's atom order ((0, F_e) if absent)."""
        if self._frame_pos is None:
            self._frame_pos = {int(f): k for k, f in enumerate(self.frame_ids)}
        if int(frame_id) not in self._frame_pos:
            raise CacheError(f"descriptor cache {self.path} has no frame {frame_id}")
        p = self._frame_pos[int(frame_id)]
        off = self._f["frames/atom_offset"]
        a0, a1 = int(off[p]), int(off[p + 1])
        species = self._read(self._f["atoms/species"], slice(a0, a1))
        rows = self._read(self._f["atoms/row"], slice(a0, a1))
        out = {}
        for k, el in enumerate(self.elements):
            r = rows[species == k]
            G = self._group(el)["G"]
            if r.size == 0:
                out[el] = np.zeros((0, G.shape[1]), dtype=G.dtype)
            else:
                lo = int(r.min())
                out[el] = self._read(G, slice(lo, int(r.max()) + 1))[r - lo]
        return out

    def species(self) -> np.ndarray:
        """Element index of every atom in dataset order."""
        return self._read(self._f["atoms/species"])

    def stats(self, el: str) -> dict:
        """``min``, ``max``, ``mean``, ``std`` (per feature), ``n_rows`` and ``over`` ("train"/"all")."""
        self._group(el)
        sg = self._f[f"stats/{el}"]
        out = {k: self._read(sg[k]) for k in ("min", "max", "mean", "std")}
        out["n_rows"] = int(sg.attrs["n_rows"])
        out["over"] = _attr_str(self._f.attrs["stats_over"])
        return out

    def info(self) -> dict:
        """Metadata as a JSON-able dict."""
        a = self._f.attrs
        return {
            "path": str(self.path),
            "key": self.key,
            "complete": bool(a["complete"]),
            "featureset": _attr_str(a["featureset_name"]),
            "featureset_hash": _attr_str(a["featureset_hash"]),
            "cutoff_radius": float(a["cutoff_radius"]),
            "frames_key": _attr_str(a["frames_key"]),
            "dtype": self.dtype,
            "device": _attr_str(a.get("device", "")),
            "elements": self.elements,
            "n_features": {el: self.n_features(el) for el in self.elements},
            "n_rows": {el: self.n_rows(el) for el in self.elements},
            "n_frames": self.n_frames,
            "n_atoms": self.n_atoms,
            "stats_over": _attr_str(a["stats_over"]),
            "stats_frames": int(a["stats_frames"]),
            "stats_key": _attr_str(a["stats_key"]) if "stats_key" in a else None,
            "meltpot_version": _attr_str(a["meltpot_version"]),
            "created": _attr_str(a.get("created", "")),
            "seconds": float(a.get("seconds", float("nan"))),
            "index_file": _attr_str(a.get("index_file", "")),
        }


# ----------------------------------------------------------------------------------------
# export

EXPORT_FORMATS = (".npz", ".csv", ".parquet")


def export_cache(path: str | os.PathLike, out: str | os.PathLike, element: str | None = None,
                 batch_rows: int = 1 << 17) -> int:
    """Write the features of a cache to ``out`` (.npz, .csv or .parquet); returns the rows written.

    npz: per element ``<El>/G``, ``<El>/frame_id``, ``<El>/atom``, ``<El>/labels``, and
    ``elements``. csv/parquet: one table with columns ``element``, ``frame_id``, ``atom``
    and the feature labels (the union over the exported elements, in order; a function an
    element lacks is NaN), element by element, written in batches of ``batch_rows``.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise MeltpotError(f"{out}: unknown export format {suffix or '(none)'}; use one of {', '.join(EXPORT_FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    total = 0
    try:
        with DescriptorCache(path) as c:
            elements = c.elements if element is None else [element]
            for el in elements:
                c._group(el)  # names the element if absent
            if suffix == ".npz":
                arrays = {"elements": np.array(elements)}
                for el in elements:
                    G, fid, atom = c.rows(el)
                    arrays.update({f"{el}/G": G, f"{el}/frame_id": fid, f"{el}/atom": atom,
                                   f"{el}/labels": np.array(c.labels(el))})
                    total += len(G)
                with open(tmp, "wb") as fh:
                    np.savez(fh, **arrays)
            else:
                columns: list[str] = []
                for el in elements:
                    columns += [lab for lab in c.labels(el) if lab not in columns]
                dtype = np.dtype(c.dtype)
                writer = None
                try:
                    for el in elements:
                        g = c._group(el)
                        labels = c.labels(el)
                        for s in range(0, c.n_rows(el), batch_rows):
                            sl = slice(s, s + batch_rows)
                            G = c._read(g["G"], sl)
                            table = np.full((len(G), len(columns)), np.nan, dtype=dtype)
                            table[:, [columns.index(lab) for lab in labels]] = G
                            df = pd.DataFrame(table, columns=columns)
                            df.insert(0, "atom", c._read(g["atom"], sl))
                            df.insert(0, "frame_id", c._read(g["frame_id"], sl))
                            df.insert(0, "element", el)
                            if suffix == ".csv":
                                df.to_csv(tmp, mode="w" if writer is None else "a", header=writer is None,
                                          index=False)
                                writer = True
                            else:
                                import pyarrow as pa
                                import pyarrow.parquet as pq

                                batch = pa.Table.from_pandas(df, preserve_index=False)
                                if writer is None:
                                    writer = pq.ParquetWriter(tmp, batch.schema)
                                writer.write_table(batch)
                            total += len(G)
                    if writer is None:  # no rows at all: an empty table with the columns
                        df = pd.DataFrame({"element": pd.Series(dtype=str), "frame_id": pd.Series(dtype=np.int64),
                                           "atom": pd.Series(dtype=np.int32),
                                           **{lab: pd.Series(dtype=dtype) for lab in columns}})
                        df.to_csv(tmp, index=False) if suffix == ".csv" else df.to_parquet(tmp, index=False)
                finally:
                    if writer is not None and writer is not True:
                        writer.close()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return total
