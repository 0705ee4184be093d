"""`meltpot select path` and `meltpot select filter` on a small real dataset (LAMMPS EAM frames)."""

import json

import pandas as pd
import yaml

from meltpot.cli import main
from meltpot.descriptors.featureset import load_featureset
from meltpot.model.modelfile import load_model
from meltpot.reproducibility import PINNED
from test_trainer import _config, data_dir  # noqa: F401 - fixture


def test_select_path_cli(data_dir, tmp_path, capsys):  # noqa: F811
    cfg_path = _config(tmp_path, data_dir / "tiny.yaml")
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["selection"] = {"gl_epochs": 6, "agl_epochs": 6, "retrain_epochs": 6, "lambda_factor": 20.0,
                        "max_lambdas": 8, "tolerance": 10.0}
    cfg_path.write_text(yaml.safe_dump(cfg))
    common = ["--cache", str(data_dir / "tiny.h5"), "--index", str(data_dir / "index.parquet"),
              "--splits", str(data_dir / "splits.parquet")]
    dense = tmp_path / "dense.pt"
    assert main(["train", str(cfg_path), *common, "--out", str(dense), "--no-progress"]) == 0
    out = tmp_path / "select"
    assert main(["select", "path", str(cfg_path), "--model", str(dense), *common, "--out-dir", str(out)]) == 0
    table = pd.read_csv(out / "path.csv")
    n_all = load_model(dense).n_features[0]
    assert table["n_total"].iloc[0] <= n_all and table["lambda"].is_monotonic_increasing
    assert table["n_total"].is_monotonic_decreasing
    chosen = json.loads((out / "chosen.json").read_text())
    fs = load_featureset(out / "selected_featureset.yaml")
    assert fs.n_features("Al") == chosen["n_features"] == len(chosen["kept"]["Al"])
    # every size's distance to the tolerance (how easily the choice flips), smallest first
    margins = chosen["margins"]
    assert [m["n_features"] for m in margins] == sorted({int(n) for n in table["n_total"] if n > 0})
    mine = next(m for m in margins if m["n_features"] == chosen["n_features"])
    if "within" in chosen["rule"]:
        assert mine["ratio"] <= 1 + chosen["tolerance"] or all(m["ratio"] > 1 + chosen["tolerance"] for m in margins)
    retrained = load_model(chosen["model"])
    assert retrained.n_features == [chosen["n_features"]]      # the input layer really shrank
    assert (out / "path.png").stat().st_size > 5000
    assert "chosen λ" in capsys.readouterr().out
    # one λ per call (the workflow's per-λ jobs): --until-step reuses the finished steps
    first = json.loads((out / "lambda_00" / "result.json").read_text())
    assert main(["select", "path", str(cfg_path), "--model", str(dense), *common, "--out-dir", str(out),
                 "--until-step", "0"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 0
    assert json.loads((out / "lambda_00" / "result.json").read_text()) == first      # reused, not redone
    # other settings: the stored fingerprint no longer matches, so the step is recomputed
    cfg["selection"]["gl_epochs"] = 5
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["select", "path", str(cfg_path), "--model", str(dense), *common, "--out-dir", str(out),
                 "--until-step", "0"]) == 0
    again = json.loads((out / "lambda_00" / "result.json").read_text())
    assert again["fingerprint"] != first["fingerprint"]


def test_select_filter_cli(data_dir, tmp_path):  # noqa: F811
    for method in ("pearson", "cur", "fps"):
        out = tmp_path / f"{method}.yaml"
        assert main(["select", "filter", "--cache", str(data_dir / "tiny.h5"), "--splits",
                     str(data_dir / "splits.parquet"), "--method", method, "--n-features", "3", "--out", str(out)]) == 0
        assert load_featureset(out).n_features("Al") == 3
        assert len(json.loads(out.with_suffix(".json").read_text())["selected"]["Al"]) == 3
    assert main(["select", "filter", "--cache", str(data_dir / "tiny.h5"), "--splits", str(data_dir / "splits.parquet"),
                 "--method", "lasso", "--n-features", "3", "--out", str(tmp_path / "x.yaml")]) == 2


def test_select_noise_features_through_path_filter_and_compare(data_dir, tmp_path, capsys):  # noqa: F811
    """selection.noise_features: every command sees the same noise columns; the outputs say
    which noise features each method kept."""
    cfg_path = _config(tmp_path, data_dir / "tiny.yaml")
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["selection"] = {"gl_epochs": 5, "agl_epochs": 5, "retrain_epochs": 5, "lambda_factor": 30.0,
                        "max_lambdas": 6, "tolerance": 10.0, "noise_features": 3, "choose_n_features": 6}
    cfg_path.write_text(yaml.safe_dump(cfg))
    common = ["--cache", str(data_dir / "tiny.h5"), "--index", str(data_dir / "index.parquet"),
              "--splits", str(data_dir / "splits.parquet")]
    dense = tmp_path / "dense.pt"
    assert main(["train", str(cfg_path), *common, "--out", str(dense), "--no-progress"]) == 0
    out = tmp_path / "select"
    assert main(["select", "path", str(cfg_path), "--model", str(dense), *common, "--out-dir", str(out)]) == 0
    wide = load_model(out / "dense_noise.pt")
    n_real = load_model(dense).n_features[0]
    assert wide.n_features == [n_real + 3] and wide.featureset.labels("Al")[-3:] == ["noise0", "noise1", "noise2"]
    chosen = json.loads((out / "chosen.json").read_text())
    assert chosen["noise_features"] == 3 and chosen["n_features"] <= 6
    assert chosen["noise_kept"]["Al"] == [x for x in chosen["kept_labels"]["Al"] if x.startswith("noise")]
    # the filter sees the noise columns (CUR on standardised columns keeps independent ones)
    cur = tmp_path / "cur.yaml"
    assert main(["select", "filter", "--config", str(cfg_path), *common, "--method", "cur",
                 "--n-features", str(n_real + 1), "--out", str(cur)]) == 0
    labels = load_featureset(cur).labels("Al")
    assert len(labels) == n_real + 1 and any(x.startswith("noise") for x in labels)
    assert main(["select", "filter", *common, "--noise", "2", "--method", "pearson", "--n-features", "3",
                 "--out", str(tmp_path / "pc.yaml")]) == 0
    capsys.readouterr()
    assert main(["select", "compare", str(cfg_path), *common, "--sets", f"agl={out / 'selected_featureset.yaml'}",
                 f"cur={cur}", "--seeds", "1", "--max-epochs", "3", "--out-dir", str(tmp_path / "cmp")]) == 0
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert table.set_index("set").loc["cur", "n_noise"] == sum(x.startswith("noise") for x in labels)
    assert table.set_index("set").loc["full", "n_features"] == n_real + 3
    assert "noise" in capsys.readouterr().out


def test_select_path_and_compare_with_forces(data_dir, tmp_path, caplog, monkeypatch):  # noqa: F811
    """selection.forces: the λ path, retraining and comparison fit the training loss's force term
    from the derivative store; the choice rule then uses the validation force RMSE."""
    cfg_path = _config(tmp_path, data_dir / "tiny.yaml", loss={"forces": 0.1})
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["training"]["max_epochs"] = 4
    cfg["descriptors"]["derivatives"] = {"train_frames": 12, "validation_frames": 4}
    cfg["selection"] = {"gl_epochs": 3, "agl_epochs": 3, "retrain_epochs": 3, "lambda_factor": 30.0,
                        "max_lambdas": 4, "tolerance": 10.0, "force_frames": 8, "compare_seeds": 1}
    cfg_path.write_text(yaml.safe_dump(cfg))
    common = ["--cache", str(data_dir / "tiny.h5"), "--index", str(data_dir / "index.parquet"),
              "--splits", str(data_dir / "splits.parquet")]
    store = tmp_path / "d.h5"
    assert main(["descriptors", "derivatives", str(cfg_path), "--index", str(data_dir / "index.parquet"),
                 "--splits", str(data_dir / "splits.parquet"), "--out", str(store), "--no-progress"]) == 0
    dense = tmp_path / "dense.pt"
    assert main(["train", str(cfg_path), *common, "--out", str(dense), "--derivatives", str(store),
                 "--no-progress"]) == 0
    out = tmp_path / "select"
    assert main(["select", "path", str(cfg_path), "--model", str(dense), *common, "--out-dir", str(out),
                 "--derivatives", str(store)]) == 0
    table = pd.read_csv(out / "path.csv")
    assert table["val_force_rmse_dense"].notna().all()
    chosen = json.loads((out / "chosen.json").read_text())
    assert chosen["metric"] == "force_rmse" and chosen["val_force_rmse_retrained"] > 0
    row = table.set_index("step").loc[chosen["step"]]
    assert chosen["val_rmse_retrained"] == row["val_rmse_retrained"]        # energy RMSE, not the force one
    assert chosen["val_force_rmse_retrained"] == row["val_force_rmse_retrained"]
    assert main(["select", "compare", str(cfg_path), *common, "--sets", f"agl={out / 'selected_featureset.yaml'}",
                 "--seeds", "1", "--max-epochs", "2", "--derivatives", str(store), "--out-dir",
                 str(tmp_path / "cmp")]) == 0
    comp = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert set(comp["set"]) == {"full", "agl"} and (comp["val_force_rmse_mean"] > 0).all()
    # two worker processes (the workflow's): the same table, row for row and bit for bit. The
    # workers must run the same CPU kernels as this process, whose torch was loaded before the
    # command line could pin them (MKL_CBWR alone changes the last bits here): no pinning
    for key in PINNED:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MELTPOT_CPU_KERNELS", "native")
    assert main(["select", "compare", str(cfg_path), *common, "--sets", f"agl={out / 'selected_featureset.yaml'}",
                 "--seeds", "1", "--max-epochs", "2", "--derivatives", str(store), "--out-dir",
                 str(tmp_path / "cmp1")]) == 0
    comp = pd.read_csv(tmp_path / "cmp1" / "comparison.csv")
    assert main(["select", "compare", str(cfg_path), *common, "--sets", f"agl={out / 'selected_featureset.yaml'}",
                 "--seeds", "1", "--max-epochs", "2", "--derivatives", str(store), "--workers", "2", "--out-dir",
                 str(tmp_path / "cmp2")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "cmp2" / "comparison.csv"), comp, check_exact=True)
    # without the store the selection fits energies only, and says so
    assert main(["select", "path", str(cfg_path), "--model", str(dense), *common, "--out-dir",
                 str(tmp_path / "energy-only")]) == 0
    assert "fits energies only" in caplog.text


def test_path_seeds_and_the_stability_of_the_choice(data_dir, tmp_path, capsys):  # noqa: F811
    """--path-seed K reruns the λ path with other random parts (reproducibly); `select stability`
    puts the choices side by side."""
    import pytest

    from meltpot.errors import MeltpotError
    from meltpot.selection.stability import path_stability

    cfg_path = _config(tmp_path, data_dir / "tiny.yaml")
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["selection"] = {"gl_epochs": 6, "agl_epochs": 6, "retrain_epochs": 6, "lambda_factor": 20.0,
                        "max_lambdas": 8, "tolerance": 10.0, "refine_steps": 0}
    cfg_path.write_text(yaml.safe_dump(cfg))
    common = ["--cache", str(data_dir / "tiny.h5"), "--index", str(data_dir / "index.parquet"),
              "--splits", str(data_dir / "splits.parquet")]
    dense = tmp_path / "dense.pt"
    assert main(["train", str(cfg_path), *common, "--out", str(dense), "--no-progress"]) == 0
    runs = {}
    for name, seed in (("own", 0), ("seed1", 1), ("seed1_again", 1)):
        runs[name] = tmp_path / name
        assert main(["select", "path", str(cfg_path), "--model", str(dense), *common, "--out-dir", str(runs[name]),
                     "--path-seed", str(seed)]) == 0
    step = {n: json.loads((d / "lambda_00" / "result.json").read_text()) for n, d in runs.items()}
    assert step["own"]["fingerprint"] != step["seed1"]["fingerprint"]            # other seeds, another path
    assert step["seed1"] == step["seed1_again"]                                  # … and reproducible
    assert json.loads((runs["seed1"] / "chosen.json").read_text())["path_seed"] == 1
    capsys.readouterr()
    out = tmp_path / "stability"
    assert main(["select", "stability", "--paths", str(runs["own"]), str(runs["seed1"]), "--out-dir", str(out)]) == 0
    assert "λ paths with 2 seeds chose" in capsys.readouterr().out
    data = json.loads((out / "stability.json").read_text())
    chosen = [json.loads((runs[n] / "chosen.json").read_text()) for n in ("own", "seed1")]
    assert data["path_seeds"] == [0, 1] and data["n_features"] == [c["n_features"] for c in chosen]
    assert data["same_count"] == (chosen[0]["n_features"] == chosen[1]["n_features"])
    sets = [set(c["kept_labels"]["Al"]) for c in chosen]
    assert data["jaccard_vs_first"][0] == 1.0
    assert data["jaccard_vs_first"][1] == pytest.approx(len(sets[0] & sets[1]) / len(sets[0] | sets[1]))
    assert set(data["kept_by_all"]) == sets[0] & sets[1]
    assert set(data["kept_by_some"]) == (sets[0] | sets[1]) - (sets[0] & sets[1])
    table = pd.read_csv(out / "stability.csv")
    assert list(table["path_seed"]) == [0, 1] and table["path"].str.contains("→").all()
    with pytest.raises(MeltpotError, match="seeds repeat"):
        path_stability([runs["seed1"], runs["seed1_again"]], tmp_path / "bad")
    with pytest.raises(MeltpotError, match="chosen.json does not exist"):
        path_stability([runs["own"], tmp_path], tmp_path / "bad")
    with pytest.raises(MeltpotError, match="at least two"):
        path_stability([runs["own"]], tmp_path / "bad")
