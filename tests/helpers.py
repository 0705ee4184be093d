"""Helpers shared by tests: assemble a dataset as the workflow does; finite differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from meltpot.data.index import build_index
from meltpot.data.io import read_frames, write_frames
from meltpot.data.splits import make_splits
from meltpot.descriptors.cache import build_cache


def assemble_dataset(root: Path, files: dict, featureset, cache: Path, split_kw: dict,
                     dataset_dir: Path | None = None, units: str = "metal") -> dict:
    """Write ``files`` ({name: frames}) to root/frames/<name>.extxyz, then the dataset index and
    splits (in ``dataset_dir``, default root/dataset) and the descriptor cache ``cache``.

    Returns paths ``index``, ``splits``, ``cache`` and the index DataFrame ``index_df``.
    """
    root = Path(root)
    (root / "frames").mkdir(exist_ok=True)
    ds = Path(dataset_dir) if dataset_dir is not None else root / "dataset"
    ds.mkdir(exist_ok=True)
    entries = []
    for name, frames in files.items():
        path = root / "frames" / f"{name}.extxyz"
        write_frames(path, frames)
        entries += [(path, fr.info["source_index"], fr) for fr in read_frames(path)]
    index = build_index(entries, root=ds, units=units)
    index.to_parquet(ds / "index.parquet", index=False)
    make_splits(index, **split_kw).to_parquet(ds / "splits.parquet", index=False)
    build_cache(ds / "index.parquet", cache, featureset, splits=ds / "splits.parquet", progress=False)
    return {"index": ds / "index.parquet", "splits": ds / "splits.parquet", "cache": Path(cache), "index_df": index}


def fd_stress(energy_of, atoms, h: float = 1e-5) -> np.ndarray:
    """(1/V) ∂E/∂ε by central differences of a homogeneous strain (cell and positions by I + ε)."""
    out = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = []
            for sign in (1, -1):
                deform = np.eye(3)
                deform[a, b] += sign * h
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ deform, scale_atoms=False)
                strained.positions = atoms.positions @ deform
                e.append(energy_of(strained))
            out[a, b] = (e[0] - e[1]) / (2 * h) / atoms.get_volume()
    return out
