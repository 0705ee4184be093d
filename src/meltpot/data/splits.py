"""Train/validation/test splits, seeded, by frame or by whole trajectory (state).

States listed as hold-out go entirely to ``test`` (and are flagged ``heldout``): the
thesis kept 950 K, 2000 K and 8000 K out of training to test transferability. The split
is stored as a Parquet table (``frame_id``, ``state_id``, ``split``, ``heldout``) that every
later stage reads, so that all of them see the same partition.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MeltpotError

SPLITS = ("train", "validation", "test")


def _cut(n: int, fractions: tuple[float, float, float]) -> np.ndarray:
    """Split labels for ``n`` shuffled items: counts by largest remainder, in SPLITS order."""
    raw = np.array(fractions) * n
    counts = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    return np.repeat(np.arange(3), counts)


def make_splits(index: pd.DataFrame, by: str = "frame", train: float = 0.8, validation: float = 0.1,
                test: float = 0.1, holdout_states=(), seed: int = 0) -> pd.DataFrame:
    """Assign every frame of ``index`` to a split (see module docstring)."""
    if by not in ("frame", "state"):
        raise MeltpotError(f"split.by = {by!r} unknown; allowed: frame, state")
    fractions = (train, validation, test)
    if abs(sum(fractions) - 1) > 1e-6:
        raise MeltpotError(f"split fractions add up to {sum(fractions):g}, not 1")
    unknown = sorted(set(holdout_states) - set(index["state_id"]))
    if unknown:
        raise MeltpotError(f"holdout states {', '.join(unknown)} are not in the dataset")
    rng = np.random.default_rng(seed)
    held = index["state_id"].isin(list(holdout_states)).to_numpy()
    split = np.full(len(index), 2, dtype=int)  # test
    pool = np.flatnonzero(~held)
    if by == "frame":
        order = rng.permutation(pool)
        split[order] = _cut(len(order), fractions)
    else:
        states = index.loc[pool, "state_id"].unique()
        if len(states) < 2 and len(states) > 0:
            raise MeltpotError("split.by = state needs at least two states outside the hold-out list")
        order = rng.permutation(states)
        labels = _cut(len(order), fractions)
        if len(order) >= 2 and not (labels == 0).any():
            labels[0] = 0
        lookup = dict(zip(order, labels))
        split[pool] = index.loc[pool, "state_id"].map(lookup).to_numpy()
    return pd.DataFrame({
        "frame_id": index["frame_id"].to_numpy(),
        "state_id": index["state_id"].to_numpy(),
        "split": pd.Categorical([SPLITS[s] for s in split], categories=list(SPLITS)),
        "heldout": held,
    })


def read_splits(path: str | Path) -> pd.DataFrame:
    """Read a split table written by :func:`make_splits` (checks its columns)."""
    df = pd.read_parquet(path)
    missing = {"frame_id", "split"} - set(df.columns)
    if missing:
        raise MeltpotError(f"{path}: not a split table (missing columns {', '.join(sorted(missing))})")
    return df
