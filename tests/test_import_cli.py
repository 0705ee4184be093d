"""Import of existing trajectories through the CLI, and dataset assembly with bad frames."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from meltpot.cli import main
from meltpot.data.io import read_frames, write_frames

DATA = __import__("pathlib").Path(__file__).parent / "data"


def _config(tmp_path, imports, on_error="fail"):
    cfg = {
        "run_id": "imp", "elements": ["Al"], "units": "metal",
        "reference": {"engine": "lammps", "pair_style": "eam/fs", "pair_coeff": ["* * Al_mm.eam.fs Al"]},
        "imports": imports,
        "validation": {"min_distance": 1.0, "on_error": on_error},
        "split": {"by": "frame", "train": 0.5, "validation": 0.0, "test": 0.5},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_import_outcar_keeps_free_energy_and_tags(tmp_path):
    cfg = _config(tmp_path, [{"id": "aimd_al", "path": str(DATA / "OUTCAR_Al4_md"), "format": "vasp-out",
                              "phase": "liquid", "T": 1500}])
    out = tmp_path / "frames" / "import_aimd_al.extxyz"
    assert main(["import", str(cfg), "--id", "aimd_al", "--out", str(out)]) == 0
    src = read_frames(DATA / "OUTCAR_Al4_md")
    got = read_frames(out)
    assert len(got) == len(src) == 2
    for a, b in zip(src, got):
        assert b.get_potential_energy() == pytest.approx(a.get_potential_energy(force_consistent=True), abs=1e-10)
        assert b.info["energy_zero"] == pytest.approx(a.info["energy_zero"], abs=1e-10)
        np.testing.assert_allclose(b.get_forces(), a.get_forces(), atol=1e-8)
        np.testing.assert_allclose(b.get_stress(), a.get_stress(), atol=1e-10)
        assert b.info["state_id"] == "aimd_al" and b.info["phase"] == "liquid" and b.info["T_target"] == 1500
        assert b.info["branch"] == ""  # empty tags survive extxyz
    ds = tmp_path / "ds"
    assert main(["dataset", str(cfg), "--frames", str(out), "--out-dir", str(ds)]) == 0
    index = pd.read_parquet(ds / "index.parquet")
    assert list(index["origin"]) == [f"{DATA / 'OUTCAR_Al4_md'}#0", f"{DATA / 'OUTCAR_Al4_md'}#1"]
    assert index["engine"].iloc[0] == "import:vasp-out" and index["has_stress"].all()


def test_unknown_import_id(tmp_path, capsys):
    cfg = _config(tmp_path, [{"id": "a", "path": str(DATA / "OUTCAR_Al4_md")}])
    assert main(["import", str(cfg), "--id", "b", "--out", str(tmp_path / "x.extxyz")]) == 2
    assert "no import with id 'b'" in capsys.readouterr().err


def _with_bad_frames(tmp_path):
    frames = read_frames(DATA / "OUTCAR_Al4_md") + read_frames(DATA / "OUTCAR_Al4_md")
    frames[1].calc.results["energy"] = math.nan
    frames[1].calc.results["free_energy"] = math.nan
    frames[2].positions[1] = frames[2].positions[0] + [0.2, 0, 0]
    path = tmp_path / "mixed.extxyz"
    write_frames(path, frames)
    return path


def test_dataset_fails_on_bad_frame_and_writes_nothing(tmp_path, capsys):
    bad = _with_bad_frames(tmp_path)
    cfg = _config(tmp_path, [{"id": "m", "path": str(bad)}])
    ds = tmp_path / "ds"
    assert main(["dataset", str(cfg), "--frames", str(bad), "--out-dir", str(ds)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}, frame 1: energy is nan" in err
    assert not (ds / "index.parquet").exists()


def test_dataset_drop_mode_reports_each_bad_frame(tmp_path):
    bad = _with_bad_frames(tmp_path)
    cfg = _config(tmp_path, [{"id": "m", "path": str(bad)}], on_error="drop")
    ds = tmp_path / "ds"
    assert main(["dataset", str(cfg), "--frames", str(bad), "--out-dir", str(ds)]) == 0
    index = pd.read_parquet(ds / "index.parquet")
    assert list(index["file_index"]) == [0, 3]
    report = pd.read_csv(ds / "validation_report.csv")
    assert list(report["index"]) == [1, 2]
    assert "energy is nan" in report["reason"][0] and "closer than min_distance" in report["reason"][1]


def test_frames_convert_to_n2p2_and_back(tmp_path):
    src = DATA / "AlNi_liquid.extxyz"
    n2p2 = tmp_path / "input.data"
    back = tmp_path / "back.extxyz"
    assert main(["frames", "convert", str(src), str(n2p2), "--output-format", "n2p2"]) == 0
    assert n2p2.read_text().startswith("begin\n")
    assert main(["frames", "convert", str(n2p2), str(back)]) == 0
    for a, b in zip(read_frames(src), read_frames(back), strict=True):
        assert b.get_potential_energy() == a.get_potential_energy()
        np.testing.assert_array_equal(b.get_forces(), a.get_forces())
        np.testing.assert_array_equal(b.cell.array, a.cell.array)
        assert b.info["state_id"] == a.info["state_id"]


def test_frames_check_lists_bad_frames(tmp_path, capsys):
    bad = _with_bad_frames(tmp_path)
    assert main(["frames", "check", str(bad), "--elements", "Al", "--min-distance", "1.0"]) == 1
    out = capsys.readouterr().out
    assert f"{bad}, frame 1: energy is nan" in out and f"{bad}: 2/4 frames valid" in out
    good = DATA / "OUTCAR_Al4_md"
    assert main(["frames", "check", str(good), "--elements", "Al"]) == 0
