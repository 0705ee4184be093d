"""Datasets of the loop: the fixed held-out test set and each member's train/validation split.

The held-out set is fixed once, from the initial data (iteration 0): the frames the config's
``split`` block puts in ``test`` (whole states with ``split.by: state`` or ``holdout_states``),
plus every frame of ``active_learning.test_files``. No member ever trains on them.

A frame's place in a member's split depends only on its source (file, index in the file) and
the member: ``validation`` when a hash of (seed, member, source) falls below
``validation_fraction``. So each member sees its own split, and a frame keeps its place in
every later iteration (frames added by the loop just join).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MeltpotError

HELDOUT_COLUMNS = ("source", "file_index")


def _source(root: Path, file: str) -> str:
    return str((Path(root) / file).resolve())


def heldout_frames(cfg: dict, index_path, *, config_dir=None) -> tuple[list, pd.DataFrame]:
    """(frames, table) of the held-out set from the initial dataset index (see module doc); the
    table names each frame's source file (absolute) and index, empty for ``test_files`` frames."""
    from ..data.dataset import split_dataset
    from ..data.index import read_index_frames
    from ..data.io import read_frames

    index_path = Path(index_path)
    index = pd.read_parquet(index_path)
    table, _ = split_dataset(cfg, index)
    test_ids = table.loc[table["split"] == "test", "frame_id"].to_numpy(np.int64)
    frames, sources = read_index_frames(index, index_path.parent, test_ids) if test_ids.size else ([], [])
    rows = [{"source": str(Path(s).resolve()), "file_index": i} for s, i in sources]
    base = Path(config_dir or cfg.get("_base_dir") or ".")
    for name in cfg["active_learning"]["test_files"]:
        path = Path(name) if Path(name).is_absolute() else base / name
        if not path.is_file():
            raise MeltpotError(f"active_learning.test_files: {path} does not exist")
        extra = read_frames(path)
        frames += extra
        rows += [{"source": "", "file_index": -1}] * len(extra)
    if not frames:
        raise MeltpotError(f"the held-out set is empty: the split of {index_path} has no test frames and "
                           "active_learning.test_files is empty (set split.test > 0 or add test files)")
    return frames, pd.DataFrame(rows, columns=list(HELDOUT_COLUMNS))


def _unit_interval(seed: int, member: int, source: str, file_index: int) -> float:
    blob = f"{seed}:{member}:{source}:{file_index}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") / 2.0 ** 64


def member_splits(index: pd.DataFrame, root, heldout: pd.DataFrame, *, members: int, seed: int,
                  validation_fraction: float) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """(pool split, member splits) of an iteration's index: held-out frames are ``test`` in all;
    the pool split puts every other frame in ``train`` (the descriptor statistics and the
    derivative store cover them all), member k's split draws its validation frames as the module
    docstring says."""
    from ..data.splits import SPLITS

    sources = [_source(root, f) for f in index["file"]]
    held = set(zip(heldout["source"], heldout["file_index"].astype(int)))
    is_test = np.array([(s, int(i)) in held for s, i in zip(sources, index["file_index"])], dtype=bool)
    if is_test.all():
        raise MeltpotError("every frame of the iteration's dataset is held out: nothing to train on")

    def table(labels):
        return pd.DataFrame({"frame_id": index["frame_id"].to_numpy(), "state_id": index["state_id"].to_numpy(),
                             "split": pd.Categorical(labels, categories=list(SPLITS)), "heldout": is_test})

    pool = table(np.where(is_test, "test", "train"))
    out = []
    for k in range(members):
        u = np.array([_unit_interval(seed, k, s, int(i)) for s, i in zip(sources, index["file_index"])])
        labels = np.where(is_test, "test", np.where(u < validation_fraction, "validation", "train"))
        if not (labels == "train").any():
            raise MeltpotError(f"member {k} has no training frames (validation_fraction {validation_fraction})")
        out.append(table(labels))
    return pool, out
