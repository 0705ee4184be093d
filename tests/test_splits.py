"""Train/validation/test splits."""

import numpy as np
import pandas as pd
import pytest

from meltpot.data.splits import make_splits
from meltpot.errors import MeltpotError


@pytest.fixture()
def index():
    states = np.repeat([f"s{i}" for i in range(10)], 20)
    return pd.DataFrame({"frame_id": np.arange(200), "state_id": states})


def test_by_frame_fractions_seeded(index):
    a = make_splits(index, seed=1)
    b = make_splits(index, seed=1)
    c = make_splits(index, seed=2)
    assert a["split"].value_counts().to_dict() == {"train": 160, "validation": 20, "test": 20}
    assert (a["split"] == b["split"]).all() and not (a["split"] == c["split"]).all()


def test_by_state_keeps_trajectories_whole(index):
    t = make_splits(index, by="state", seed=0)
    per_state = t.groupby("state_id")["split"].nunique()
    assert (per_state == 1).all()
    assert t.drop_duplicates("state_id")["split"].value_counts().to_dict() == {"train": 8, "validation": 1, "test": 1}


def test_holdout_states_only_in_test(index):
    t = make_splits(index, by="frame", holdout_states=["s3", "s7"], seed=0)
    held = t[t["state_id"].isin(["s3", "s7"])]
    assert (held["split"] == "test").all() and held["heldout"].all()
    assert not t.loc[~t["state_id"].isin(["s3", "s7"]), "heldout"].any()
    assert (t.loc[~t["heldout"], "split"] == "train").sum() == 128  # 0.8 of the 160 others


def test_errors(index):
    with pytest.raises(MeltpotError, match="s99"):
        make_splits(index, holdout_states=["s99"])
    with pytest.raises(MeltpotError, match="allowed: frame, state"):
        make_splits(index, by="trajectory")
