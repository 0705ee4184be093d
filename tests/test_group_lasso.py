"""Group-lasso selection: proximal operator, masks, shrinking, the λ path on a synthetic problem."""

import json

import numpy as np
import pytest
import torch

from meltpot.descriptors.featureset import FeatureSet, SymmetryFunction
from meltpot.model import HDNNP
from meltpot.selection.group_lasso import GroupPenalty, prox_group, selected, shrink_model
from meltpot.selection.path import SelectionSettings, choose, lambda_path, next_lambda
from meltpot.train.data import EnergyDataset
from meltpot.train.settings import TrainSettings
from meltpot.train.trainer import Trainer, prepare_model


def test_prox_is_the_minimiser_of_the_group_penalised_quadratic():
    """argmin_v ½‖v − w‖² + t‖v‖: KKT conditions of the exact solution, column by column."""
    rng = np.random.default_rng(0)
    w = torch.tensor(rng.normal(size=(6, 40)))
    t = torch.tensor(rng.uniform(0, 4, 40))
    v = prox_group(w, t)
    for j in range(40):
        wj, vj, tj = w[:, j], v[:, j], float(t[j])
        if float(wj.norm()) <= tj:
            assert torch.all(vj == 0)                      # 0 ∈ ∂: ‖w‖ ≤ t
        else:
            # stationarity: v − w + t v/‖v‖ = 0, i.e. v = w (1 − t/‖w‖)
            torch.testing.assert_close(vj - wj + tj * vj / vj.norm(), torch.zeros(6, dtype=w.dtype),
                                       atol=1e-12, rtol=0)
    # and it is no worse than nearby points (objective check)
    obj = lambda x, j: 0.5 * ((x - w[:, j]) ** 2).sum() + t[j] * x.norm()  # noqa: E731
    for j in range(5):
        for _ in range(20):
            other = v[:, j] + 1e-3 * torch.tensor(rng.normal(size=6))
            assert obj(v[:, j], j) <= obj(other, j) + 1e-15


FS = FeatureSet.from_generic([SymmetryFunction("radial", eta=e, rc=5.0) for e in (0.1, 0.5, 1.0, 2.0)], ["Al"])


def synthetic(n_frames, rng, atoms=8):
    """E_atom = sin(2 G0) + ½ G1²; G2 and G3 are pure noise with no effect on the target."""
    G = rng.uniform(0, 1, (n_frames * atoms, 4))
    frame = np.repeat(np.arange(n_frames), atoms)
    energy = np.bincount(frame, weights=np.sin(2 * G[:, 0]) + 0.5 * G[:, 1] ** 2)
    return EnergyDataset.from_arrays(["Al"], [G], [frame], energy)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(1)
    train, val = synthetic(240, rng), synthetic(60, rng)
    model = HDNNP(FS, hidden=(8, 8))
    prepare_model(model, None, train, seed=2)
    settings = TrainSettings(max_epochs=150, batch_size=32, patience=25, progress=False, log_every=10_000)
    Trainer(model, settings, train, val).fit()
    return model, train, val, settings


def test_masks_stay_exact_zeros_through_training(problem):
    model, train, val, settings = problem
    m = HDNNP(FS, hidden=(8, 8))
    m.load_state_dict(model.state_dict())
    masks = [torch.tensor([True, True, False, True])]
    pen = GroupPenalty.group_lasso(m, 1e-4, masks=masks)
    pen.prox(m, 0.0)
    Trainer(m, settings.replace(max_epochs=10), train, val, monitor=pen.monitor, after_step=pen).fit()
    assert torch.all(m.nets[0].input_layer.weight[:, 2] == 0)
    assert selected(m, pen.masks)["Al"] == [0, 1, 3]


def test_shrinking_the_input_layer_keeps_predictions(problem):
    model, train, val, _ = problem
    m = HDNNP(FS, hidden=(8, 8))
    m.load_state_dict(model.state_dict())
    with torch.no_grad():
        m.nets[0].input_layer.weight[:, [1, 3]] = 0.0
    small = shrink_model(m, {"Al": [0, 2]})
    assert small.n_features == [2] and small.featureset.labels("Al") == [FS.labels("Al")[i] for i in (0, 2)]
    view = val.select_features({"Al": [0, 2]})
    torch.testing.assert_close(small_pred := view.predict(small), val.predict(m), rtol=0, atol=1e-12)
    assert small_pred.shape == (len(val),)


def test_agl_path_removes_the_noise_features_and_resumes(problem, tmp_path):
    model, train, val, settings = problem
    sel = SelectionSettings(gl_epochs=80, agl_epochs=80, retrain_epochs=80, lambda_factor=4.0, max_lambdas=14)
    table = lambda_path(model, train, val, settings, sel, out_dir=tmp_path / "path")
    assert table["n_total"].is_monotonic_decreasing and table["n_total"].iloc[-1] == 0  # 4 → 0 features
    two = table[table["n_total"] == 2]
    assert len(two) and all(json.loads(k)["Al"] == [0, 1] for k in two["kept"])       # only noise removed
    # the informative features outlive the noise features along the path
    last_noise = table[table["kept"].map(lambda k: bool({2, 3} & set(json.loads(k)["Al"])))]["lambda"].max()
    assert table[table["n_total"] > 0]["lambda"].max() > last_noise
    # after retraining, the 2-feature model is as good as the dense one
    best = choose(table, tolerance=0.25)
    assert json.loads(best["kept"])["Al"] == [0, 1]
    assert best["val_rmse_retrained"] <= 1.25 * best["val_rmse_dense"]
    for sub in ("gl.pt", "agl.pt", "result.json"):
        assert (tmp_path / "path" / "lambda_00" / sub).exists()
    # a rerun reuses every finished λ (no retraining: result files untouched)
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "path").rglob("result.json")}
    again = lambda_path(model, train, val, settings, sel, out_dir=tmp_path / "path")
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    assert again["n_total"].tolist() == table["n_total"].tolist()


def test_next_lambda_refines_the_largest_drop():
    sel = SelectionSettings(refine_steps=2, refine_drop=0.25, max_lambdas=10)
    base = [1.0, 4.0, 16.0, 64.0]
    step = lambda lam, n, refined=False: {"lambda": lam, "n_total": n, "empty": n == 0, "refined": refined}  # noqa: E731
    assert next_lambda([], base, sel, 22) == (1.0, None, False)
    assert next_lambda([step(1.0, 22)], base, sel, 22) == (4.0, 0, False)
    path = [step(1.0, 22), step(4.0, 20), step(16.0, 5), step(64.0, 0)]
    lam, start, refined = next_lambda(path, base, sel, 22)          # 20 → 5 is the largest drop
    assert refined and start == 1 and lam == pytest.approx(8.0)
    path.append(step(8.0, 12, True))          # drops now 2, 8 (20 → 12), 7 (12 → 5), 5: the largest is refined
    lam, start, _ = next_lambda(path, base, sel, 22)
    assert start == 1 and lam == pytest.approx(32 ** 0.5)
    path.append(step(lam, 15, True))
    assert next_lambda(path, base, sel, 22) is None                    # the budget of 2 is spent
    assert next_lambda(path[:4], base, SelectionSettings(refine_steps=0), 22) is None


def test_refined_path_fills_a_coarse_jump_and_resumes(problem, tmp_path):
    """A coarse path (factor 30) jumps over feature counts; two refinements land between the
    jump's ends, warm-started from the lower λ, and every step's result.json says whether the
    path ends there (the workflow's per-λ jobs read it); a rerun reuses every step."""
    model, train, val, settings = problem
    sel = SelectionSettings(gl_epochs=40, agl_epochs=40, retrain_epochs=5, lambda_factor=30.0, max_lambdas=4,
                            refine_steps=2, refine_drop=0.2)
    table = lambda_path(model, train, val, settings, sel, out_dir=tmp_path / "path")
    assert table["lambda"].is_monotonic_increasing and len(table) == len(set(table["step"]))
    refined = table[table["refined"]]
    base = table.drop(refined.index)
    assert len(refined) == 2 and base["n_total"].iloc[-1] == 0
    for _, r in refined.iterrows():
        lower = table[table["step"] == r["start_step"]].iloc[0]
        assert lower["lambda"] < r["lambda"] and r["n_total"] <= lower["n_total"]
        assert set(json.loads(r["kept"])["Al"]) <= set(json.loads(lower["kept"])["Al"])   # warm start: masks kept
    ends = {int(r["step"]): json.loads((tmp_path / "path" / f"lambda_{int(r['step']):02d}" / "result.json")
                                       .read_text())["end"] for _, r in table.iterrows()}
    assert [ends[k] for k in sorted(ends)] == [False] * (len(ends) - 1) + [True]
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "path").rglob("result.json")}
    again = lambda_path(model, train, val, settings, sel, out_dir=tmp_path / "path")
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    assert again["n_total"].tolist() == table["n_total"].tolist()


def test_choose_rules():
    import pandas as pd

    t = pd.DataFrame({"lambda": [1e-3, 2e-3, 4e-3, 8e-3], "n_total": [10, 7, 4, 0],
                      "val_rmse_dense": [1.0] * 4, "val_rmse_retrained": [0.98, 1.02, 1.4, np.nan]})
    # reference = the retrained full set 0.98 (like for like, not the dense 1.0): 1.02 is within 5 %, 1.4 is not
    assert choose(t, tolerance=0.05)["n_total"] == 7
    # a dense model trained longer than the retraining does not set the bar: the retrained full set does
    longer = t.assign(val_rmse_dense=0.5, n_full=10)
    assert choose(longer, tolerance=0.05)["n_total"] == 7
    # no λ kept every feature (n_full 12): the dense model is the reference
    assert choose(t.assign(n_full=12, val_rmse_dense=0.99), tolerance=0.05)["n_total"] == 7
    assert choose(t.assign(n_full=12, val_rmse_dense=0.9), tolerance=0.05)["n_total"] == 10   # none within: most accurate
    assert choose(t, n_features=5)["n_total"] == 4
    assert choose(t, lam=1.1e-3)["n_total"] == 10
    # nothing within the tolerance: the most accurate set, not the smallest
    t["val_rmse_retrained"] = [1.2, 1.1, 1.4, np.nan]
    assert choose(t, tolerance=0.05)["n_total"] == 7
