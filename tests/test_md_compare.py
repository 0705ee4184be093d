"""``meltpot md compare``: reference vs ML runs of one protocol over replicas (here: real EAM Al runs).

Two NVT runs with the same seed are bit-identical, so every difference between two sets of the
same replicas must be exactly zero and every verdict pass; independent replicas (other seeds)
of the same potential must agree within their standard errors; a run at another temperature
must show the expected signs (hotter liquid: lower g(r) peak, faster diffusion, higher energy)
and fail the D and energy verdicts. Liquid Al's g(r) first peak sits near 2.75–2.8 Å.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from meltpot.config import load_config, validate_config
from meltpot.errors import ConfigError, MeltpotError
from meltpot.manifest import write_json
from meltpot.md.compare import (THRESHOLDS, combine_comparisons, compare_runs, replica_stats, resolve_thresholds,
                                verdicts)

ROOT = Path(__file__).resolve().parents[1]
MELTPOT = ROOT / ".venv" / "bin" / "meltpot"
CONFIG = ROOT / "config" / "config.yaml"
SETS = ["n_atoms=108", "melt_steps=300", "cool_steps=300", "equilibration_steps=200", "production_steps=400",
        "dump_every=10", "volume=fixed", "density=2.37"]


def strict_json(path):
    """Parse ``path`` as strict JSON: NaN / Infinity (not JSON) raise."""
    def refuse(name):
        raise ValueError(f"{path}: {name} is not JSON")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Replica folders: ``a`` replicas 0–2 at 1000 K, ``b`` the same seeds again (bit-identical),
    ``c`` replicas 3–5 (independent), ``hot`` replicas 0–2 at 1600 K (LAMMPS in-process calls)."""
    from meltpot.md.execute import run_protocol
    from meltpot.md.plan import apply_overrides

    root = tmp_path_factory.mktemp("cmp")
    base = load_config(CONFIG)
    out = {}
    for name, T, reps in (("a", 1000, (0, 1, 2)), ("b", 1000, (0, 1, 2)), ("c", 1000, (3, 4, 5)),
                          ("hot", 1600, (0, 1, 2))):
        cfg = apply_overrides(base, "nvt", [f"T={T}", *SETS])
        out[name] = []
        for k in reps:
            folder = root / name / f"r{k}"
            summary = run_protocol(cfg, "nvt", folder, replica=k)
            assert summary["status"] == "ok"
            out[name].append(folder)
    return out


def test_identical_runs_compare_to_zero_and_liquid_al_peak(runs, tmp_path):
    """The one-folder-per-label form (as before replicas)."""
    table = compare_runs({"reference": runs["a"][0], "model": runs["b"][0]}, tmp_path, {1: "Al"}, 0.002)
    t = table.set_index("quantity")
    assert (t["model-reference"].drop(["extrapolation_atom_steps"]) == 0).all()
    assert np.isnan(t.loc["extrapolation_atom_steps", "reference"])       # not the meltpot pair style
    assert np.isnan(t.loc["D", "reference_std"])                            # one replica: no spread
    assert 2.0 < t.loc["r_min", "reference"] < 2.5
    assert 2.65 < t.loc["g_peak_r", "reference"] < 2.9 and t.loc["g_peak", "reference"] > 2.0
    assert 10 < t.loc["cn", "reference"] < 14 and t.loc["D", "reference"] > 0
    assert abs(t.loc["density", "reference"] - 2.37) < 1e-3       # fixed volume
    assert (tmp_path / "gr.png").stat().st_size > 5000 and (tmp_path / "msd.png").exists()
    data = strict_json(tmp_path / "comparison.json")
    assert data["runs"]["model"]["frames"] == [41] and data["n_replicas"] == 1
    assert data["checks"]["model"] == {"stable": True, "problems": [], "notes": []}
    assert "no σ" in data["verdicts"]["D"]["detail"] and data["pass"] is True


def test_same_seed_replica_sets_agree_exactly_and_pass(runs, tmp_path):
    table = compare_runs({"reference": runs["a"], "model": runs["b"]}, tmp_path, {1: "Al"}, 0.002)
    t = table.set_index("quantity")
    assert (t["model-reference"].drop("extrapolation_atom_steps") == 0).all()
    # three replicas with their own velocities: a real spread, sem = std/√3
    for q in ("pe_per_atom", "T", "D", "g_peak"):
        assert t.loc[q, "reference_std"] > 0 and t.loc[q, "reference_sem"] == pytest.approx(
            t.loc[q, "reference_std"] / math.sqrt(3))
        assert t.loc[q, "model-reference_se"] == pytest.approx(math.sqrt(2) * t.loc[q, "reference_sem"])
    rep = pd.read_csv(tmp_path / "replicas.csv")
    assert len(rep) == 6 and list(rep["replica"]) == [0, 1, 2, 0, 1, 2]
    assert rep.groupby("label")["D"].mean()["reference"] == pytest.approx(t.loc["D", "reference"])
    assert t.loc["gr_mse", "model-reference"] == 0 and (t["model_verdict"].dropna() != "fail").all()
    data = strict_json(tmp_path / "comparison.json")
    assert set(data["verdicts"]) == {"D", "pe_per_atom", "gr_mse", "density"}
    for v in data["verdicts"].values():
        # the difference is exactly 0: never a failure; short runs may be too noisy to pass (inconclusive)
        assert v["verdict"] in ("pass", "inconclusive") and {"value", "threshold", "pass", "detail"} <= set(v)
        assert v["pass"] is (v["verdict"] == "pass")
    assert data["verdicts"]["gr_mse"]["pass"] and data["outcome"] in ("pass", "inconclusive")
    assert data["n_replicas"] == 3 and data["grid"]["bins"] == 200
    assert data["thresholds"] == {**THRESHOLDS, "pe_per_atom": 0.005}
    assert data["gr_mse"]["model"]["noise"] > 0


def test_independent_eam_replicas_agree_within_their_errors(runs, tmp_path):
    """The reference potential against itself with other seeds: the differences are noise."""
    compare_runs({"reference": runs["a"], "model": runs["c"]}, tmp_path, {1: "Al"}, 0.002)
    data = strict_json(tmp_path / "comparison.json")
    for q in ("pe_per_atom", "T", "D", "g_peak", "cn"):
        d = data["differences"]["model"][q]
        assert d["difference"] != 0 and abs(d["difference"]) <= 3 * d["se"], (q, d)
    mse = data["gr_mse"]["model"]
    assert 0 < mse["value"] < 4 * mse["noise"]
    assert all(v["verdict"] != "fail" for v in data["verdicts"].values()), data["verdicts"]
    assert data["verdicts"]["density"]["pass"] and data["checks"]["model"]["stable"]


def test_hotter_liquid_fails_d_and_energy_via_the_cli(runs, tmp_path):
    a, hot = runs["a"], runs["hot"]
    # replicas comma-separated or the label repeated
    res = subprocess.run([str(MELTPOT), "md", "compare", f"reference={a[0]},{a[1]}", f"reference={a[2]}",
                          "hot=" + ",".join(map(str, hot)), "--config", str(CONFIG), "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "D: FAIL" in res.stdout and "overall: FAIL" in res.stdout
    t = pd.read_csv(tmp_path / "comparison.csv").set_index("quantity")
    d = t["hot-reference"]
    assert d["T"] > 400 and d["g_peak"] < 0 and d["D"] > 0 and d["pe_per_atom"] > 0
    assert np.isfinite(t[["reference", "hot"]].drop(["extrapolation_atom_steps", "gr_mse"]).to_numpy()).all()
    assert t.loc["D", "hot_verdict"] == "fail" and t.loc["pe_per_atom", "hot_verdict"] == "fail"
    data = strict_json(tmp_path / "comparison.json")
    assert data["runs"]["reference"]["n_replicas"] == 3 and data["pass"] is False
    assert not data["verdicts"]["D"]["pass"] and not data["verdicts"]["pe_per_atom"]["pass"]
    assert data["verdicts"]["D"]["sigmas"] > 2
    checks = data["checks"]["hot"]
    assert not checks["stable"] and "mean T" in checks["problems"][0] and checks["problems"][0].startswith("replica")


def test_thresholds_from_the_config_and_the_options(runs, tmp_path):
    raw = yaml.safe_load(CONFIG.read_text())
    raw.setdefault("validation_md", {})["thresholds"] = {"D_relative": 10.0, "sigmas": 0.0, "pe_per_atom": 1.0, "gr_mse": 1.0,
                                          "density_relative": 1.0}
    cfg = tmp_path / "loose.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    args = [str(MELTPOT), "md", "compare", "reference=" + ",".join(map(str, runs["a"])),
            "hot=" + ",".join(map(str, runs["hot"])), "--config", str(cfg)]
    res = subprocess.run([*args, "--out-dir", str(tmp_path / "loose")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    data = strict_json(tmp_path / "loose" / "comparison.json")
    assert all(v["pass"] for v in data["verdicts"].values()) and data["thresholds"]["pe_per_atom"] == 1.0
    assert data["pass"] is False                        # the stability check (mean T) still fails
    res = subprocess.run([*args, "--pe-per-atom", "0.001", "--out-dir", str(tmp_path / "strict")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    data = strict_json(tmp_path / "strict" / "comparison.json")
    assert not data["verdicts"]["pe_per_atom"]["pass"] and data["verdicts"]["D"]["pass"]


def test_combine_merges_conditions(runs, tmp_path):
    compare_runs({"reference": runs["a"], "model": runs["b"]}, tmp_path / "T1000", {1: "Al"}, 0.002)
    compare_runs({"reference": runs["a"], "model": runs["hot"]}, tmp_path / "T1600", {1: "Al"}, 0.002)
    res = subprocess.run([str(MELTPOT), "md", "compare", "--combine", f"T1000={tmp_path / 'T1000'}",
                          f"T1600={tmp_path / 'T1600'}", "--out-dir", str(tmp_path / "all")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    table = pd.read_csv(tmp_path / "all" / "comparison.csv")
    assert table.columns[0] == "condition" and list(table["condition"].unique()) == ["T1000", "T1600"]
    assert len(pd.read_csv(tmp_path / "all" / "replicas.csv")) == 12
    data = strict_json(tmp_path / "all" / "comparison.json")
    assert data["verdicts"]["D@T1000"]["verdict"] != "fail" and data["verdicts"]["D@T1600"]["verdict"] == "fail"
    assert data["outcome"] == "fail"
    assert set(data["conditions"]) == {"T1000", "T1600"} and data["n_replicas"] == 3 and data["pass"] is False
    assert data["checks"]["model@T1000"]["stable"]


def test_compare_names_the_folder_that_is_not_a_run(tmp_path, runs):
    with pytest.raises(MeltpotError, match="dump.lammpstrj does not exist"):
        compare_runs({"reference": runs["a"], "model": [runs["b"][0], tmp_path]}, tmp_path / "o", {1: "Al"}, 0.002)
    with pytest.raises(MeltpotError, match="at least one other label"):
        compare_runs({"reference": runs["a"]}, tmp_path / "o", {1: "Al"}, 0.002)


def test_comparison_json_is_strict_with_nan_values(runs, tmp_path):
    """Regression: comparison.json held NaN (not JSON); non-finite numbers are now null."""
    ref = tmp_path / "ref"
    shutil.copytree(runs["a"][0], ref)
    thermo = pd.read_csv(ref / "thermo.csv").drop(columns=["Density"])   # → density NaN
    thermo.to_csv(ref / "thermo.csv", index=False)
    compare_runs({"reference": ref, "model": runs["b"][0]}, tmp_path / "o", {1: "Al"}, 0.002)
    text = (tmp_path / "o" / "comparison.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = strict_json(tmp_path / "o" / "comparison.json")
    assert data["runs"]["reference"]["mean"]["density"] is None
    assert data["runs"]["reference"]["std"]["D"] is None and data["runs"]["reference"]["mean"]["D"] > 0
    assert data["verdicts"]["density"]["pass"] is False and data["verdicts"]["density"]["value"] is None
    assert data["pass"] is False


def test_write_json_writes_null_for_non_finite_numbers(tmp_path):
    write_json(tmp_path / "x.json", {"a": float("nan"), "b": [np.float32(1.5), -np.inf, (np.int64(2), None)],
                                     "c": {"d": np.array([1.0, np.nan]), np.int64(3): np.bool_(True)},
                                     "p": tmp_path})
    data = strict_json(tmp_path / "x.json")
    assert data == {"a": None, "b": [1.5, None, [2, None]], "c": {"d": [1.0, None], "3": True}, "p": str(tmp_path)}


def test_replica_statistics_and_verdicts():
    s = replica_stats([1.0, 2.0, 3.0])
    assert s == {"mean": 2.0, "std": 1.0, "sem": pytest.approx(1 / math.sqrt(3)), "n": 3}
    one = replica_stats([4.0])
    assert one["mean"] == 4.0 and math.isnan(one["std"]) and math.isnan(one["sem"])

    def stat(mean):
        return {"mean": mean, "std": 0.1, "sem": 0.05, "n": 4}

    thr = resolve_thresholds({}, "metal")
    ref = {"D": stat(1.0), "density": stat(2.0)}
    mse = {"value": 5e-4, "noise": 1e-4}

    def judge(dD, seD, dE=0.001, drho=0.01):
        diff = {"D": {"difference": dD, "se": seD}, "pe_per_atom": {"difference": dE, "se": 0.001},
                "density": {"difference": drho, "se": 0.005}}
        return verdicts(ref, {}, diff, mse, thr, "metal")

    # equivalence test of ΔD ± 2σ against ±10 % of D_ref = 1
    v = judge(0.05, 0.02)                       # [1 %, 9 %]: small but significant, inside → pass
    assert v["D"]["pass"] and v["D"]["verdict"] == "pass" and v["D"]["value"] == pytest.approx(0.05)
    assert v["D"]["interval"] == pytest.approx([0.01, 0.09]) and v["gr_mse"]["pass"]
    v = judge(-0.05, 0.03)                      # [−11 %, +1 %]: across the limit
    assert not v["D"]["pass"] and v["D"]["verdict"] == "inconclusive" and "more or longer" in v["D"]["detail"]
    assert judge(0.15, 0.5)["D"]["verdict"] == "inconclusive"  # 15 %, but noise
    assert judge(0.25, 0.05)["D"]["verdict"] == "fail"          # [15 %, 35 %]: wholly outside
    assert judge(-0.25, 0.05)["D"]["verdict"] == "fail"
    one = judge(0.05, float("nan"))["D"]         # one replica: the point estimate decides
    assert one["pass"] and one["interval"] is None and "no σ" in one["detail"]
    assert judge(0.15, float("nan"))["D"]["verdict"] == "fail"
    thr0 = dict(thr, sigmas=0.0)                 # k = 0: the point estimate decides
    diff = {"D": {"difference": 0.09, "se": 0.05}, "pe_per_atom": {"difference": 0.0, "se": 0.001},
            "density": {"difference": 0.0, "se": 0.005}}
    assert verdicts(ref, {}, diff, mse, thr0, "metal")["D"]["verdict"] == "pass"
    v = judge(0.0, 0.01, dE=-0.006, drho=0.03)
    assert not v["pe_per_atom"]["pass"] and not v["density"]["pass"] and v["density"]["value"] == pytest.approx(0.015)
    assert v["pe_per_atom"]["verdict"] == "inconclusive"   # −6 ± 2 meV: across the 5 meV limit
    assert judge(0.0, 0.01, dE=-0.009)["pe_per_atom"]["verdict"] == "fail"
    assert not judge(float("nan"), 0.1)["D"]["pass"]


def test_thresholds_resolve_by_units_and_reject_bad_values():
    assert resolve_thresholds(None, "metal")["pe_per_atom"] == 0.005
    assert resolve_thresholds({"pe_per_atom": None}, "lj")["pe_per_atom"] == 0.01
    assert resolve_thresholds({"gr_mse": 0.01}, "lj")["gr_mse"] == 0.01
    with pytest.raises(ConfigError, match="unknown validation threshold 'D_rel'.*D_relative"):
        resolve_thresholds({"D_rel": 0.1})
    with pytest.raises(ConfigError, match="need a finite number"):
        resolve_thresholds({"gr_mse": -1.0})
    with pytest.raises(ConfigError, match="pe_per_atom"):
        resolve_thresholds({}, "real")


def test_validation_md_schema_keys():
    raw = yaml.safe_load(CONFIG.read_text())
    cfg = validate_config(raw)
    vmd = cfg["validation_md"]
    assert vmd["replicas"] == 3 and vmd["temperatures"] is None and vmd["T"] == 1000
    assert vmd["thresholds"] == {"D_relative": 0.1, "sigmas": 2.0, "pe_per_atom": None, "gr_mse": 0.001,
                                 "density_relative": 0.01}
    for bad, match in (({"replicas": 0}, r"validation_md.replicas"),
                       ({"replicas": 1.5}, r"validation_md.replicas"),
                       ({"temperatures": []}, r"validation_md.temperatures"),
                       ({"temperatures": [1000, -5]}, r"validation_md.temperatures\[1\]"),
                       ({"thresholds": {"gr_mse": -1}}, r"validation_md.thresholds.gr_mse"),
                       ({"thresholds": {"D_rel": 0.2}}, r"validation_md.thresholds.D_rel.*D_relative")):
        broken = yaml.safe_load(CONFIG.read_text())
        broken.setdefault("validation_md", {}).update(bad)
        with pytest.raises(ConfigError, match=match):
            validate_config(broken, source="my.yaml")


def test_full_validation_preset():
    cfg = load_config(ROOT / "config" / "presets" / "al-validation-full.yaml")
    vmd = cfg["validation_md"]
    assert vmd["temperatures"] == [1000, 1250] and vmd["replicas"] == 3 and vmd["n_atoms"] >= 500
    assert vmd["production_steps"] * cfg["md"]["timestep"] >= 20.0
    default = load_config(CONFIG)
    for key in ("sampling", "descriptors", "model", "training", "selection", "split", "reference"):
        assert cfg[key] == default[key], key      # the default run, validated at full size


@pytest.mark.slow
def test_independent_eam_replicas_pass_the_default_thresholds_at_500_atoms(tmp_path):
    """At 500 atoms and 10 ps (about a minute here), two independent sets of 3 EAM replicas: no
    verdict fails for a potential that is the reference; E_pot, g(r) and density pass, and D's 2σ
    interval holds 0 (at this length it may still straddle the 10 % limit: inconclusive)."""
    from meltpot.md.execute import run_protocol
    from meltpot.md.plan import apply_overrides

    cfg = apply_overrides(load_config(CONFIG), "nvt", ["T=1000", "n_atoms=500", "melt_steps=500", "cool_steps=500",
                                                       "equilibration_steps=1000", "production_steps=5000",
                                                       "dump_every=50", "phase=liquid"])
    folders = {}
    for k in range(6):
        folders[k] = tmp_path / f"r{k}"
        assert run_protocol(cfg, "nvt", folders[k], replica=k)["status"] == "ok"
    compare_runs({"reference": [folders[k] for k in (0, 1, 2)], "model": [folders[k] for k in (3, 4, 5)]},
                 tmp_path / "cmp", {1: "Al"}, 0.002)
    data = strict_json(tmp_path / "cmp" / "comparison.json")
    v = data["verdicts"]
    assert data["outcome"] in ("pass", "inconclusive") and data["checks"]["model"]["stable"], v
    assert v["pe_per_atom"]["pass"] and v["gr_mse"]["pass"] and v["density"]["pass"], v
    lo, hi = v["D"]["interval"]
    assert lo <= 0 <= hi and v["D"]["verdict"] != "fail", v["D"]
