"""Filter baselines for feature selection (Pearson greedy, CUR, FPS): the selection rules on
synthetic matrices whose answer is known, agreement of the CUR/FPS wrappers with skmatter
on the standardised matrix, and per-element selection on a real descriptor cache (rattled
fcc Al/Ni cells labelled by ASE's EMT, assembled with the package functions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skmatter.feature_selection import CUR, FPS

from helpers import assemble_dataset, emt_alni_frame
from meltpot.descriptors.cache import DescriptorCache
from meltpot.descriptors.featureset import grid
from meltpot.errors import ConfigError, MeltpotError
from meltpot.selection.filters import (FILTERS, CURSelector, FPSSelector, PearsonSelector, filtered_featureset,
                                       make_filter, select_per_element, subsample_rows)


# ----------------------------------------------------------------------------------------
# synthetic matrices


def duplicate_matrix(n=2000, seed=0):
    """Columns (shuffled): 4 independent ones of different scales and shapes; group A =
    x, 2x+1, x + 1 % noise, −3x; group B = y, y + 1 % noise. Returns X, groups, independent."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=n), rng.exponential(size=n)
    cols = {
        "i0": rng.normal(size=n), "i1": 5.0 * rng.uniform(size=n), "i2": rng.standard_t(5, size=n),
        "i3": 0.01 * rng.normal(size=n) + 3.0,
        "a0": x, "a1": 2 * x + 1, "a2": x + 0.01 * rng.normal(size=n), "a3": -3 * x,
        "b0": y, "b1": y + 0.01 * rng.normal(size=n),
    }
    names = list(cols)
    order = np.random.default_rng(1).permutation(len(names))
    names = [names[k] for k in order]
    X = np.column_stack([cols[k] for k in names])
    pos = {k: i for i, k in enumerate(names)}
    groups = [[pos[k] for k in names if k.startswith(g)] for g in ("a", "b")]
    independent = [pos[k] for k in names if k.startswith("i")]
    return X, groups, independent


def assert_no_duplicate_before_independents(selected, groups, independent):
    """A second member of a group may only come after all independent columns and one
    member of every group."""
    seen = set()
    for p, j in enumerate(selected):
        g = next((k for k, grp in enumerate(groups) if j in grp), None)
        if g is not None and g in seen:
            assert set(independent) <= set(selected[:p]), f"second member of group {g} at position {p}: {selected}"
            assert seen == set(range(len(groups)))
        if g is not None:
            seen.add(g)


@pytest.mark.parametrize("aggregate", ["mean", "max"])
@pytest.mark.parametrize("start", ["decorrelated", "variance"])
def test_pearson_never_picks_a_duplicate_before_the_independent_columns(aggregate, start):
    X, groups, independent = duplicate_matrix()
    sel = PearsonSelector(X.shape[1], aggregate=aggregate, start=start).fit(X)
    order = [int(i) for i in sel.selected_idx_]
    assert sorted(order) == list(range(X.shape[1]))
    assert_no_duplicate_before_independents(order, groups, independent)
    # the first 6 picks: the 4 independent columns and one member of each group
    first = set(order[:6])
    assert set(independent) <= first and all(len(first & set(g)) == 1 for g in groups)
    if start == "variance":
        assert order[0] == int(np.argmax(X.var(axis=0)))
    # scores: the first is the mean |ρ| to all others, later ones never exceed 1
    assert sel.scores_.shape == (X.shape[1],) and np.all(sel.scores_ <= 1 + 1e-12)


def test_pearson_follows_the_thesis_rule():
    """Against a direct implementation with np.corrcoef: start at the lowest mean |ρ| to all
    others, then add the lowest mean |ρ| to the selected set (and the max variant)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 9)) @ rng.normal(size=(9, 9)) + rng.normal(size=9)
    R = np.abs(np.corrcoef(X, rowvar=False))
    for aggregate, agg in (("mean", np.mean), ("max", np.max)):
        sel = [int(np.argmin((R.sum(axis=1) - 1) / 8))]
        while len(sel) < 6:
            cand = [j for j in range(9) if j not in sel]
            sel.append(cand[int(np.argmin([agg(R[j, sel]) for j in cand]))])
        fitted = PearsonSelector(6, aggregate=aggregate).fit(X)
        assert fitted.selected_idx_.tolist() == sel
        np.testing.assert_allclose(fitted.correlation_, np.corrcoef(X, rowvar=False), atol=1e-12)
        np.testing.assert_allclose(fitted.scores_[1:], [agg(R[j, sel[:k]]) for k, j in enumerate(sel) if k],
                                   atol=1e-12)


def test_pearson_mean_and_max_differ_on_a_copy_versus_a_mixture():
    """z1..z4 independent, w = Σz/2 (ρ = 0.5 with each), c = 2·z1 + 1 (exact copy): the mean
    rule takes the copy (score 1/4) before w (0.5); the max rule takes w (0.5) before c (1)."""
    rng = np.random.default_rng(5)
    Zs = rng.normal(size=(4000, 4))
    Zs = np.linalg.qr(Zs - Zs.mean(0))[0] * np.sqrt(4000)  # exactly uncorrelated columns
    X = np.column_stack([Zs, Zs.sum(axis=1) / 2, 2 * Zs[:, 0] + 1])
    mean = PearsonSelector(6, aggregate="mean", start=0).fit(X).selected_idx_.tolist()
    mx = PearsonSelector(6, aggregate="max", start=0).fit(X).selected_idx_.tolist()
    assert mean[4:] == [5, 4] and mx[4:] == [4, 5]
    assert sorted(mean[:4]) == sorted(mx[:4]) == [0, 1, 2, 3]


def test_pearson_ties_go_to_larger_variance_then_lower_index():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=300), rng.normal(size=300)
    y -= x * (x @ y) / (x @ x)
    # columns: x, 3x, -2x, y ; everything in the x group has |ρ| = 1 with each other
    X = np.column_stack([x, 3 * x, -2 * x, y])
    sel = PearsonSelector(4, start=3).fit(X)
    assert sel.selected_idx_.tolist()[:2] == [3, 1]  # tie among 0, 1, 2 → the largest variance (3x)
    sel = PearsonSelector(4, start=3).fit(np.column_stack([x, x, x, y]))
    assert sel.selected_idx_.tolist() == [3, 0, 1, 2]  # full tie → lower index


def test_pearson_threshold_and_n_features():
    X, groups, independent = duplicate_matrix()
    for n in (1, 3, 6, 10):
        sel = PearsonSelector(n).fit(X)
        assert len(sel.selected_idx_) == n and len(set(sel.selected_idx_.tolist())) == n
        assert sel.get_support().sum() == n
    sel = PearsonSelector(10, threshold=0.5, aggregate="max").fit(X)
    assert sel.stopped_early_ and len(sel.selected_idx_) == 6
    assert set(independent) <= set(sel.selected_idx_.tolist())
    with pytest.raises(ConfigError, match="only 10 columns"):
        PearsonSelector(11).fit(X)
    with pytest.raises(ConfigError, match="positive integer"):
        PearsonSelector(0).fit(X)
    with pytest.raises(ConfigError, match="aggregate"):
        PearsonSelector(2, aggregate="median").fit(X)
    with pytest.raises(ConfigError, match="start"):
        PearsonSelector(2, start="random").fit(X)


def test_subsampling_is_reproducible_and_transform_keeps_original_order():
    X, _, _ = duplicate_matrix(n=5000)
    X = X + 0.3 * np.random.default_rng(9).normal(size=X.shape)  # make the picks depend on the rows
    for cls in (PearsonSelector, CURSelector, FPSSelector):
        a = cls(5, max_rows=300, seed=4).fit(X)
        b = cls(5, max_rows=300, seed=4).fit(X)
        assert a.n_rows_used_ == 300
        assert a.selected_idx_.tolist() == b.selected_idx_.tolist()
        mask = a.get_support()
        assert mask.dtype == bool and mask.sum() == 5
        assert a.get_support(indices=True).tolist() == sorted(a.selected_idx_.tolist())
        np.testing.assert_array_equal(a.transform(X), X[:, np.sort(a.selected_idx_)])
    rows4, rows5 = subsample_rows(5000, 300, 4), subsample_rows(5000, 300, 5)
    assert np.array_equal(rows4, subsample_rows(5000, 300, 4)) and not np.array_equal(rows4, rows5)
    assert np.all(np.diff(rows4) > 0) and subsample_rows(200, 300, 4) is None


@pytest.mark.parametrize("cls", [PearsonSelector, CURSelector, FPSSelector])
def test_constant_columns_come_last(cls):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5))
    X = np.column_stack([np.full(200, 7.0), X[:, :2], np.zeros(200), X[:, 2:]])  # columns 0, 3 constant
    sel = cls(7).fit(X)
    order = sel.selected_idx_.tolist()
    assert order[-2:] == [0, 3] and sorted(order[:5]) == [1, 2, 4, 5, 6]
    assert sel.constant_idx_.tolist() == [0, 3]
    assert not {0, 3} & set(cls(5).fit(X).selected_idx_.tolist())
    if cls is FPSSelector:
        assert order[0] == 1  # default start: the first informative column
        with pytest.raises(ConfigError, match="constant"):
            FPSSelector(3, initialize=3).fit(X)


# ----------------------------------------------------------------------------------------
# skmatter wrappers


def standardised(X):
    return (X - X.mean(axis=0)) / X.std(axis=0)


def test_cur_and_fps_match_skmatter_on_the_standardised_matrix():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12)) * rng.uniform(0.1, 50, 12) + rng.normal(size=12)
    Z = standardised(X)
    for n in (1, 4, 9):
        assert CURSelector(n).fit(X).selected_idx_.tolist() == CUR(n_to_select=n).fit(Z).selected_idx_.tolist()
        assert FPSSelector(n).fit(X).selected_idx_.tolist() == FPS(n_to_select=n).fit(Z).selected_idx_.tolist()
    assert (CURSelector(5, k=3, recompute_every=2).fit(X).selected_idx_.tolist()
            == CUR(n_to_select=5, k=3, recompute_every=2).fit(Z).selected_idx_.tolist())
    assert (FPSSelector(5, initialize=7).fit(X).selected_idx_.tolist()
            == FPS(n_to_select=5, initialize=7).fit(Z).selected_idx_.tolist())
    # with subsampling: skmatter on the standardised subsampled rows
    rows = subsample_rows(len(X), 150, 3)
    assert (CURSelector(5, max_rows=150, seed=3).fit(X).selected_idx_.tolist()
            == CUR(n_to_select=5).fit(standardised(X[rows])).selected_idx_.tolist())
    assert (FPSSelector(5, max_rows=150, seed=3).fit(X).selected_idx_.tolist()
            == FPS(n_to_select=5).fit(standardised(X[rows])).selected_idx_.tolist())
    # standardising matters: on the raw matrix CUR follows the large-scale columns
    assert CURSelector(4).fit(X).selected_idx_.tolist() != CUR(n_to_select=4).fit(X).selected_idx_.tolist()


def test_fps_known_answer_and_farthest_point_property():
    # a, a + small noise, −a, b ⟂ a: from column 0 the farthest is −a (distance² = 4n),
    # then b (2n from both), then the near copy of a
    a = np.array([1.0, -1.0, 1.0, -1.0, 2.0, -2.0])
    b = np.array([1.0, 1.0, -1.0, -1.0, 0.0, 0.0])
    X = np.column_stack([a, a + np.array([0.05, 0, 0, 0, 0, -0.05]), -a, b])
    assert FPSSelector(4).fit(X).selected_idx_.tolist() == [0, 2, 3, 1]
    assert FPSSelector(4, initialize=3).fit(X).selected_idx_.tolist()[0] == 3
    # on a random matrix: each pick maximises the distance to the nearest selected column
    rng = np.random.default_rng(8)
    X = rng.normal(size=(60, 10)) @ rng.normal(size=(10, 10))
    Z = standardised(X)
    order = FPSSelector(7).fit(X).selected_idx_.tolist()
    assert order[0] == 0
    D = np.linalg.norm(Z[:, :, None] - Z[:, None, :], axis=0)
    for k in range(1, 7):
        cand = [j for j in range(10) if j not in order[:k]]
        dmin = D[np.ix_(cand, order[:k])].min(axis=1)
        assert D[order[k], order[:k]].min() == pytest.approx(dmin.max())


def test_registry_and_make_filter():
    assert set(FILTERS) == {"pearson", "cur", "fps"}
    f = make_filter("Pearson", 3, threshold=0.9, max_rows=100, seed=2)
    assert isinstance(f, PearsonSelector) and f.threshold == 0.9 and f.max_rows == 100
    assert isinstance(make_filter("cur", 2, k=2), CURSelector) and isinstance(make_filter("fps", 2), FPSSelector)
    with pytest.raises(ConfigError, match="unknown; allowed: cur, fps, pearson"):
        make_filter("lasso", 3)
    with pytest.raises(ConfigError, match="unknown option.*threshold"):
        make_filter("cur", 3, threshold=0.5)


# ----------------------------------------------------------------------------------------
# per element, on a real cache


def _frame(rng, n_ni):
    return emt_alni_frame(rng, n_ni, rattle=0.15)


@pytest.fixture(scope="module")
def alni_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("filters")
    rng = np.random.default_rng(7)
    files = {}
    for name, n_ni in (("ni8", 8), ("ni12", 12)):
        frames = [_frame(rng, n_ni) for _ in range(4)]
        for fr in frames:
            fr.info["state_id"] = name
        files[name] = frames
    fs = grid(["Al", "Ni"], rc=4.5, n_radial=3, n_shifted=3, zetas=(1, 4), lambdas=(-1, 1), name="filters-grid")
    paths = assemble_dataset(root, files, fs, root / "filters.h5", dict(train=0.5, validation=0.25, test=0.25, seed=1))
    splits = pd.read_parquet(paths["splits"])
    train = splits.loc[splits["split"] == "train", "frame_id"].to_numpy()
    return {"cache": paths["cache"], "fs": fs, "train": train}


@pytest.mark.parametrize("method", sorted(FILTERS))
def test_select_per_element_on_a_cache(alni_cache, method):
    fs, train = alni_cache["fs"], alni_cache["train"]
    counts = {"Al": 7, "Ni": 4}
    sel = select_per_element(alni_cache["cache"], method, counts, frame_ids=train, max_rows=100, seed=0)
    assert set(sel) == {"Al", "Ni"}
    for el, idx in sel.items():
        assert len(idx) == counts[el] and len(set(idx)) == counts[el]
        assert all(isinstance(i, int) and 0 <= i < fs.n_features(el) for i in idx)
    # the same with an open cache; reproducible
    with DescriptorCache(alni_cache["cache"]) as c:
        again = select_per_element(c, method, counts, frame_ids=train, max_rows=100, seed=0)
        assert again == sel
        # the rows are the training atoms: the selector on them directly gives the same answer
        X = c.features("Al", train)
        assert make_filter(method, 7, max_rows=100, seed=0).fit(X).selected_idx_.tolist() == sel["Al"]
        assert c.featureset().content_hash() == fs.content_hash()
    sub = filtered_featureset(fs, sel, name=f"{method}-set")
    assert sub.name == f"{method}-set" and sub.elements == fs.elements and sub.cutoff == fs.cutoff
    for el, idx in sel.items():
        assert sub.per_element[el] == [fs.per_element[el][i] for i in sorted(idx)]
        assert sub.labels(el) == [fs.labels(el)[i] for i in sorted(idx)]
    # one count for all elements
    both = select_per_element(alni_cache["cache"], method, 5, frame_ids=train, seed=0)
    assert [len(v) for v in both.values()] == [5, 5]


def test_select_per_element_errors(alni_cache):
    cache, fs = alni_cache["cache"], alni_cache["fs"]
    with pytest.raises(ConfigError, match="filter method 'pca' unknown; allowed: cur, fps, pearson"):
        select_per_element(cache, "pca", 3)
    with pytest.raises(ConfigError, match="missing: Ni"):
        select_per_element(cache, "cur", {"Al": 3})
    with pytest.raises(ConfigError, match="only .* functions for Al"):
        select_per_element(cache, "fps", 10_000)
    with pytest.raises(MeltpotError, match="at least 2"):
        select_per_element(cache, "pearson", 3, frame_ids=[])
    with pytest.raises(ConfigError, match="missing: Ni"):
        filtered_featureset(fs, {"Al": [0, 1]})
    with pytest.raises(ConfigError, match="out of range"):
        filtered_featureset(fs, {"Al": [0, 1], "Ni": [fs.n_features("Ni")]})
    with pytest.raises(ConfigError, match="twice"):
        filtered_featureset(fs, {"Al": [0, 0], "Ni": [1]})
