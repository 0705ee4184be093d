"""The melting study (``meltpot analyze melting``, :mod:`meltpot.analysis.melting`): synthetic run
folders with a known answer (growth rates that change sign at a chosen T_m, ramps with a jump at
a chosen T), the error paths, the config checks, and real EAM runs of the two protocols."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meltpot.analysis.melting import melting_study, potential_summary
from meltpot.cli import main
from meltpot.config import ConfigError, validate_config
from meltpot.errors import FrameError, MeltpotError


def _two_phase_run(folder, T, replica, rate, f0=0.5, ensemble="npt", T_final=None, frames=41, status="ok",
                   noise=3.0):
    """A coexistence run folder: crystalline fraction f0 + rate·t (clipped to [0, 1]) every 0.5 ps,
    thermo rows at the set T (or T_final)."""
    d = folder / "two_phase" / f"T{T:g}_r{replica}"
    d.mkdir(parents=True)
    t = 0.5 * np.arange(frames)
    steps = 10_000 + 250 * np.arange(frames)
    f = np.clip(f0 + rate * t, 0, 1)
    pd.DataFrame({"frame": range(frames), "timestep": steps, "time": 20.0 + t, "n_atoms": 360, "other": 1 - f,
                  "fcc": f, "hcp": 0.0, "bcc": 0.0, "ico": 0.0, "crystalline": f}).to_csv(d / "cna.csv", index=False)
    temp = np.full(frames, T if T_final is None else T_final) + np.where(np.arange(frames) % 2, noise, -noise)
    pd.DataFrame({"run": 3, "stage": "produce", "Step": steps, "Temp": temp}).to_csv(d / "thermo.csv", index=False)
    summary = {"protocol": "two_phase", "status": status, "error": None if status == "ok" else "boom",
               "n_atoms": 360, "wall_s": 10.0, "steps_per_s": 100.0,
               "params": {"T": T, "ensemble": ensemble, "replica": replica}}
    (d / "summary.json").write_text(json.dumps(summary))
    return d


def _ramp_run(folder, name, T_start, T_stop, T_jump, latent=0.1, replica=0, rate=20.0, points=50):
    """A ramp folder: H = −3.4 + 3e-4·T (+ latent above T_jump) on the thermostat's T."""
    d = folder / "ramp" / name
    d.mkdir(parents=True)
    T = np.linspace(T_start, T_stop, points)
    H = -3.4 + 3e-4 * T + np.where(T > T_jump, latent, 0.0) + 1e-4 * np.sin(7 * T)
    pd.DataFrame({"T": T + 20 * np.cos(T), "T_target": T, "H_per_atom": H}).to_csv(d / "ramp.csv", index=False)
    summary = {"protocol": "ramp", "status": "ok", "n_atoms": 256, "wall_s": 5.0, "steps_per_s": 200.0,
               "params": {"T_start": T_start, "T_stop": T_stop, "rate": rate, "replica": replica}}
    (d / "summary.json").write_text(json.dumps(summary))
    return d


def test_npt_runs_bracket_t_m_between_grown_and_melted_crystals(tmp_path):
    ref = tmp_path / "reference"
    for T in (880.0, 910.0, 940.0, 970.0):
        for r in (0, 1):
            _two_phase_run(ref, T, r, 0.0004 * (930.0 - T) + (1e-4 if r else -1e-4))
    _ramp_run(ref, "heat_r0", 700, 1300, 1180.0, replica=0)
    _ramp_run(ref, "heat_r1", 700, 1300, 1220.0, replica=1)
    _ramp_run(ref, "cool_r0", 1300, 400, 500.0, latent=0.09)
    row, tp, rp = potential_summary("reference", ref)
    # 880 K: +0.02/ps over 20 ps → +0.4 (solid); 910 K: +0.16 (solid, > tol 0.15); 940 K: −0.08
    # (undecided, left out); 970 K: −0.32 (liquid)
    out = tp.groupby("T_set")["outcome"].agg(set).to_dict()
    assert out[880.0] == {"solid"} and out[940.0] == {"coexist"} and out[970.0] == {"liquid"}
    assert row["T_solid_grew"] == max(T for T, o in out.items() if "solid" in o) and row["T_melted"] == 970.0
    assert row["T_m_method"] == "bracket"
    assert row["T_m"] == pytest.approx(0.5 * (row["T_solid_grew"] + 970.0))
    assert row["T_m_err"] == pytest.approx(0.5 * (970.0 - row["T_solid_grew"]))
    assert tp["T_final"].sub(tp["T_set"]).abs().max() < 5.0
    # ramps: jumps between the points around the chosen temperatures, latent heat 0.1 eV/atom
    heat = rp[rp["direction"] == "heat"].sort_values("replica")
    spacing = 600 / 49
    assert np.all(np.abs(heat["T_transition"].to_numpy() - [1180.0, 1220.0]) <= spacing)
    assert heat["latent_heat"].to_numpy() == pytest.approx([0.1, 0.1], abs=0.005)
    assert row["T_heat"] == pytest.approx(heat["T_transition"].mean()) and row["heat_jumps"] == 2
    assert row["T_heat_std"] == pytest.approx(heat["T_transition"].std(ddof=1))
    assert abs(row["T_cool"] - 500.0) <= 900 / 49 and row["cool_runs"] == 1
    # both branches of H = −3.4 + 3e-4·T (+ 0.1 above the heating jump, + 0.09 above the cooling
    # one): C_P 3e-4 eV/(K atom) each; the latent heat at T_m is the cooling ramp's liquid line
    # minus the heating ramps' crystal line there (0.09 eV/atom; the heating ramps' own liquid
    # branch would give 0.1)
    assert row["cp_solid"] == pytest.approx(3e-4, rel=0.02) and row["cp_liquid"] == pytest.approx(3e-4, rel=0.02)
    assert row["liquid_branch"] == "cooling" and row["latent_at_T_m"] == pytest.approx(0.09, abs=0.003)
    assert row["solid_branch"] == "heating, below T_m"
    (ref / "ramp" / "cool_r0" / "summary.json").unlink()
    row_heat_only, _, _ = potential_summary("reference", ref)
    assert row_heat_only["liquid_branch"] == "heating"
    assert row_heat_only["latent_at_T_m"] == pytest.approx(0.1, abs=0.003)
    row2, _, _ = potential_summary("reference", ref, molar_mass=26.98)
    assert row2["latent_at_T_m_kJ_per_mol"] == pytest.approx(96.485 * row2["latent_at_T_m"], rel=1e-4)
    # 3e-4 eV/(K atom) × 96.485 kJ/mol/eV / 26.98 g/mol = 1.073 J/(g K)
    assert row2["cp_solid_J_per_gK"] == pytest.approx(row2["cp_solid"] * 96485.3 / 26.98, rel=1e-4)


def test_a_cooled_liquid_without_a_jump_has_no_freezing_temperature(tmp_path):
    _ramp_run(tmp_path / "p", "cool_r0", 1300, 400, T_jump=0.0, latent=0.0)
    _ramp_run(tmp_path / "p", "heat_r0", 700, 1300, 1150.0)
    row, _, rp = potential_summary("p", tmp_path / "p")
    cool = rp[rp["direction"] == "cool"].iloc[0]
    assert cool["kind"] == "kink" and math.isnan(cool["T_transition"]) and math.isnan(row["T_cool"])
    assert row["cool_runs"] == 1 and row["cool_jumps"] == 0
    # no two-phase runs, no T_m: C_P from the heating ramp's jump fit, no latent heat at T_m
    assert row["solid_branch"] == "heating, below the jump" and "latent_at_T_m" not in row
    assert row["cp_solid"] == pytest.approx(3e-4, rel=0.05)


def test_nph_runs_give_the_mean_coexistence_temperature(tmp_path):
    for r, T_fin in enumerate((921.0, 929.0, 925.0)):
        _two_phase_run(tmp_path / "nph", 930.0, r, 0.0, ensemble="nph", T_final=T_fin, noise=0.0)
    row, _, _ = potential_summary("nph", tmp_path / "nph")
    assert row["T_m_method"] == "coexistence" and row["T_m"] == pytest.approx(925.0, abs=1e-9)
    assert row["T_m_err"] == pytest.approx(np.std([921.0, 929.0, 925.0], ddof=1), rel=1e-9)


def test_grown_and_melted_replicas_at_one_temperature_straddle_t_m(tmp_path):
    for T, rates in ((900.0, (0.02, 0.02)), (930.0, (0.02, -0.02)), (960.0, (-0.02, -0.02))):
        for r, rate in enumerate(rates):
            _two_phase_run(tmp_path / "s", T, r, rate)
    row, _, _ = potential_summary("s", tmp_path / "s")
    assert (row["T_m_method"], row["T_m"], row["T_m_err"]) == ("straddled", 930.0, 15.0)
    # a crystal that grew above a temperature where another melted: flagged, not hidden
    _two_phase_run(tmp_path / "i", 900.0, 0, -0.02)
    _two_phase_run(tmp_path / "i", 960.0, 0, 0.02)
    row, _, _ = potential_summary("i", tmp_path / "i")
    assert row["T_m_method"] == "inconsistent" and row["T_m"] == 930.0


def test_potentials_side_by_side_with_differences_to_the_first(tmp_path, capsys):
    for label, Tm in (("reference", 925.0), ("model", 895.0)):
        for T in (880.0, 910.0, 940.0, 970.0):
            _two_phase_run(tmp_path / label, T, 0, 0.02 * np.sign(Tm - T))
        _ramp_run(tmp_path / label, "heat_r0", 700, 1300, Tm + 250)
    out = tmp_path / "out" / "melting.csv"
    assert main(["analyze", "melting", f"reference={tmp_path / 'reference'}", f"model={tmp_path / 'model'}",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "reference; T_m 925 ± 15 K (bracket)" in text and "model; T_m 895 ± 15 K (bracket)" in text
    table = pd.read_csv(out).set_index("label")
    assert table.loc["model", "dT_m"] == -30.0 and table.loc["reference", "dT_m"] == 0.0
    assert table.loc["model", "dT_m_err"] == pytest.approx(15.0 * math.sqrt(2))
    assert table.loc["model", "dT_heat"] == pytest.approx(-30.0, abs=2 * 600 / 49)
    assert len(pd.read_csv(tmp_path / "out" / "melting_two_phase.csv")) == 8
    assert len(pd.read_csv(tmp_path / "out" / "melting_ramps.csv")) == 2
    assert (tmp_path / "out" / "melting.png").stat().st_size > 10_000
    js = json.loads((tmp_path / "out" / "melting.json").read_text())
    assert [r["label"] for r in js["table"]] == ["reference", "model"]


def test_bad_input_names_the_file_or_the_argument(tmp_path, capsys):
    with pytest.raises(FrameError, match="no runs"):
        potential_summary("x", tmp_path)
    d = _two_phase_run(tmp_path / "a", 900.0, 0, 0.01)
    (d / "cna.csv").unlink()
    with pytest.raises(FrameError, match=r"cna\.csv.*missing"):
        potential_summary("a", tmp_path / "a")
    _two_phase_run(tmp_path / "b", 900.0, 0, 0.01, status="failed")
    with pytest.raises(FrameError, match=r"T900_r0/summary\.json.*did not finish"):
        potential_summary("b", tmp_path / "b")
    with pytest.raises(MeltpotError, match="no potentials"):
        melting_study({}, tmp_path / "o.csv")
    assert main(["analyze", "melting", "reference", "--out", str(tmp_path / "o.csv")]) == 2
    assert "expected LABEL=FOLDER" in capsys.readouterr().err


def test_config_checks_of_the_melting_stage():
    base = {"run_id": "m", "elements": ["Al"], "reference": {"engine": "lammps", "pair_style": "eam/fs",
                                                             "pair_coeff": ["* * Al_mm.eam.fs Al"]},
            "sampling": {"melt_temperature": 1500, "states": [{"phase": "liquid", "T": 1000, "P": 0}]}}
    cfg = validate_config(base)
    assert cfg["melting_md"]["enabled"] is False and cfg["melting_md"]["potentials"] == ["reference", "model"]
    with pytest.raises(ConfigError, match=r"melting_md.ramp_heat = \[1400, 600\].*below"):
        validate_config({**base, "melting_md": {"ramp_heat": [1400, 600]}})
    with pytest.raises(ConfigError, match=r"melting_md.temperatures \[1600\].*melt_temperature"):
        validate_config({**base, "melting_md": {"enabled": True, "temperatures": [900, 1600]}})
    with pytest.raises(ConfigError, match="nothing to run"):
        validate_config({**base, "melting_md": {"enabled": True, "temperatures": [], "ramp_heat": None,
                                                "ramp_cool": None}})


@pytest.mark.slow
def test_real_eam_runs_bracket_the_melting_point(tmp_path):
    """Mendelev EAM Al (T_m ≈ 926 K): a 288-atom coexistence run at 750 K grows its crystal and
    one at 1100 K melts it; a heated 256-atom crystal melts above T_m (superheated)."""
    cfg = "config/config.yaml"
    folder = tmp_path / "reference"
    for T in (750, 1100):
        out = folder / "two_phase" / f"T{T}_r0"
        assert main(["md", "run", "two_phase", cfg, "--set", f"T={T}", "cells=[3,3,8]", "crystal_steps=500",
                     "melt_steps=1000", "liquid_steps=300", "production_steps=4000", "dump_every=200",
                     "pressure_every=0", "--out-dir", str(out)]) == 0
        assert main(["analyze", "cna", str(out / "dump.lammpstrj"), "--types", "1=Al", "--no-progress",
                     "--out", str(out / "cna.csv")]) == 0
    assert main(["md", "run", "ramp", cfg, "--set", "T_start=700", "T_stop=1500", "rate=40", "n_atoms=256",
                 "equilibration_steps=500", "phase=fcc", "dump_every=0", "pressure_every=0",
                 "--out-dir", str(folder / "ramp" / "heat_r0")]) == 0
    row, tp, rp = potential_summary("reference", folder)
    runs = tp.set_index("T_set")
    assert runs.loc[750.0, "outcome"] == "solid" and runs.loc[1100.0, "outcome"] == "liquid"
    assert row["T_m_method"] == "bracket" and row["T_solid_grew"] == 750.0 and row["T_melted"] == 1100.0
    assert 926.0 < rp["T_transition"].iloc[0] < 1400.0 and rp["latent_heat"].iloc[0] > 0.05


@pytest.mark.parametrize("name", ["melting-eam.yaml", "al-active-observables.yaml"])
def test_the_documented_melting_configs_are_valid(name):
    """docs/reproduction.md regenerates its tables with these files."""
    import yaml

    from meltpot.config import check_lammps_stages

    path = Path(__file__).resolve().parents[1] / "docs" / "configs" / name
    cfg = validate_config(yaml.safe_load(path.read_text()), base_dir=path.parent)
    check_lammps_stages(cfg)
    assert cfg["melting_md"]["enabled"] and cfg["melting_md"]["potentials"][0] == "reference"


def test_reproduction_report_writes_and_checks_its_block(tmp_path):
    """scripts/reproduction_report.py on a run folder with a melting study: the block between the
    markers is written, --check then passes, and a changed number makes it fail."""
    import importlib.util

    import yaml

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("reproduction_report", root / "scripts" / "reproduction_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    cfg = validate_config(yaml.safe_load((root / "docs" / "configs" / "melting-eam.yaml").read_text()),
                          base_dir=root / "docs" / "configs")
    cfg.pop("_base_dir", None)
    run = tmp_path / "results" / cfg["run_id"]
    (run / "md" / "melting").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    for T in (910.0, 930.0, 950.0, 970.0):
        _two_phase_run(run / "md" / "melting" / "reference", T, 0, 0.02 * np.sign(940.0 - T))
    _ramp_run(run / "md" / "melting" / "reference", "heat_r0", 700, 1300, 1170.0)
    melting_study({"reference": run / "md" / "melting" / "reference"}, run / "md" / "melting" / "melting.csv",
                  molar_mass=26.98)
    doc = tmp_path / "doc.md"
    doc.write_text("# x\n\n<!-- numbers:melting-al-melting-eam -->\n<!-- /numbers -->\n")
    assert report.main([str(run), "--doc", str(doc), "--write"]) == 0
    text = doc.read_text()
    assert "| T_m (K), two-phase | 940 ± 10 | 970 K" in text and "bracket; 930–950" in text
    assert report.main([str(run), "--doc", str(doc), "--check"]) == 0
    assert (tmp_path / "results" / "melting-al-melting-eam.png").stat().st_size > 10_000
    doc.write_text(text.replace("940 ± 10", "941 ± 10"))
    assert report.main([str(run), "--doc", str(doc), "--check"]) == 1
