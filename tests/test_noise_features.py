"""Confounding noise features (thesis §5.3.5) and per-element λ (thesis §6.5)."""

import json
import math

import numpy as np
import pytest
import torch

from meltpot.descriptors.featureset import FeatureSet, NoiseFeature, SymmetryFunction, load_featureset
from meltpot.errors import ConfigError
from meltpot.model import HDNNP
from meltpot.model.modelfile import load_model, save_model
from meltpot.selection.group_lasso import GroupPenalty
from meltpot.selection.noise import add_noise, column_stats, draw_noise, noise_featureset, widen_model
from meltpot.selection.path import SelectionSettings, choose, lambda_path, per_element_search
from meltpot.train.data import EnergyDataset
from meltpot.train.settings import TrainSettings
from meltpot.train.trainer import Trainer, prepare_model

RADIAL = [SymmetryFunction("radial", eta=e, rc=5.0) for e in (0.1, 0.5)]


def _dataset(elements, n_frames, rng, atoms=6, frame_offset=0, target=None):
    """Frames of ``atoms`` atoms per element with uniform features G0, G1 per element; the
    energy is Σ_atoms target[el](G)."""
    G, frames, energy = [], [], np.zeros(n_frames)
    for el in elements:
        g = rng.uniform(0, 1, (n_frames * atoms, 2))
        f = np.repeat(np.arange(n_frames), atoms)
        G.append(g)
        frames.append(f)
        energy += np.bincount(f, weights=target[el](g), minlength=n_frames)
    ds = EnergyDataset.from_arrays(elements, G, frames, energy)
    ds.frame_ids = ds.frame_ids + frame_offset
    return ds


def test_noise_feature_round_trips_and_cannot_run_from_positions(tmp_path):
    fs = FeatureSet.from_generic(RADIAL, ["Al"])
    noisy = noise_featureset(fs, {"Al": {"mean": np.array([0.3, 2.0]), "std": np.array([0.1, 0.5])}}, k=3, seed=7)
    assert noisy.labels("Al")[2:] == ["noise0", "noise1", "noise2"] and noisy.has_noise and not fs.has_noise
    assert noisy.per_element["Al"][3] == NoiseFeature(index=1, mean=2.0, std=0.5, seed=7)   # mimics feature 1 of 2
    assert noisy.cutoff_radius == 5.0
    noisy.save(tmp_path / "fs.yaml")
    assert load_featureset(tmp_path / "fs.yaml").content_hash() == noisy.content_hash()
    model = HDNNP(noisy, hidden=(4,))
    save_model(model, tmp_path / "m.pt", units="metal")
    assert load_model(tmp_path / "m.pt").featureset.labels("Al") == noisy.labels("Al")
    from meltpot.model.calculator import MeltpotCalculator
    from ase.build import bulk

    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.calc = MeltpotCalculator(model)
    with pytest.raises(ConfigError, match="noise pseudo-features"):
        atoms.get_potential_energy()
    with pytest.raises(ConfigError, match="index, mean, seed, std"):
        load_featureset({"per_element": {"Al": [{"type": "noise", "index": 0, "mean": 1.0}]}})


def test_noise_is_drawn_once_per_atom_and_frame_with_folded_normal_statistics():
    fns = [NoiseFeature(0, mean=0.5, std=1.0, seed=3), NoiseFeature(1, mean=4.0, std=0.5, seed=3)]
    a = draw_noise(fns, "Al", [10, 11, 12], [5, 5, 5])
    b = draw_noise(fns, "Al", [12, 40], [5, 3])            # frame 12 in another dataset: same numbers
    np.testing.assert_array_equal(a[10:15], b[:5])
    assert not np.allclose(a[:5], a[5:10]) and np.all(a >= 0)
    assert not np.allclose(draw_noise(fns, "Ni", [10], [5]), a[:5])   # per element
    big = draw_noise(fns, "Al", np.arange(4000), np.full(4000, 10))
    for col, (mu, sigma) in enumerate([(0.5, 1.0), (4.0, 0.5)]):
        # the folded normal |N(μ, σ²)|: E = σ√(2/π) exp(−μ²/2σ²) + μ(1 − 2Φ(−μ/σ))
        phi = 0.5 * (1 + math.erf(-mu / sigma / math.sqrt(2)))
        expected = sigma * math.sqrt(2 / math.pi) * math.exp(-mu ** 2 / (2 * sigma ** 2)) + mu * (1 - 2 * phi)
        assert big[:, col].mean() == pytest.approx(expected, abs=4 * sigma / math.sqrt(big.shape[0]))
        assert np.mean(big[:, col] ** 2) == pytest.approx(mu ** 2 + sigma ** 2, rel=0.02)   # E X² is unfolded


def test_widened_model_predicts_as_before_when_the_noise_weights_are_zero():
    rng = np.random.default_rng(0)
    target = {"Al": lambda g: np.sin(2 * g[:, 0]) + 0.5 * g[:, 1] ** 2}
    train = _dataset(["Al"], 40, rng, target=target)
    fs = FeatureSet.from_generic(RADIAL, ["Al"])
    model = HDNNP(fs, hidden=(6,))
    prepare_model(model, None, train, seed=1)
    noisy_fs = noise_featureset(fs, column_stats(train, fs), k=2, seed=5)
    noisy = add_noise(train, noisy_fs)
    assert noisy.G[0].shape == (240, 4) and torch.equal(noisy.G[0][:, :2], train.G[0])
    wide = widen_model(model, noisy_fs, column_stats(noisy, noisy_fs), seed=9)
    w = wide.nets[0].input_layer.weight
    assert torch.all(w[:, 2:] != 0) and torch.equal(w[:, :2], model.nets[0].input_layer.weight)
    with torch.no_grad():
        w[:, 2:] = 0
    torch.testing.assert_close(noisy.predict(wide), train.predict(model), rtol=0, atol=1e-12)
    with pytest.raises(ConfigError, match="already holds noise"):
        noise_featureset(noisy_fs, column_stats(noisy, noisy_fs), 1, 0)


def test_agl_discards_appended_noise_features():
    """Two informative features plus three noise columns matched to them: the chosen AGL set
    keeps both real features and no noise column."""
    rng = np.random.default_rng(1)
    target = {"Al": lambda g: np.sin(2 * g[:, 0]) + 0.5 * g[:, 1] ** 2}
    train, val = _dataset(["Al"], 240, rng, atoms=8, target=target), _dataset(["Al"], 60, rng, atoms=8,
                                                                               frame_offset=1000, target=target)
    fs = FeatureSet.from_generic(RADIAL, ["Al"])
    noisy_fs = noise_featureset(fs, column_stats(train, fs), k=3, seed=2)
    train, val = add_noise(train, noisy_fs), add_noise(val, noisy_fs)
    model = HDNNP(noisy_fs, hidden=(8, 8))
    prepare_model(model, None, train, seed=2)
    settings = TrainSettings(max_epochs=150, batch_size=32, patience=25, progress=False, log_every=10_000)
    Trainer(model, settings, train, val).fit()
    sel = SelectionSettings(gl_epochs=80, agl_epochs=80, retrain_epochs=80, lambda_factor=4.0, max_lambdas=14)
    table = lambda_path(model, train, val, settings, sel)
    best = choose(table, tolerance=0.25)
    assert json.loads(best["kept"])["Al"] == [0, 1]


def test_group_penalty_takes_one_lambda_per_element():
    fs = FeatureSet.from_generic(RADIAL + [SymmetryFunction("radial", eta=1.0, rc=5.0)], ["Al", "Ni"])
    model = HDNNP(fs, hidden=(4,))
    pen = GroupPenalty.group_lasso(model, {"Al": 0.6, "Ni": 0.0})
    torch.testing.assert_close(pen.strengths[0], torch.full((6,), 0.1, dtype=torch.float64))
    assert torch.all(pen.strengths[1] == 0)
    with pytest.raises(ValueError, match="missing"):
        GroupPenalty.group_lasso(model, {"Al": 0.6})


def test_per_element_line_search():
    """Al's energy depends on its G0 only, Ni's on G0 and G1: each element's path penalises
    only its own network, and the combined λ removes Al's uninformative G1 only."""
    rng = np.random.default_rng(4)
    target = {"Al": lambda g: np.sin(3 * g[:, 0]), "Ni": lambda g: 0.5 * g[:, 0] ** 2 + np.cos(2 * g[:, 1])}
    train = _dataset(["Al", "Ni"], 200, rng, atoms=4, target=target)
    val = _dataset(["Al", "Ni"], 50, rng, atoms=4, frame_offset=1000, target=target)
    fs = FeatureSet({"Al": [SymmetryFunction("radial", eta=e, rc=5.0, neighbors=("Al",)) for e in (0.1, 0.5)],
                     "Ni": [SymmetryFunction("radial", eta=e, rc=5.0, neighbors=("Ni",)) for e in (0.1, 0.5)]})
    model = HDNNP(fs, hidden=(8, 8))
    prepare_model(model, None, train, seed=3)
    settings = TrainSettings(max_epochs=150, batch_size=32, patience=25, progress=False, log_every=10_000)
    Trainer(model, settings, train, val).fit()
    sel = SelectionSettings(gl_epochs=60, agl_epochs=60, retrain_epochs=60, lambda_factor=4.0, max_lambdas=12)
    table, combined = per_element_search(model, train, val, settings, sel, tolerance=0.3)
    for el, other in (("Al", "Ni"), ("Ni", "Al")):
        path = table[table["element"] == el]
        assert (path[f"n_{other}"] == 2).all() and path[f"n_{el}"].iloc[-1] == 0
    assert set(combined["lambda"]) == {"Al", "Ni"}
    assert combined["keep"] == {"Al": [0], "Ni": [0, 1]}
    assert combined["val_rmse_retrained"] <= 1.3 * combined["dense_val_rmse"]


def test_adam_metric_prox_removes_noise_by_the_optimality_condition():
    """With the prox in Adam's metric a group is held by the size of its gradient: the noise
    columns' M·‖∂L/∂w_j‖ at w_j = 0 is orders of magnitude below the real features', and the
    first λ of the path (1 % of the scale) removes every noise column and keeps the real ones."""
    from meltpot.selection.path import lambda_scale

    rng = np.random.default_rng(3)
    target = {"Al": lambda g: np.sin(2 * g[:, 0]) + 0.5 * g[:, 1] ** 2}
    train, val = _dataset(["Al"], 240, rng, atoms=8, target=target), _dataset(["Al"], 60, rng, atoms=8,
                                                                               frame_offset=1000, target=target)
    fs = FeatureSet.from_generic(RADIAL, ["Al"])
    noisy_fs = noise_featureset(fs, column_stats(train, fs), k=3, seed=2)
    train, val = add_noise(train, noisy_fs), add_noise(val, noisy_fs)
    model = HDNNP(noisy_fs, hidden=(8, 8))
    prepare_model(model, None, train, seed=2)
    settings = TrainSettings(max_epochs=150, batch_size=32, patience=25, progress=False, log_every=10_000)
    Trainer(model, settings, train, val).fit()
    scale = lambda_scale(model, train, settings)
    real, noise = [], []
    for j in range(5):
        m = HDNNP(noisy_fs, hidden=(8, 8))
        m.load_state_dict(model.state_dict())
        w = m.nets[0].input_layer.weight
        with torch.no_grad():
            w[:, j] = 0
        de = (train.predict(m) - train.energy) / train.n_atoms.double()
        g = 5 * float(torch.autograd.grad((de * de).mean(), w)[0][:, j].norm())
        (real if j < 2 else noise).append(g)
    assert scale == pytest.approx(max(real), rel=1e-9)
    assert max(noise) < 0.05 * min(real)
    sel = SelectionSettings(gl_epochs=40, agl_epochs=40, retrain_epochs=40, lambdas=[0.01 * scale],
                            prox_metric="adam")
    table = lambda_path(model, train, val, settings, sel)
    assert json.loads(table["kept"].iloc[0])["Al"] == [0, 1]
    # the Euclidean prox (the paper's) at the same λ keeps the noise columns
    euclid = lambda_path(model, train, val, settings, SelectionSettings(gl_epochs=40, agl_epochs=40,
                                                                        retrain_epochs=40, lambdas=[0.01 * scale]))
    assert set(json.loads(euclid["kept"].iloc[0])["Al"]) & {2, 3, 4}
