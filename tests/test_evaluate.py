"""Evaluation of a model on a dataset: metrics against numpy computed from independent
predictions (ASE calculator on the frame files), per-state/per-phase tables, the report
files, `meltpot evaluate` and its errors for bad model files.

The dataset is real: 32-atom Al cells run by the LAMMPS engine with the Mendelev EAM (fcc at
300 K and 600 K, then melted and sampled at 1500 K), written, indexed, split and cached with
the package functions. The model is untrained (seeded random weights) with the feature
scaling of the cache and reference energies fitted on the training split.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from ase.build import bulk

from helpers import assemble_dataset
from meltpot.cli import main
from meltpot.data.frames import labels
from meltpot.data.index import build_index
from meltpot.data.io import read_frames, write_frames
from meltpot.descriptors.cache import DescriptorCache, build_cache
from meltpot.descriptors.featureset import grid
from meltpot.errors import MeltpotError
from meltpot.model import HDNNP, save_model
from meltpot.model.calculator import MeltpotCalculator
from meltpot.model.hdnnp import fit_reference_energies
from meltpot.model.modelfile import ModelFileError
from meltpot.reference import MDSegment
from meltpot.reference.lammps_engine import LammpsEngine
from meltpot.train.evaluate import error_stats, evaluate_model, unit_labels, write_report
from meltpot.train.plots import _history_columns

STATES = [("fcc_300K", "fcc", 300.0), ("fcc_600K", "fcc", 600.0), (None, None, 3000.0),
          ("liquid_1500K", "liquid", 1500.0)]


def make_featureset(rc=5.0, zetas=(1, 4), name="eval-test"):
    return grid(["Al"], rc=rc, n_radial=3, n_shifted=3, zetas=zetas, lambdas=(-1, 1), name=name)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Frames from LAMMPS EAM MD; index, splits and descriptor cache as the workflow writes them."""
    root = tmp_path_factory.mktemp("eval_data")
    engine = LammpsEngine(["Al"], pair_style="eam/fs", pair_coeff=["* * Al_mm.eam.fs Al"])
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    segs = [MDSegment("nvt", T, steps=240, timestep=0.002, sample_every=0 if sid is None else 30,
                      label=sid or "melt") for sid, _, T in STATES]
    files = {"fcc": [], "liquid": []}
    for seg, frame in engine.md(atoms, segs, seed=3):
        sid, phase, T = STATES[seg]
        frame.info.update(state_id=sid, branch="", phase=phase, T_target=T, P_target=math.nan,
                          composition="Al1", engine="lammps", units="metal")
        files[phase].append(frame)
    fs = make_featureset()
    paths = assemble_dataset(root, files, fs, root / "eval-test.h5", dict(train=0.5, validation=0.25, test=0.25, seed=4))
    return {"root": root, "index": paths["index"], "splits": paths["splits"], "cache": paths["cache"], "fs": fs}


@pytest.fixture(scope="module")
def model(dataset):
    """Untrained model: random weights, the cache's scaling, reference energy fitted on train."""
    torch.manual_seed(0)
    m = HDNNP(dataset["fs"], hidden=(6, 6), activation="tanh")
    with DescriptorCache(dataset["cache"]) as c:
        st = c.stats("Al")
    m.set_scaling({"Al": st["mean"]}, {"Al": st["std"]})
    index, splits = pd.read_parquet(dataset["index"]), pd.read_parquet(dataset["splits"])
    train = index[index["frame_id"].isin(splits.loc[splits["split"] == "train", "frame_id"])]
    m.set_reference_energies(fit_reference_energies(train["energy"], train[["n_atoms"]].to_numpy(), ["Al"]))
    return m


def independent(dataset, model, split):
    """Per frame of ``split`` (in index order): E_ref, E_pred per atom, and all force components,
    from the frame files through the ASE calculator."""
    index, splits = pd.read_parquet(dataset["index"]), pd.read_parquet(dataset["splits"])
    ids = set(splits.loc[splits["split"] == split, "frame_id"])
    rows = index[index["frame_id"].isin(ids)]
    calc = MeltpotCalculator(model)
    out = {"frame_id": [], "state_id": [], "e_ref": [], "e_pred": [], "f_ref": [], "f_pred": []}
    for _, row in rows.iterrows():
        fr = read_frames(dataset["index"].parent / row["file"])[int(row["file_index"])]
        lab = labels(fr)
        fr.calc = calc
        n = len(fr)
        out["frame_id"].append(int(row["frame_id"]))
        out["state_id"].append(row["state_id"])
        out["e_ref"].append(float(lab["energy"]) / n)
        out["e_pred"].append(fr.get_potential_energy() / n)
        out["f_ref"].append(lab["forces"])
        out["f_pred"].append(fr.get_forces())
    return out


@pytest.fixture(scope="module")
def results(dataset, model):
    return evaluate_model(model, dataset["cache"], dataset["index"], dataset["splits"], forces="yes")


def test_metrics_equal_numpy_on_independent_predictions(dataset, model, results):
    assert results["units"] == "metal" and results["energy_unit"] == "meV/atom" and results["force_unit"] == "eV/Å"
    assert set(results["splits"]) == {"validation", "test"}
    for split in ("validation", "test"):
        ref = independent(dataset, model, split)
        m = results["splits"][split]
        pred = results["predictions"][results["predictions"]["split"] == split]
        assert m["n_frames"] == len(ref["frame_id"]) == len(pred) > 0
        assert pred["frame_id"].tolist() == ref["frame_id"]
        np.testing.assert_array_equal(pred["E_ref"], ref["e_ref"])
        np.testing.assert_allclose(pred["E_pred"], ref["e_pred"], rtol=0, atol=1e-12)
        err = (np.array(ref["e_pred"]) - np.array(ref["e_ref"])) * 1000.0       # meV/atom
        assert m["energy_rmse"] == pytest.approx(np.sqrt(np.mean(err ** 2)), rel=1e-9)
        assert m["energy_mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-9)
        assert m["energy_me"] == pytest.approx(np.mean(err), rel=1e-9)
        ferr = np.concatenate(ref["f_pred"]) - np.concatenate(ref["f_ref"])
        assert m["force_rmse"] == pytest.approx(np.sqrt(np.mean(ferr ** 2)), rel=1e-9)
        assert m["force_mae"] == pytest.approx(np.mean(np.abs(ferr)), rel=1e-9)
        assert m["n_force_components"] == ferr.size and m["n_force_frames"] == m["n_frames"]
        assert m["energy_positions_vs_cache"] < 1e-10
        # an untrained model: errors are real, not zero; the reference energy keeps them at eV scale at most
        assert 0.1 < m["energy_rmse"] < 1e4 and m["force_rmse"] > 0.01
        f = results["forces"][split]
        assert f["ref"].shape == f["pred"].shape == (ferr.size // 3, 3)
        np.testing.assert_allclose(f["pred"] - f["ref"], ferr, rtol=0, atol=1e-12)


def test_per_state_and_per_phase_tables_add_up(results):
    pred = results["predictions"]
    for by, table in (("state_id", results["per_state"]), ("phase", results["per_phase"])):
        for split, m in results["splits"].items():
            t = table[table["split"] == split]
            assert t["n_frames"].sum() == m["n_frames"] and t["n_atoms"].sum() == m["n_atoms"]
            assert set(t[by]) == set(pred.loc[pred["split"] == split, by])
            w = t["n_frames"] / m["n_frames"]
            assert np.sqrt((w * t["energy_rmse"] ** 2).sum()) == pytest.approx(m["energy_rmse"], rel=1e-10)
            assert (w * t["energy_mae"]).sum() == pytest.approx(m["energy_mae"], rel=1e-10)
            assert (w * t["energy_me"]).sum() == pytest.approx(m["energy_me"], rel=1e-9, abs=1e-12)
            assert t["n_force_components"].sum() == m["n_force_components"]
            wf = t["n_force_components"] / m["n_force_components"]
            assert np.sqrt((wf * t["force_rmse"] ** 2).sum()) == pytest.approx(m["force_rmse"], rel=1e-10)
            assert (wf * t["force_mae"]).sum() == pytest.approx(m["force_mae"], rel=1e-10)
            # each row against its own frames
            for _, row in t.iterrows():
                sub = pred[(pred["split"] == split) & (pred[by] == row[by])]
                err = (sub["E_pred"] - sub["E_ref"]).to_numpy() * 1000.0
                assert row["energy_rmse"] == pytest.approx(np.sqrt(np.mean(err ** 2)), rel=1e-10)
    states = results["per_state"]
    assert set(states["phase"]) <= {"fcc", "liquid"}
    assert (states.groupby("state_id")["phase"].nunique() == 1).all()


def test_force_modes_splits_and_refusals(dataset, model, results):
    no = evaluate_model(model, dataset["cache"], dataset["index"], dataset["splits"], forces="no")
    assert no["forces"] == {} and "force_rmse" not in no["splits"]["test"]
    assert no["splits"]["test"]["energy_rmse"] == results["splits"]["test"]["energy_rmse"]
    assert np.isnan(no["per_state"]["force_rmse"]).all()
    auto = evaluate_model(model, dataset["cache"], dataset["index"], dataset["splits"], splits_to=("train",))
    assert list(auto["splits"]) == ["train"] and auto["splits"]["train"]["forces_evaluated"]
    assert (auto["predictions"]["split"] == "train").all()
    with pytest.raises(MeltpotError, match="forces = 'sometimes'"):
        evaluate_model(model, dataset["cache"], dataset["index"], dataset["splits"], forces="sometimes")
    with pytest.raises(MeltpotError, match="split\\(s\\) dev unknown"):
        evaluate_model(model, dataset["cache"], dataset["index"], dataset["splits"], splits_to=("dev",))
    # a model of another feature set refuses the cache, naming it
    other = HDNNP(make_featureset(zetas=(1, 2)), hidden=(4,))
    with pytest.raises(ModelFileError, match=f"{dataset['cache']}.*recompute the descriptors"):
        evaluate_model(other, dataset["cache"], dataset["index"], dataset["splits"])
    # an index over other frames than the cache's
    index = pd.read_parquet(dataset["index"])
    index.loc[index.index[0], "file_index"] = int(index["file_index"].iloc[1])
    with pytest.raises(MeltpotError, match="other frames"):
        evaluate_model(model, dataset["cache"], index, dataset["splits"], root=dataset["index"].parent)


def test_report_files(results, tmp_path):
    paths = write_report(results, tmp_path / "report")
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"metrics.json", "per_state.csv", "per_phase.csv",
                                                                  "predictions.parquet"}
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["energy_unit"] == "meV/atom" and metrics["model"]["featureset"] == "eval-test"
    assert metrics["splits"]["test"]["energy_rmse"] == pytest.approx(results["splits"]["test"]["energy_rmse"])
    assert metrics["cache"]["featureset_hash"] == metrics["model"]["featureset_hash"]
    pred = pd.read_parquet(paths["predictions"])
    assert list(pred.columns) == ["frame_id", "split", "state_id", "phase", "heldout", "n_atoms", "E_ref", "E_pred"]
    pd.testing.assert_frame_equal(pred, results["predictions"], check_dtype=False)
    states = pd.read_csv(paths["per_state"])
    assert len(states) == len(results["per_state"]) and "energy_rmse" in states


def test_units_and_error_stats():
    assert unit_labels("lj") == {"energy": "10⁻³ ε/atom", "force": "ε/σ", "energy_data": "ε/atom"}
    s = error_stats([3.0, -4.0])
    assert s == {"rmse": pytest.approx(np.sqrt(12.5)), "mae": 3.5, "me": -0.5, "n": 2}
    assert math.isnan(error_stats([])["rmse"])
    with pytest.raises(MeltpotError, match="units 'si'"):
        unit_labels("si")


# ============================================================================ CLI
def _config(tmp_path):
    cfg = {"run_id": "ev", "elements": ["Al"], "units": "metal",
           "reference": {"engine": "lammps", "pair_style": "eam/fs", "pair_coeff": ["* * Al_mm.eam.fs Al"]},
           "imports": [{"id": "x", "path": "x.extxyz"}]}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _args(cfg, model_path, dataset, out, *extra):
    return ["evaluate", str(cfg), "--model", str(model_path), "--cache", str(dataset["cache"]), "--index",
            str(dataset["index"]), "--splits", str(dataset["splits"]), "--out-dir", str(out), *extra]


def test_cli_writes_report_and_plots(dataset, model, results, tmp_path, capsys):
    model_path = tmp_path / "model.pt"
    save_model(model, model_path, units="metal", metadata={"note": "untrained"})
    history = tmp_path / "history.csv"
    ep = np.arange(1, 31)
    hist = pd.DataFrame({"epoch": ep, "lr": 1e-3 * 0.5 ** (ep // 10), "train_loss": (0.05 / ep) ** 2,
                         "train_energy_rmse": 0.05 / ep, "val_energy_rmse": 0.06 / ep + 0.001,
                         "val_energy_mae": 0.05 / ep + 0.001, "val_loss": (0.06 / ep + 0.001) ** 2,
                         "monitor": 0.06 / ep + 0.001, "seconds": 0.1})   # the trainer's columns, eV/atom
    hist.to_csv(history, index=False)
    assert _history_columns(hist) == {"epoch": "epoch", "energy": ["train_energy_rmse", "val_energy_rmse",
                                                                   "val_energy_mae"], "force": [],
                                      "loss": ["train_loss", "val_loss", "monitor"], "lr": ["lr"]}
    out = tmp_path / "eval"
    assert main(_args(_config(tmp_path), model_path, dataset, out, "--history", str(history), "--threads", "1")) == 0
    text = capsys.readouterr().out
    assert "validation:" in text and "meV/atom" in text and "force RMSE" in text
    names = {p.name for p in out.iterdir()}
    assert names == {"metrics.json", "per_state.csv", "per_phase.csv", "predictions.parquet", "parity_energy.png",
                     "parity_forces.png", "learning_curve.png"}
    for png in ("parity_energy.png", "parity_forces.png", "learning_curve.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("validation", "test"):      # the file model gives the in-memory model's numbers
        assert metrics["splits"][split]["energy_rmse"] == pytest.approx(results["splits"][split]["energy_rmse"],
                                                                        rel=1e-12)
        assert metrics["splits"][split]["force_rmse"] == pytest.approx(results["splits"][split]["force_rmse"],
                                                                       rel=1e-12)
    assert metrics["model"]["metadata"] == {"note": "untrained"}
    # forces off: no force plot
    out2 = tmp_path / "eval_noforces"
    assert main(_args(_config(tmp_path), model_path, dataset, out2, "--forces", "no")) == 0
    assert not (out2 / "parity_forces.png").exists() and (out2 / "parity_energy.png").exists()


def test_cli_bad_model_files_exit_2_naming_the_file(dataset, model, tmp_path, capsys):
    cfg = _config(tmp_path)
    good = tmp_path / "good.pt"
    save_model(model, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model at all\n" * 50)
    other = tmp_path / "other_fs.pt"
    torch.manual_seed(1)
    save_model(HDNNP(make_featureset(rc=4.0), hidden=(4,)), other)
    for path, text in ((truncated, "truncated or corrupt"), (garbage, "truncated or corrupt"),
                       (other, "recompute the descriptors"), (tmp_path / "missing.pt", "does not exist")):
        out = tmp_path / f"out_{path.stem}"
        assert main(_args(cfg, path, dataset, out)) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("meltpot: error: ") and str(path) in err and text in err, err
        assert len(err.splitlines()) == 1
        assert not out.exists()
    lj = tmp_path / "lj.pt"
    save_model(model, lj, units="lj")
    assert main(_args(cfg, lj, dataset, tmp_path / "out_lj")) == 2
    assert "lj units" in capsys.readouterr().err


def test_frames_without_force_labels_are_left_out_of_force_metrics(dataset, model, tmp_path):
    """Energy-only frames (e.g. imported without forces): energies evaluated, forces of the others."""
    import shutil

    from ase.calculators.singlepoint import SinglePointCalculator

    shutil.copytree(dataset["root"] / "frames", tmp_path / "frames")
    liquid = read_frames(tmp_path / "frames" / "liquid.extxyz")
    for fr in liquid:
        fr.calc = SinglePointCalculator(fr, energy=fr.get_potential_energy())
    write_frames(tmp_path / "frames" / "liquid.extxyz", liquid)
    ds = tmp_path / "dataset"
    ds.mkdir()
    entries = [(f, fr.info["source_index"], fr) for f in sorted((tmp_path / "frames").glob("*.extxyz"))
               for fr in read_frames(f)]
    build_index(entries, root=ds, units="metal").to_parquet(ds / "index.parquet", index=False)
    build_cache(ds / "index.parquet", tmp_path / "c.h5", dataset["fs"], splits=dataset["splits"], progress=False)
    r = evaluate_model(model, tmp_path / "c.h5", ds / "index.parquet", dataset["splits"], forces="yes")
    for split, m in r["splits"].items():
        pred = r["predictions"][r["predictions"]["split"] == split]
        n_fcc = int((pred["phase"] == "fcc").sum())
        assert m["n_frames"] == len(pred) and m["n_force_frames"] == n_fcc < len(pred)
        assert set(r["forces"][split]["phase"]) == {"fcc"}
        liquid_rows = r["per_phase"][(r["per_phase"]["split"] == split) & (r["per_phase"]["phase"] == "liquid")]
        assert liquid_rows["n_force_components"].item() == 0 and np.isnan(liquid_rows["force_rmse"].item())
        assert np.isfinite(liquid_rows["energy_rmse"].item())
