"""`meltpot descriptors` through the CLI: compute/info/export/featureset/presets, exit codes,
messages, and the config's descriptors block."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from test_descriptor_cache import frame_dir, make_dataset  # noqa: F401 - fixture

from meltpot.cli import main
from meltpot.config import load_config, validate_config
from meltpot.descriptors.cache import DescriptorCache
from meltpot.descriptors.featureset import load_featureset
from meltpot.errors import ConfigError


def _config(tmp_path, descriptors=None, elements=("Al", "Ni")):
    cfg = {
        "run_id": "desc", "elements": list(elements), "units": "metal",
        "reference": {"engine": "ase", "calculator": "EMT"},
        "imports": [{"id": "x", "path": "x.extxyz"}],
    }
    if descriptors is not None:
        cfg["descriptors"] = descriptors
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture()
def setup(frame_dir, tmp_path):  # noqa: F811
    index, splits = make_dataset(frame_dir, tmp_path)
    fs_path = tmp_path / "fs" / "small.yaml"
    assert main(["descriptors", "featureset", "--grid", "--elements", "Al", "Ni", "--rc", "4.5", "--n-radial", "2",
                 "--n-shifted", "2", "--zetas", "1", "4", "--name", "small", "--out", str(fs_path)]) == 0
    cfg = _config(tmp_path, {"featureset": "fs/small.yaml", "chunk_frames": 4})
    return cfg, index, splits, fs_path


def _compute(cfg, index, out, *extra):
    return main(["descriptors", "compute", str(cfg), "--index", str(index), "--out", str(out), "--no-progress",
                 *extra])


def test_compute_reuse_info_export(setup, tmp_path, capsys):
    cfg, index, splits, fs_path = setup
    out = tmp_path / "desc" / "small.h5"
    assert _compute(cfg, index, out, "--splits", str(splits), "--threads", "1") == 0
    line = capsys.readouterr().out
    assert f"{out}: computed (no cache yet); small, 10 frames, 320 atoms" in line and "atom environments/s" in line
    assert _compute(cfg, index, out, "--splits", str(splits)) == 0
    assert "reused (up to date)" in capsys.readouterr().out
    with DescriptorCache(out) as c:
        assert c.featureset().content_hash() == load_featureset(fs_path).content_hash()
        assert c.info()["stats_over"] == "train" and c.dtype == "float64"
        n_al = c.n_rows("Al")

    assert main(["descriptors", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "feature set  small" in text and "10 (320 atoms)" in text and "statistics   over train frames" in text
    assert f"Al: {n_al} atoms × 20 features" in text and "G2(eta=" in text and "G3(eta=" in text
    assert main(["descriptors", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["elements"] == ["Al", "Ni"] and info["n_features"] == {"Al": 20, "Ni": 20}
    assert len(info["stats"]["Ni"]["mean"]) == 20 and info["stats"]["Ni"]["over"] == "train"

    for suffix in ("npz", "csv", "parquet"):
        dest = tmp_path / f"al.{suffix}"
        assert main(["descriptors", "export", str(out), "--out", str(dest), "--element", "Al"]) == 0
        assert f"{dest}: {n_al} rows" in capsys.readouterr().out
    df = pd.read_parquet(tmp_path / "al.parquet")
    with DescriptorCache(out) as c:
        assert list(df.columns) == ["element", "frame_id", "atom", *c.labels("Al")]
        np.testing.assert_array_equal(df[c.labels("Al")].to_numpy(), c.features("Al"))


def test_compute_options_override_config(setup, tmp_path, capsys):
    cfg, index, splits, fs_path = setup
    out = tmp_path / "o.h5"
    # --featureset is relative to the working directory; here an absolute path
    alt = tmp_path / "alt.yaml"
    assert main(["descriptors", "featureset", "--grid", "--elements", "Al", "Ni", "--rc", "4.0", "--n-radial", "1",
                 "--n-shifted", "0", "--zetas", "1", "--lambdas", "1", "--out", str(alt)]) == 0
    assert _compute(cfg, index, out, "--featureset", str(alt), "--dtype", "float32", "--chunk-frames", "2") == 0
    with DescriptorCache(out) as c:
        assert c.dtype == "float32" and c.n_features("Al") == 2 + 3 and c.info()["stats_over"] == "all"


@pytest.mark.parametrize("args, message", [
    (["--index", "{tmp}/nope.parquet"], "dataset index {tmp}/nope.parquet does not exist"),
    (["--featureset", "al-thesis", "--splits", "{tmp}/nope.parquet"], "split table {tmp}/nope.parquet does not exist"),
    (["--featureset", "nonsense"], "feature set 'nonsense' is neither a file nor a preset"),
])
def test_compute_errors_exit_2_with_one_line(setup, tmp_path, capsys, args, message):
    cfg, index, splits, fs_path = setup
    argv = ["descriptors", "compute", str(cfg), "--index", str(index), "--out", str(tmp_path / "e.h5"),
            "--no-progress"]
    argv += [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("meltpot: error:") and message.format(tmp=tmp_path) in err and "\n" not in err
    assert not (tmp_path / "e.h5").exists()


def test_compute_element_errors(setup, tmp_path, capsys):
    cfg, index, splits, fs_path = setup
    # the config (and its feature set) has Cu, the data does not
    cfg3 = _config(tmp_path, {"featureset": "al-thesis"}, elements=("Al", "Ni", "Cu"))
    assert _compute(cfg3, index, tmp_path / "e.h5") == 2
    err = capsys.readouterr().err
    assert "has functions for element(s) Cu, which the dataset" in err
    # the data has Ni, the feature set does not
    cfg1 = _config(tmp_path, {"featureset": "al-thesis"}, elements=("Al",))
    assert _compute(cfg1, index, tmp_path / "e.h5") == 2
    err = capsys.readouterr().err
    assert "alloy_a.extxyz, frame 0: element(s) Ni not in feature set al-thesis" in err


def test_info_and_export_errors(setup, tmp_path, capsys):
    cfg, index, splits, fs_path = setup
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file")
    assert main(["descriptors", "info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"descriptor cache {bad} is unreadable or corrupt" in err
    out = tmp_path / "ok.h5"
    assert _compute(cfg, index, out) == 0
    capsys.readouterr()
    assert main(["descriptors", "export", str(out), "--out", str(tmp_path / "x.xlsx")]) == 2
    assert "unknown export format .xlsx" in capsys.readouterr().err
    assert main(["descriptors", "export", str(out), "--out", str(tmp_path / "x.csv"), "--element", "Cu"]) == 2
    assert "has no element 'Cu'" in capsys.readouterr().err


def test_featureset_and_presets(tmp_path, capsys):
    assert main(["descriptors", "presets"]) == 0
    text = capsys.readouterr().out
    for name in ("al-thesis", "lj-thesis", "b-thesis"):
        assert name in text
    out = tmp_path / "al.yaml"
    assert main(["descriptors", "featureset", "--preset", "al-thesis", "--elements", "Al", "Ni", "--out", str(out)]) == 0
    assert "feature set al-thesis: Al 54, Ni 54 functions, r_c 6.8" in capsys.readouterr().out
    back = load_featureset(out)
    assert back.content_hash() == load_featureset("al-thesis", ["Al", "Ni"]).content_hash()
    assert main(["descriptors", "featureset", "--grid", "--elements", "Al", "--out", str(out)]) == 2
    assert "needs --elements and --rc" in capsys.readouterr().err
    assert main(["descriptors", "featureset", "--preset", "al-thesis", "--out", str(out)]) == 2
    assert "needs elements" in capsys.readouterr().err


# ----------------------------------------------------------------------------- config


def test_config_descriptors_defaults_and_presets():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert load_config(root / "config" / "config.yaml")["descriptors"] == {
        "featureset": "al-thesis", "dtype": "float64", "device": "cpu", "chunk_frames": 32,
        "derivatives": {"train_frames": 150, "validation_frames": 40, "dtype": "float32", "missing_forces": "error",
                        "backend": "auto"}}
    for name, fs in (("lj.yaml", "lj-thesis"), ("lj-tiny.yaml", "lj-thesis"), ("al-thesis.yaml", "al-thesis")):
        assert load_config(root / "config" / "presets" / name)["descriptors"]["featureset"] == fs


def test_config_rejects_bad_descriptors(tmp_path):
    with pytest.raises(ConfigError, match=r"descriptors\.featureset = 'nope': feature set 'nope' is neither"):
        load_config(_config(tmp_path, {"featureset": "nope"}))
    with pytest.raises(ConfigError, match=r"unknown key descriptors\.chunk"):
        load_config(_config(tmp_path, {"chunk": 3}))
    with pytest.raises(ConfigError, match=r"descriptors\.dtype = 'float16' is not allowed; allowed values: float64"):
        load_config(_config(tmp_path, {"dtype": "float16"}))
    # a resolved feature set for other elements than the run's
    fs = tmp_path / "fs.yaml"
    load_featureset("lj-thesis", ["Ar"]).save(fs)
    with pytest.raises(ConfigError, match=r"descriptors\.featureset = 'fs\.yaml': .*differ from the data's"):
        load_config(_config(tmp_path, {"featureset": "fs.yaml"}))
    # relative to the config's folder, not the working directory
    sub = tmp_path / "sub"
    sub.mkdir()
    shutil.copy(fs, sub / "fs.yaml")
    cfg = yaml.safe_load(_config(tmp_path, {"featureset": "fs.yaml"}, elements=("Ar",)).read_text())
    (sub / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert load_config(sub / "cfg.yaml")["descriptors"]["featureset"] == "fs.yaml"
    assert validate_config(cfg, base_dir=sub)["descriptors"]["featureset"] == "fs.yaml"
