"""The melting study (``meltpot analyze melting``, :mod:`meltpot.analysis.melting`): synthetic run
folders with a known answer (growth rates that change sign at a chosen T_m, ramps with a jump at
a chosen T), the error paths, the config checks, and real EAM runs of the two protocols."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from meltpot.analysis.melting import growth_zero, melting_study, potential_summary
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


def test_growth_zero_is_the_root_of_the_fitted_line_with_the_delta_method_error():
    T = np.array([880.0, 880, 920, 920, 960, 960])
    rate = 0.002 * (926.0 - T) + np.array([1e-3, -1e-3, 5e-4, -5e-4, 2e-4, -2e-4])
    T0, err = growth_zero(T, rate)
    b, a = np.polyfit(T, rate, 1)
    assert T0 == pytest.approx(-a / b, rel=1e-12) and abs(T0 - 926.0) < 1.0
    # the error against a Monte-Carlo of the same fit with the residual scatter
    resid = rate - (a + b * T)
    s = math.sqrt(resid @ resid / (len(T) - 2))
    rng = np.random.default_rng(0)
    roots = []
    for _ in range(4000):
        bb, aa = np.polyfit(T, a + b * T + rng.normal(0, s, len(T)), 1)
        roots.append(-aa / bb)
    assert err == pytest.approx(np.std(roots), rel=0.1)
    # too few runs, or a growth rate rising with T: no estimate
    assert all(math.isnan(v) for v in growth_zero([900.0, 950.0], [0.01, -0.01]))
    assert all(math.isnan(v) for v in growth_zero([900.0, 900.0, 900.0], [0.01, 0.0, -0.01]))
    assert all(math.isnan(v) for v in growth_zero([880.0, 920.0, 960.0], [-0.01, 0.0, 0.01]))


def test_npt_runs_give_t_m_where_the_growth_rate_changes_sign(tmp_path):
    ref = tmp_path / "reference"
    for T in (880.0, 910.0, 940.0, 970.0):
        for r in (0, 1):
            _two_phase_run(ref, T, r, 0.0004 * (930.0 - T) + (1e-4 if r else -1e-4))
    _ramp_run(ref, "heat_r0", 700, 1300, 1180.0, replica=0)
    _ramp_run(ref, "heat_r1", 700, 1300, 1220.0, replica=1)
    _ramp_run(ref, "cool_r0", 1300, 400, 500.0, latent=0.09)
    row, tp, rp = potential_summary("reference", ref)
    assert row["T_m_method"] == "growth-rate zero" and row["T_m"] == pytest.approx(930.0, abs=0.5)
    assert 0 < row["T_m_err"] < 2.0
    assert row["T_solid_grew"] == 910.0 and row["T_melted"] == 940.0   # the bracket of the decided runs
    assert set(tp["outcome"]) == {"solid", "liquid", "coexist"} and len(tp) == 8
    # outcomes by the tolerance on the final fraction: 880 K grew 0.02·20 ps = 0.4 > 0.15
    assert (tp.loc[tp["T_set"] == 880.0, "outcome"] == "solid").all()
    assert tp["T_final"].sub(tp["T_set"]).abs().max() < 5.0
    # ramps: jumps between the points around the chosen temperatures, latent heat 0.1 eV/atom
    heat = rp[rp["direction"] == "heat"].sort_values("replica")
    spacing = 600 / 49
    assert np.all(np.abs(heat["T_transition"].to_numpy() - [1180.0, 1220.0]) <= spacing)
    assert heat["latent_heat"].to_numpy() == pytest.approx([0.1, 0.1], abs=0.005)
    assert row["T_heat"] == pytest.approx(heat["T_transition"].mean()) and row["heat_jumps"] == 2
    assert row["T_heat_std"] == pytest.approx(heat["T_transition"].std(ddof=1))
    assert abs(row["T_cool"] - 500.0) <= 900 / 49 and row["cool_runs"] == 1


def test_a_cooled_liquid_without_a_jump_has_no_freezing_temperature(tmp_path):
    _ramp_run(tmp_path / "p", "cool_r0", 1300, 400, T_jump=0.0, latent=0.0)
    _ramp_run(tmp_path / "p", "heat_r0", 700, 1300, 1150.0)
    row, _, rp = potential_summary("p", tmp_path / "p")
    cool = rp[rp["direction"] == "cool"].iloc[0]
    assert cool["kind"] == "kink" and math.isnan(cool["T_transition"]) and math.isnan(row["T_cool"])
    assert row["cool_runs"] == 1 and row["cool_jumps"] == 0


def test_nph_runs_give_the_mean_coexistence_temperature(tmp_path):
    for r, T_fin in enumerate((921.0, 929.0, 925.0)):
        _two_phase_run(tmp_path / "nph", 930.0, r, 0.0, ensemble="nph", T_final=T_fin, noise=0.0)
    row, _, _ = potential_summary("nph", tmp_path / "nph")
    assert row["T_m_method"] == "coexistence" and row["T_m"] == pytest.approx(925.0, abs=1e-9)
    assert row["T_m_err"] == pytest.approx(np.std([921.0, 929.0, 925.0], ddof=1), rel=1e-9)


def test_potentials_side_by_side_with_differences_to_the_first(tmp_path, capsys):
    for label, Tm in (("reference", 926.0), ("model", 900.0)):
        for T in (880.0, 910.0, 940.0, 970.0):
            _two_phase_run(tmp_path / label, T, 0, 0.0004 * (Tm - T))
        _ramp_run(tmp_path / label, "heat_r0", 700, 1300, Tm + 250)
    out = tmp_path / "out" / "melting.csv"
    assert main(["analyze", "melting", f"reference={tmp_path / 'reference'}", f"model={tmp_path / 'model'}",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "reference; T_m 926 ± 0 K (growth-rate zero)" in text and "model; T_m 900" in text
    table = pd.read_csv(out).set_index("label")
    assert table.loc["model", "dT_m"] == pytest.approx(-26.0, abs=0.1) and table.loc["reference", "dT_m"] == 0.0
    assert table.loc["model", "dT_heat"] == pytest.approx(-26.0, abs=2 * 600 / 49)
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
    assert runs.loc[750.0, "growth_rate"] > 0 and runs.loc[1100.0, "growth_rate"] < 0
    assert row["T_m_method"] == "bracket" and row["T_solid_grew"] == 750.0 and row["T_melted"] == 1100.0
    assert 926.0 < rp["T_transition"].iloc[0] < 1400.0 and rp["latent_heat"].iloc[0] > 0.05
