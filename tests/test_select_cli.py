"""`meltpot select path` and `meltpot select filter` on a small real dataset (LAMMPS EAM frames)."""

import json

import pandas as pd
import yaml

from meltpot.cli import main
from meltpot.descriptors.featureset import load_featureset
from meltpot.model.modelfile import load_model
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
    retrained = load_model(chosen["model"])
    assert retrained.n_features == [chosen["n_features"]]      # the input layer really shrank
    assert (out / "path.png").stat().st_size > 5000
    assert "chosen λ" in capsys.readouterr().out


def test_select_filter_cli(data_dir, tmp_path):  # noqa: F811
    for method in ("pearson", "cur", "fps"):
        out = tmp_path / f"{method}.yaml"
        assert main(["select", "filter", "--cache", str(data_dir / "tiny.h5"), "--splits",
                     str(data_dir / "splits.parquet"), "--method", method, "--n-features", "3", "--out", str(out)]) == 0
        assert load_featureset(out).n_features("Al") == 3
        assert len(json.loads(out.with_suffix(".json").read_text())["selected"]["Al"]) == 3
    assert main(["select", "filter", "--cache", str(data_dir / "tiny.h5"), "--splits", str(data_dir / "splits.parquet"),
                 "--method", "lasso", "--n-features", "3", "--out", str(tmp_path / "x.yaml")]) == 2
