"""Training: accuracy against a baseline, reproducibility, exact resume, early stopping, weight
decay groups, schedules, pluggable monitor, force training, non-finite losses, the CLI.

The data are real: 32-atom Al cells run by LAMMPS with the Mendelev EAM at four temperatures
(NVT, 40 frames each), indexed, split and cached by the pipeline's own functions.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from ase.build import bulk

from helpers import assemble_dataset
from meltpot.cli import main
from meltpot.descriptors.cache import DescriptorCache, read_index
from meltpot.descriptors.featureset import grid
from meltpot.errors import ConfigError
from meltpot.model import HDNNP, load_model
from meltpot.reference import MDSegment
from meltpot.reference.lammps_engine import LammpsEngine
from meltpot.train.data import EnergyDataset, ForceDataset
from meltpot.train.settings import TrainSettings
from meltpot.train.trainer import (Trainer, TrainingError, build_optimizer, param_groups, prepare_model,
                                   require_device)

STATES = [(300, 4.05), (700, 4.10), (1000, 4.14), (1400, 4.20)]  # (T in K, lattice constant in Å)


def small_featureset(name="tiny", angular=True):
    return grid(["Al"], rc=5.0, n_radial=3, n_shifted=3, zetas=(1, 4) if angular else (),
                lambdas=(-1, 1), name=name)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """frames/, index.parquet, splits.parquet, tiny.h5 (10 features, r_c 5 Å) and the featureset YAML."""
    root = tmp_path_factory.mktemp("train_data")
    engine = LammpsEngine(["Al"], pair_style="eam/fs", pair_coeff=["* * Al_mm.eam.fs Al"])
    files = {}
    for T, a in STATES:
        atoms = bulk("Al", "fcc", a=a, cubic=True) * (2, 2, 2)
        segs = [MDSegment("nvt", T, 200, 0.002, 0, label="eq"), MDSegment("nvt", T, 400, 0.002, 10, label="prod")]
        frames = [f for s, f in engine.md(atoms, segs, seed=T) if s == 1]
        for f in frames:
            f.info.update(state_id=f"T{T}", branch="", phase="fcc" if T < 900 else "liquid", T_target=float(T),
                          P_target=0.0, composition="Al1", units="metal")
        files[f"T{T}"] = frames
    fs = small_featureset()
    fs.save(root / "tiny.yaml")
    assemble_dataset(root, files, fs, root / "tiny.h5", dict(train=0.7, validation=0.15, test=0.15, seed=3),
                     dataset_dir=root)
    return root


@pytest.fixture(scope="module")
def energy_data(data_dir):
    index = read_index(data_dir / "index.parquet")
    splits = pd.read_parquet(data_dir / "splits.parquet")
    with DescriptorCache(data_dir / "tiny.h5") as cache:
        ids = {s: splits.loc[splits["split"] == s, "frame_id"].to_numpy() for s in ("train", "validation")}
        train, val = EnergyDataset(cache, index, ids["train"]), EnergyDataset(cache, index, ids["validation"])
        yield cache, train, val


def fresh_model(cache, train, seed=1, hidden=(10, 10)):
    model = HDNNP(cache.featureset(), hidden=hidden)
    prepare_model(model, cache, train, seed=seed)
    return model


def settings(**kw):
    base = dict(max_epochs=10, batch_size=32, progress=False, patience=None, log_every=1000)
    base.update(kw)
    return TrainSettings(**base)


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def no_time(history):
    return [{k: v for k, v in row.items() if k not in ("seconds", "configs_per_s")} for row in history]


# ----------------------------------------------------------------------------- accuracy
def test_training_beats_constant_energy_baseline(energy_data):
    cache, train, val = energy_data
    model = fresh_model(cache, train)
    # baseline: one constant energy per atom (the model's reference energy, fitted on train)
    per_atom_val = (val.energy / val.n_atoms).numpy()
    baseline = float(np.sqrt(np.mean((per_atom_val - float(model.reference_energy[0])) ** 2)))
    trainer = Trainer(model, settings(max_epochs=40), train, val)
    history = trainer.fit()
    assert len(history) == 40 and [h["epoch"] for h in history] == list(range(1, 41))
    assert set(history[0]) >= {"epoch", "lr", "train_loss", "train_energy_rmse", "val_energy_rmse", "monitor",
                               "seconds", "configs_per_s"}
    final = trainer.evaluate(val)["energy_rmse"]
    assert final == min(h["val_energy_rmse"] for h in history)  # best state restored
    assert baseline > 0.05 and final < 0.15 * baseline, (final, baseline)
    assert history[-1]["train_energy_rmse"] < history[0]["train_energy_rmse"]


# ----------------------------------------------------------------------------- reproducibility
def test_bit_reproducible_for_a_fixed_seed(energy_data):
    cache, train, val = energy_data
    runs = []
    for seed in (7, 7, 8):
        model = fresh_model(cache, train, seed=seed)
        trainer = Trainer(model, settings(max_epochs=6, seed=seed, schedule="plateau", plateau_patience=1), train,
                          val)
        runs.append((model.state_dict(), no_time(trainer.fit())))
    assert states_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert not torch.equal(runs[0][0]["nets.0.layers.0.weight"], runs[2][0]["nets.0.layers.0.weight"])


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("schedule", ["plateau", "cosine_restarts"])
def test_resume_from_checkpoint_equals_uninterrupted_run(energy_data, tmp_path, schedule):
    cache, train, val = energy_data
    kw = dict(max_epochs=9, schedule=schedule, plateau_patience=1, t0=1, patience=4, min_delta=5e-3,
              restore_best=False, checkpoint_every=2, min_lr=1e-5)
    full = fresh_model(cache, train)
    ref = Trainer(full, settings(**kw), train, val)
    ref_history = ref.fit()
    assert len(ref_history) == 9 and len({h["lr"] for h in ref_history}) > 1  # the schedule's state matters

    steps = {"n": 0}
    n_batches = math.ceil(len(train) / 32)

    def interrupt_in_epoch_6(model, lr):
        steps["n"] += 1
        if steps["n"] == 5 * n_batches + 2:  # second batch of epoch 6
            raise Interrupt

    ckpt = tmp_path / "run.ckpt"
    broken = Trainer(fresh_model(cache, train), settings(**kw), train, val, after_step=interrupt_in_epoch_6)
    with pytest.raises(Interrupt):
        broken.fit(checkpoint_path=ckpt)
    assert Trainer.read_checkpoint(ckpt)["epoch"] == 4  # the last checkpoint before the interruption

    resumed_model = fresh_model(cache, train, seed=99)  # other initial weights: all must come from the checkpoint
    resumed = Trainer(resumed_model, settings(**kw), train, val)
    history = resumed.fit(checkpoint_path=ckpt, resume=True)
    assert states_equal(resumed_model.state_dict(), full.state_dict())
    assert no_time(history) == no_time(ref_history)
    assert resumed.best_epoch == ref.best_epoch and resumed.stopped_early == ref.stopped_early
    assert states_equal(resumed.best_state, ref.best_state)
    assert Trainer.read_checkpoint(ckpt)["epoch"] == len(ref_history)  # final checkpoint written


# ----------------------------------------------------------------------------- early stopping / monitor
def test_early_stopping_restores_the_best_state(energy_data):
    cache, train, val = energy_data
    model = fresh_model(cache, train)
    trainer = Trainer(model, settings(max_epochs=300, schedule="constant", lr=3e-2, patience=4, min_delta=2e-4),
                      train, val)
    history = trainer.fit()
    assert trainer.stopped_early and len(history) < 300
    monitors = [h["monitor"] for h in history]
    assert trainer.best_epoch == int(np.argmin(monitors)) + 1
    # stopped after 4 epochs without an improvement by more than min_delta over the reference
    significant, best = [], math.inf
    for k, m in enumerate(monitors):
        if m < best - 2e-4:
            best = m
            significant.append(k + 1)
    assert len(history) == significant[-1] + 4
    # the restored model's monitor is the best history entry, exactly
    assert trainer.evaluate(val)["energy_rmse"] == history[trainer.best_epoch - 1]["monitor"] == trainer.best_monitor


def test_custom_monitor_drives_early_stopping(energy_data, caplog, capsys):
    cache, train, val = energy_data
    model = fresh_model(cache, train)
    script = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 2.0]  # best at epoch 3, then three epochs without improvement
    seen, states = [], []

    def monitor(m, metrics):
        assert m is model and {"energy_rmse", "energy_mae", "loss", "n_frames"} <= set(metrics)
        seen.append(metrics["energy_rmse"])
        states.append({k: v.clone() for k, v in m.state_dict().items()})
        return script[len(seen) - 1]

    trainer = Trainer(model, settings(max_epochs=7, patience=3, schedule="constant"), train, val, monitor=monitor)
    history = trainer.fit()
    assert len(history) == 6 and trainer.stopped_early and trainer.best_epoch == 3
    assert [h["monitor"] for h in history] == script[:6]
    assert [h["val_energy_rmse"] for h in history] == seen
    assert states_equal(model.state_dict(), states[2])

    # a validation metric by name
    t2 = Trainer(fresh_model(cache, train), settings(max_epochs=2, progress=True, log_every=1), train, val,
                 monitor="loss")
    with caplog.at_level(logging.INFO, logger="meltpot.train"):
        h2 = t2.fit()
    assert all(h["monitor"] == h["val_loss"] for h in h2)
    assert "epoch 2/2: train loss" in caplog.text and "monitor loss = " in caplog.text and "configs/s" in caplog.text
    assert "loss=" in capsys.readouterr().err  # the progress bar's postfix names the monitor
    with pytest.raises(TrainingError, match="monitor 'nope' is not a validation metric"):
        Trainer(fresh_model(cache, train), settings(max_epochs=1), train, val, monitor="nope").fit()


# ----------------------------------------------------------------------------- optimiser and schedules
def test_weight_decay_on_internal_weights_only():
    fs = grid(["Al", "Ni"], rc=4.5, n_radial=2, n_shifted=2, zetas=(1,), name="two")
    model = HDNNP(fs, hidden=(6, 5))
    opt = build_optimizer(model, settings(weight_decay=1e-3, lr=0.1))
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"internal_weights", "input_weights", "biases"}
    ids = {name: {id(p) for p in g["params"]} for name, g in groups.items()}
    assert ids["internal_weights"] == {id(net.layers[i].weight) for net in model.nets for i in (1, 2)}
    assert ids["input_weights"] == {id(net.input_layer.weight) for net in model.nets}
    assert ids["biases"] == {id(layer.bias) for net in model.nets for layer in net.layers}
    assert groups["internal_weights"]["weight_decay"] == 1e-3
    assert groups["input_weights"]["weight_decay"] == 0.0 and groups["biases"]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))

    # one step with zero gradients: only the internal weights shrink, by (1 − lr·wd)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, value in model.state_dict().items():
        if ".weight" in name and ".layers.0." not in name:
            torch.testing.assert_close(value, before[name] * (1 - 0.1 * 1e-3), rtol=1e-14, atol=0)
        else:
            assert torch.equal(value, before[name]), name

    # a frozen parameter is left out
    model.nets[0].input_layer.weight.requires_grad_(False)
    assert id(model.nets[0].input_layer.weight) not in {id(p) for g in param_groups(model, 0.0) for p in g["params"]}


def test_cosine_restarts_schedule(energy_data):
    cache, train, val = energy_data
    sub = EnergyDataset(cache, read_index(cache.path.parent / "index.parquet"), train.frame_ids[:32])
    lrs = []
    s = settings(schedule="cosine_restarts", t0=2, restarts=3, batch_size=8, lr=1e-2, min_lr=1e-4, max_epochs=999)
    assert s.n_epochs == 14
    trainer = Trainer(fresh_model(cache, sub), s, sub, val, after_step=lambda m, lr: lrs.append(lr))
    history = trainer.fit()
    nb = 4
    assert len(history) == 14 and len(lrs) == 14 * nb  # after_step once per optimiser step
    # the learning rate at the end of each epoch (what the next epoch starts with) is back at lr at t0, 3t0, 7t0
    assert [h["epoch"] for h in history if h["lr"] == 1e-2] == [2, 6, 14]
    # per step: restarts (increases) exactly at the first steps of epochs t0 and 3·t0
    ups = [i for i in range(1, len(lrs)) if lrs[i] > lrs[i - 1]]
    assert ups == [2 * nb, 6 * nb]
    assert lrs[0] == lrs[2 * nb] == lrs[6 * nb] == 1e-2
    # each cycle anneals to near min_lr: last step of a cycle of T epochs is at T_cur = T − 1/nb
    for start, length in ((0, 2), (2, 4), (6, 8)):
        last = lrs[(start + length) * nb - 1]
        expected = 1e-4 + (1e-2 - 1e-4) * (1 + math.cos(math.pi * (length - 1 / nb) / length)) / 2
        assert last == pytest.approx(expected, rel=1e-12)


def test_settings_from_config():
    s = TrainSettings.from_config({"max_epochs": 50, "schedule": {"kind": "cosine_restarts", "t0": 3, "restarts": 2},
                                   "early_stopping": {"patience": None, "min_delta": 1e-7},
                                   "loss": {"forces": 0.1}, "seed": None}, seed=11)
    assert (s.schedule, s.t0, s.n_epochs, s.patience, s.min_delta, s.force_weight, s.seed) == \
        ("cosine_restarts", 3, 9, None, 1e-7, 0.1, 11) and s.uses_forces
    assert TrainSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ConfigError, match="schedule 'cosine' unknown"):
        TrainSettings(schedule="cosine")
    with pytest.raises(ConfigError, match="unknown key"):
        TrainSettings.from_config({"epochs": 3})


# ----------------------------------------------------------------------------- forces
def test_force_training_lowers_the_force_error(data_dir):
    index = read_index(data_dir / "index.parquet")
    splits = pd.read_parquet(data_dir / "splits.parquet")
    tr = splits.loc[splits["split"] == "train", "frame_id"].to_numpy()[:16]
    va = splits.loc[splits["split"] == "validation", "frame_id"].to_numpy()[:6]
    fs = small_featureset("radial", angular=False)
    train = ForceDataset.from_index(index, data_dir, tr, ["Al"], fs.cutoff_radius)
    val = ForceDataset.from_index(index, data_dir, va, ["Al"], fs.cutoff_radius)
    model = HDNNP(fs, hidden=(8,))
    info = prepare_model(model, None, train, seed=2)  # scaling computed from the frames
    assert info["scaling"].startswith("training data")
    s = settings(max_epochs=8, batch_size=4, force_weight=1.0, stress_weight=1.0, schedule="constant")
    trainer = Trainer(model, s, train, val, monitor="force_rmse")
    before = trainer.evaluate(val)
    history = trainer.fit()
    assert {"train_force_rmse", "val_force_rmse", "val_stress_rmse"} <= set(history[0])
    after = trainer.evaluate(val)
    assert after["force_rmse"] < 0.4 * before["force_rmse"], (before, after)
    assert after["force_rmse"] == min(h["val_force_rmse"] for h in history)


# ----------------------------------------------------------------------------- bad input
def test_non_finite_loss_stops_with_epoch_batch_and_checkpoint(energy_data, tmp_path):
    cache, train, val = energy_data
    model = fresh_model(cache, train)
    ckpt = tmp_path / "nan.ckpt"
    trainer = Trainer(model, settings(max_epochs=3, lr=1e300, schedule="constant"), train, val)
    with pytest.raises(TrainingError, match=r"non-finite training loss .* at epoch 1, batch 2 of \d+ \(frames "
                                            r"\d+.*saved to the checkpoint .*nan\.ckpt"):
        trainer.fit(checkpoint_path=ckpt)
    state = Trainer.read_checkpoint(ckpt)
    assert state["epoch"] == 0 and state["failure"]["epoch"] == 1 and state["failure"]["batch"] == 2

    bad = EnergyDataset(cache, read_index(cache.path.parent / "index.parquet"), train.frame_ids)
    bad.energy[3] = float("nan")
    with pytest.raises(TrainingError, match=f"training energies are not finite for frames {train.frame_ids[3]}"):
        Trainer(fresh_model(cache, train), settings(), bad, val)
    with pytest.raises(TrainingError, match="need force labels: training data with positions"):
        Trainer(fresh_model(cache, train), settings(force_weight=1.0), train, val)


# ----------------------------------------------------------------------------- CLI
def _config(tmp_path, featureset, **training):
    cfg = {"run_id": "train-test", "elements": ["Al"], "units": "metal", "seed": 4,
           "reference": {"engine": "lammps", "pair_style": "eam/fs", "pair_coeff": ["* * Al_mm.eam.fs Al"]},
           "imports": [{"id": "x", "path": "x.extxyz"}],
           "descriptors": {"featureset": str(featureset)},
           "model": {"hidden": [8, 8], "activation": "shifted_softplus"},
           "training": {"max_epochs": 12, "batch_size": 32, "log_every": 5,
                        "early_stopping": {"patience": None}, **training}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cli_train_resume_and_model_file(data_dir, tmp_path, capsys):
    cfg = _config(tmp_path, data_dir / "tiny.yaml")
    out = tmp_path / "models" / "dense.pt"
    args = ["train", str(cfg), "--cache", str(data_dir / "tiny.h5"), "--index", str(data_dir / "index.parquet"),
            "--splits", str(data_dir / "splits.parquet"), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    line = capsys.readouterr().out
    assert f"{out}: 12 epochs (epoch limit; best epoch" in line and "meV/atom (train" in line
    model = load_model(out)
    meta = model.metadata
    assert model.hidden == (8, 8) and model.activation == "shifted_softplus"
    assert meta["epochs"] == 12 and meta["training"]["batch_size"] == 32 and meta["cache"]["key"]
    assert meta["data"]["n_train"] + meta["data"]["n_validation"] < 160 and meta["data"]["n_train"] > 100
    assert meta["metrics"]["validation"]["energy_rmse"] == pytest.approx(meta["best_monitor"], rel=1e-12)
    history = pd.read_csv(out.with_suffix(".history.csv"))
    assert len(history) == 12 and "val_energy_rmse" in history.columns
    assert out.with_suffix(".ckpt").exists()

    # resume with a higher epoch limit: continues from epoch 12
    assert main(args + ["--resume", "--max-epochs", "15"]) == 0
    assert f"{out}: 15 epochs" in capsys.readouterr().out
    assert len(pd.read_csv(out.with_suffix(".history.csv"))) == 15


def test_cli_refuses_a_cache_of_another_feature_set(data_dir, tmp_path, capsys):
    other = grid(["Al"], rc=4.0, n_radial=2, n_shifted=2, zetas=(1,), name="other")
    other.save(tmp_path / "other.yaml")
    cfg = _config(tmp_path, tmp_path / "other.yaml")
    rc = main(["train", str(cfg), "--cache", str(data_dir / "tiny.h5"), "--index", str(data_dir / "index.parquet"),
               "--splits", str(data_dir / "splits.parquet"), "--out", str(tmp_path / "m.pt"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "computed with feature set tiny" in err and "trains on other" in err and "recompute" in err
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device exists here")
def test_cuda_without_a_device_stops_with_the_reason(monkeypatch):
    """A GPU slot without a device (a Slurm job's CUDA_VISIBLE_DEVICES=0 on a CPU node) names the cause."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(TrainingError, match=r"training.device = cuda, but torch sees no CUDA device "
                                            r"\(torch .*; CUDA_VISIBLE_DEVICES=0\)"):
        require_device("cuda")
    require_device("cpu")
