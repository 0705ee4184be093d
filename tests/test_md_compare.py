"""``meltpot md compare``: reference vs ML runs of one protocol (here: two real EAM Al runs).

Two NVT runs with the same seed are bit-identical, so every difference must be exactly zero;
a run at another temperature must show the expected signs (hotter liquid: lower g(r) peak,
faster diffusion, higher energy). Liquid Al's g(r) first peak sits near 2.75–2.8 Å.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meltpot.errors import MeltpotError
from meltpot.md.compare import compare_runs

ROOT = Path(__file__).resolve().parents[1]
MELTPOT = ROOT / ".venv" / "bin" / "meltpot"
SETS = ["n_atoms=108", "melt_steps=300", "cool_steps=300", "equilibration_steps=200", "production_steps=400",
        "dump_every=10", "volume=fixed", "density=2.37"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    out = {}
    for name, T in (("a", 1000), ("b", 1000), ("hot", 1600)):
        cmd = [str(MELTPOT), "md", "run", "nvt", str(ROOT / "config" / "config.yaml"), f"T={T}", *SETS,
               "--out-dir", str(root / name)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        out[name] = root / name
    return out


def test_identical_runs_compare_to_zero_and_liquid_al_peak(runs, tmp_path):
    table = compare_runs({"reference": runs["a"], "model": runs["b"]}, tmp_path, {1: "Al"}, 0.002)
    t = table.set_index("quantity")
    assert (t["model-reference"].drop("extrapolation_atom_steps") == 0).all()
    assert np.isnan(t.loc["extrapolation_atom_steps", "reference"])       # not the meltpot pair style
    assert 2.0 < t.loc["r_min", "reference"] < 2.5
    assert 2.65 < t.loc["g_peak_r", "reference"] < 2.9 and t.loc["g_peak", "reference"] > 2.0
    assert 10 < t.loc["cn", "reference"] < 14 and t.loc["D", "reference"] > 0
    assert abs(t.loc["density", "reference"] - 2.37) < 1e-3       # fixed volume
    assert (tmp_path / "gr.png").stat().st_size > 5000 and (tmp_path / "msd.png").exists()
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["runs"]["model"]["frames"] == 41
    assert data["checks"]["model"] == {"stable": True, "problems": [], "notes": []}


def test_hotter_liquid_has_the_expected_signs(runs, tmp_path):
    res = subprocess.run([str(MELTPOT), "md", "compare", f"reference={runs['a']}", f"hot={runs['hot']}", "--config",
                          str(ROOT / "config" / "config.yaml"), "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    t = pd.read_csv(tmp_path / "comparison.csv").set_index("quantity")
    d = t["hot-reference"]
    assert d["T"] > 400 and d["g_peak"] < 0 and d["D"] > 0 and d["pe_per_atom"] > 0
    assert np.isfinite(t[["reference", "hot"]].drop("extrapolation_atom_steps").to_numpy()).all()
    checks = json.loads((tmp_path / "comparison.json").read_text())["checks"]["hot"]
    assert not checks["stable"] and "mean T" in checks["problems"][0]


def test_compare_names_the_folder_that_is_not_a_run(tmp_path, runs):
    with pytest.raises(MeltpotError, match="dump.lammpstrj does not exist"):
        compare_runs({"reference": runs["a"], "model": tmp_path}, tmp_path / "o", {1: "Al"}, 0.002)
