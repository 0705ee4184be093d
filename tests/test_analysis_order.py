"""Local order (CNA, Steinhardt, solid clusters, inherent structures) and nucleation analysis
against known answers: ideal crystals, an independent q_l computation, pyscal3 vs OVITO,
and synthetic time series with known crossing times, jumps and end states."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write
from ase.neighborlist import neighbor_list
from numpy.polynomial import legendre

from meltpot.analysis import local_order as lo
from meltpot.analysis import nucleation as nu
from meltpot.errors import FrameError, MeltpotError

A_FCC, A_BCC, A_HCP = 4.05, 3.30, 2.86
# (structure, atoms, CNA class, cutoff between the shells that define q_l and conventional CNA)
CRYSTALS = {
    "fcc": (lambda: bulk("Al", "fcc", a=A_FCC, cubic=True).repeat(4), 0.5 * (1 + np.sqrt(2)) / np.sqrt(2) * A_FCC),
    # bcc: first (8) + second (6) shell, cut between 2nd (a) and 3rd (√2 a) shell
    "bcc": (lambda: bulk("Fe", "bcc", a=A_BCC, cubic=True).repeat(5), 0.5 * (1 + np.sqrt(2)) * A_BCC),
    "hcp": (lambda: bulk("Mg", "hcp", a=A_HCP, c=A_HCP * np.sqrt(8 / 3)).repeat((6, 6, 4)),
            0.5 * (1 + np.sqrt(2)) * A_HCP),
}
LITERATURE_Q = {"fcc": (0.191, 0.575), "bcc": (0.036, 0.511), "hcp": (0.097, 0.485)}


def perturbed(atoms: Atoms, sigma: float, seed: int = 0) -> Atoms:
    a = atoms.copy()
    a.positions += np.random.default_rng(seed).normal(scale=sigma, size=a.positions.shape)
    return a


def reference_q(atoms: Atoms, cutoff: float, l: int, index: int = 0) -> float:
    """q_l of one atom by the addition theorem: q_l² = N⁻² Σ_jk P_l(r̂_j · r̂_k)."""
    i, d = neighbor_list("iD", atoms, cutoff)
    u = d[i == index]
    u /= np.linalg.norm(u, axis=1)[:, None]
    cos = np.clip(u @ u.T, -1.0, 1.0)
    coef = np.zeros(l + 1)
    coef[l] = 1.0
    return float(np.sqrt(legendre.legval(cos, coef).sum()) / len(u))


# --------------------------------------------------------------------------- CNA
@pytest.mark.parametrize("name", ["fcc", "bcc", "hcp"])
def test_cna_ideal_crystals(name):
    make, rc = CRYSTALS[name]
    atoms = make()
    for cutoff in (None, rc):  # adaptive, conventional with a cutoff between shells
        f = lo.cna_fractions(lo.cna(atoms, cutoff))
        assert f[name] == 1.0 and f["crystalline"] == 1.0, (cutoff, f)
    assert lo.class_counts(lo.cna(atoms))[name] == len(atoms)


def test_cna_does_not_modify_and_rejects_bad_frames():
    atoms = CRYSTALS["fcc"][0]()
    before = atoms.copy()
    lo.cna(atoms)
    lo.steinhardt(atoms)
    lo.find_solids(atoms)
    assert atoms == before and set(atoms.arrays) == {"numbers", "positions"}
    with pytest.raises(MeltpotError, match="cutoff"):
        lo.cna(atoms, cutoff=-1.0)
    with pytest.raises(MeltpotError, match="no cell"):
        lo.cna(Atoms("Al2", positions=[[0, 0, 0], [1, 1, 1]]))


# --------------------------------------------------------------------------- Steinhardt
@pytest.mark.parametrize("name", ["fcc", "bcc", "hcp"])
def test_steinhardt_ideal_crystal_values(name):
    make, rc = CRYSTALS[name]
    atoms = make()
    q = lo.steinhardt(atoms, (4, 6), cutoff=rc, averaged=False)
    qbar = lo.steinhardt(atoms, (4, 6), cutoff=rc, averaged=True)
    qov = lo.steinhardt_ovito(atoms, (4, 6), cutoff=rc, averaged=True)
    for k, l in enumerate((4, 6)):
        ref = reference_q(atoms, rc, l)
        assert ref == pytest.approx(LITERATURE_Q[name][k], abs=6e-4)
        np.testing.assert_allclose(q[l], ref, atol=1e-10)
        # perfect crystal: the neighbour average changes nothing (even l)
        np.testing.assert_allclose(qbar[l], q[l], atol=1e-10)
        np.testing.assert_allclose(qov[l], qbar[l], atol=1e-10)
        assert lo.CRYSTAL_Q[name][l] == pytest.approx(ref, abs=1e-5)
    # adaptive neighbours find the same first shell(s)
    qa = lo.steinhardt(atoms, (6,), cutoff="adaptive", averaged=True)
    np.testing.assert_allclose(qa[6], q[6], atol=1e-10)


def test_pyscal_and_ovito_agree_on_perturbed_crystal():
    import pyscal3

    atoms = perturbed(bulk("Al", "fcc", a=A_FCC, cubic=True).repeat(5), 0.15)
    rc = 3.45
    for averaged in (False, True):
        a = lo.steinhardt(atoms, (4, 6), cutoff=rc, averaged=averaged)
        b = lo.steinhardt_ovito(atoms, (4, 6), cutoff=rc, averaged=averaged)
        for l in (4, 6):
            np.testing.assert_allclose(a[l], b[l], atol=1e-6)
    q6 = lo.steinhardt(atoms, (6,), cutoff=rc)[6]
    assert 0.3 < q6.mean() < lo.CRYSTAL_Q["fcc"][6]  # thermal noise lowers q̄6
    # CNA counts: OVITO's adaptive CNA vs pyscal3's own implementation
    ours = lo.class_counts(lo.cna(atoms))
    theirs = pyscal3.common_neighbor_analysis(lo._bare(atoms))
    assert 0 < ours["other"] < len(atoms)
    assert {k: ours[k] for k in ("fcc", "hcp", "bcc")} == {k: theirs[k] for k in ("fcc", "hcp", "bcc")}
    assert ours["ico"] == theirs["ico"] and ours["other"] == theirs["others"]


def test_histograms_count_every_atom():
    atoms = perturbed(CRYSTALS["fcc"][0](), 0.1)
    q = lo.steinhardt(atoms)
    h = lo.histograms(q, bins=50)
    assert len(h) == 50 and h["q4"].sum() == h["q6"].sum() == len(atoms)
    assert h.loc[h["q6"].idxmax(), "bin_hi"] > 0.4


# --------------------------------------------------------------------------- solids
def test_find_solids_crystal_and_gas():
    fcc = CRYSTALS["fcc"][0]()
    r = lo.find_solids(fcc, cutoff=3.5)
    assert r.n_solid == len(fcc) and r.largest_size == len(fcc) and len(r.sizes) == 1
    assert r.largest.all() and (r.cluster >= 0).all()
    bcc = CRYSTALS["bcc"][0]()
    assert lo.find_solids(bcc).largest_size == len(bcc)  # adaptive neighbours
    rng = np.random.default_rng(1)
    gas = Atoms("Al500", positions=rng.uniform(0, 20.25, (500, 3)), cell=[20.25] * 3, pbc=True)
    g = lo.find_solids(gas, cutoff=3.5)
    assert g.largest_size < 10 and g.n_solid < 25


# --------------------------------------------------------------------------- inherent structures
def test_inherent_structure_returns_to_fcc():
    ideal = bulk("Al", "fcc", a=4.05, cubic=True).repeat(4)
    hot = perturbed(ideal, 0.25, seed=3)
    assert lo.cna_fractions(lo.cna(hot))["fcc"] < 0.8
    minimize = lo.Minimizer(pair_style="eam/fs", pair_coeff=["* * Al_mm.eam.fs Al"])
    assert minimize.elements == ["Al"]
    cold = minimize(hot)
    assert lo.cna_fractions(lo.cna(cold))["fcc"] == 1.0
    e_ideal = minimize(ideal).info["inherent_energy"]
    assert cold.info["inherent_energy"] / len(cold) == pytest.approx(e_ideal / len(ideal), abs=1e-6)
    assert cold.info["inherent_fnorm"] < 1e-4
    np.testing.assert_allclose(cold.cell, hot.cell)
    # any triclinic cell, rotated: a primitive-cell supercell
    tric = bulk("Al", "fcc", a=4.05).repeat((6, 6, 6))
    tric.rotate(25, "z", rotate_cell=True)
    tcold = lo.inherent_structure(perturbed(tric, 0.2, seed=4))
    assert lo.cna_fractions(lo.cna(tcold))["fcc"] == 1.0
    np.testing.assert_allclose(tcold.cell, tric.cell)
    assert tcold.info["inherent_energy"] / len(tcold) == pytest.approx(e_ideal / len(ideal), abs=1e-6)


def test_minimizer_runs_pre_commands_before_pair_style(monkeypatch):
    """``pre_commands`` (e.g. ``plugin load``) go after the box and before mass/pair_style."""
    import meltpot.lammps_env as env

    sent = []
    real = env.new_instance

    class Recording:
        def __init__(self, lmp):
            self._lmp = lmp

        def command(self, cmd):
            sent.append(cmd)
            return self._lmp.command(cmd)

        def __getattr__(self, name):
            return getattr(self._lmp, name)

    monkeypatch.setattr(env, "new_instance", lambda *a, **k: Recording(real(*a, **k)))
    ideal = bulk("Al", "fcc", a=4.05, cubic=True).repeat(3)
    pre = ["variable meltpot_pre equal 1", "neighbor 2.5 bin"]
    m = lo.Minimizer(pair_style="eam/fs", pair_coeff="* * Al_mm.eam.fs Al", pre_commands=pre,
                     extra_commands=["neigh_modify every 1 delay 0"])
    cold = m(perturbed(ideal, 0.1, seed=5))
    assert lo.cna_fractions(lo.cna(cold))["fcc"] == 1.0
    i_box = next(i for i, c in enumerate(sent) if c.startswith("create_box"))
    i_pre = [sent.index(c) for c in pre]
    i_mass = next(i for i, c in enumerate(sent) if c.startswith("mass"))
    i_pair = next(i for i, c in enumerate(sent) if c.startswith("pair_style"))
    assert i_box < i_pre[0] < i_pre[1] < i_mass < i_pair < sent.index("neigh_modify every 1 delay 0")
    # a failing pre-command is named in the error
    bad = lo.Minimizer(pair_style="eam/fs", pair_coeff="* * Al_mm.eam.fs Al", pre_commands="no_such_command 1")
    with pytest.raises(MeltpotError, match="no_such_command 1"):
        bad(ideal)


# --------------------------------------------------------------------------- trajectory tables
def _trajectory(n=3, sigma=0.1):
    frames = []
    for k in range(n):
        a = perturbed(CRYSTALS["fcc"][0](), sigma, seed=k)
        a.info["timestep"] = 1000 * k
        frames.append(a)
    return frames


def test_tables_over_frames():
    frames = _trajectory()
    t = lo.cna_table(iter(frames), dt=0.001)
    assert list(t["time"]) == pytest.approx([0.0, 1.0, 2.0])
    assert {"fcc", "hcp", "bcc", "ico", "other", "crystalline"} <= set(t.columns)
    np.testing.assert_allclose(t[["other", "fcc", "hcp", "bcc", "ico"]].sum(axis=1), 1.0)
    c = lo.cluster_table(frames, cutoff=3.5)
    assert (c["largest_cluster"] == 256).all() and (c["n_clusters"] == 1).all()
    s, h = lo.steinhardt_table(frames, bins=20)
    assert len(s) == 3 and len(h) == 60 and (h.groupby("frame")["q6"].sum() == 256).all()
    s2, _ = lo.steinhardt_table(frames, engine="ovito", cutoff=3.5, bins=20)
    s1, _ = lo.steinhardt_table(frames, cutoff=3.5, bins=20)
    np.testing.assert_allclose(s1["q6_mean"], s2["q6_mean"], atol=1e-8)
    bad = frames[:2] + [Atoms("Al", cell=np.zeros((3, 3)))]
    with pytest.raises(FrameError, match="traj.dump, frame 2"):
        lo.cna_table(bad, source="traj.dump")


# --------------------------------------------------------------------------- first passage
def test_first_passage_interpolates_and_flags():
    t = np.arange(0.0, 11.0)  # 0..10
    y = 10.0 * t  # crosses 35 at t = 3.5
    p = nu.first_passage(t, y, 35.0)
    assert p.reached and p.time == pytest.approx(3.5) and p.index == 4 and not p.at_start
    p = nu.first_passage(t, y, 1000.0)
    assert not p.reached and np.isnan(p.time) and p.index == -1
    assert nu.first_passage(t, y + 50, 35.0).at_start
    # a fluctuation at t = 2 falls back; the sustained crossing is at t = 6.5
    y = np.array([0, 0, 60, 0, 0, 0, 40, 60, 70, 80, 90], dtype=float)
    assert nu.first_passage(t, y, 50.0).time == pytest.approx(1.833333, abs=1e-5)
    assert nu.onset_time(t, y, 50.0, hold=2.0).time == pytest.approx(6.5)
    # a crossing with less than `hold` before the end is not confirmed
    assert not nu.onset_time(t, y, 85.0, hold=2.0).reached
    assert nu.first_passage(t, -y, -50.0, above=False).time == pytest.approx(1.833333, abs=1e-5)
    with pytest.raises(MeltpotError, match="increase"):
        nu.first_passage([0, 2, 1], [0, 1, 2], 0.5)


def test_time_to_fraction_of_cna_table():
    t = np.linspace(0.0, 100.0, 51)
    frac = np.clip((t - 20.0) / 50.0, 0.0, 0.9)  # 0.4 at t = 40
    table = pd.DataFrame({"time": t, "fcc": 0.75 * frac, "hcp": 0.25 * frac, "bcc": 0.0})
    assert nu.time_to_fraction(t, nu.crystalline_fraction(table)).time == pytest.approx(40.0)
    r = nu.run_times(table, "fraction", level=0.4)
    assert r["reached"] and r["time"] == pytest.approx(40.0) and r["t_end"] == 100.0
    assert not nu.run_times(table, "fraction", level=0.95)["reached"]
    with pytest.raises(MeltpotError, match="largest_cluster"):
        nu.run_times(table, "cluster")


# --------------------------------------------------------------------------- TTT
def _run_table(t_cross, t_end=100.0):
    t = np.linspace(0.0, t_end, 201)
    frac = np.clip(0.4 + (t - t_cross) * 0.02, 0.0, 0.95)  # 0.4 at t_cross
    return pd.DataFrame({"time": t, "fcc": frac, "hcp": 0.0, "bcc": 0.0,
                         "largest_cluster": np.clip((t - t_cross) * 50 + 100, 0, 5000)})


TTT_RUNS = {(600.0, 0): 10.0, (600.0, 1): 14.0, (650.0, 0): 30.0, (650.0, 1): 40.0, (650.0, 2): None}


def test_ttt_table_and_plot(tmp_path):
    triples = [(T, rep, _run_table(tc if tc is not None else 1000.0)) for (T, rep), tc in TTT_RUNS.items()]
    runs = nu.ttt_from_tables(triples, criterion="fraction", level=0.4)
    ttt = nu.ttt_table(runs)
    r600, r650 = ttt.iloc[0], ttt.iloc[1]
    assert r600["mean"] == pytest.approx(12.0) and r600["std"] == pytest.approx(np.std([10, 14], ddof=1))
    assert (r600["n_reached"], r600["n_replicas"]) == (2, 2)
    assert r650["mean"] == pytest.approx(35.0) and (r650["n_reached"], r650["n_replicas"]) == (2, 3)
    # cluster criterion: 100 atoms at t_cross as well
    runs_c = nu.ttt_from_tables(triples, criterion="cluster", size=100)
    np.testing.assert_allclose(runs_c["time"].to_numpy()[:4], [10, 14, 30, 40])
    nu.plot_ttt(ttt, tmp_path / "ttt.png", runs)
    assert (tmp_path / "ttt.png").stat().st_size > 0


def _cli(argv):
    p = argparse.ArgumentParser()
    from meltpot.cli.analyze.order import add_commands

    add_commands(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(argv)
    return args.func(args)


def test_cli_ttt_from_files(tmp_path):
    for (T, rep), tc in TTT_RUNS.items():
        _run_table(tc if tc is not None else 1000.0).to_csv(tmp_path / f"T{T:g}_r{rep}_cna.csv", index=False)
    files = sorted(str(p) for p in tmp_path.glob("T*_cna.csv"))
    assert _cli(["ttt", *files, "--out", str(tmp_path / "out" / "ttt.csv")]) == 0
    ttt = pd.read_csv(tmp_path / "out" / "ttt.csv")
    assert list(ttt["T"]) == [600.0, 650.0] and ttt["mean"].tolist() == pytest.approx([12.0, 35.0])
    assert (tmp_path / "out" / "ttt_runs.csv").exists() and (tmp_path / "out" / "ttt.png").exists()
    pd.DataFrame({"T": [600, 650], "replica": [0, 0], "path": [files[0], files[2]]}).to_csv(
        tmp_path / "runs.csv", index=False)
    assert _cli(["ttt", "--index", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "t2.csv")]) == 0
    with pytest.raises(MeltpotError, match="pattern"):
        _cli(["ttt", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "t3.csv")])
    # tables whose time starts at 16 (dump of an isothermal stage after melt + quench)
    shifted = tmp_path / "shifted"
    shifted.mkdir()
    for (T, rep), tc in TTT_RUNS.items():
        tab = _run_table(tc if tc is not None else 1000.0)
        tab["time"] += 16.0
        tab.to_csv(shifted / f"T{T:g}_r{rep}_cna.csv", index=False)
    files = sorted(str(p) for p in shifted.glob("T*_cna.csv"))
    assert _cli(["ttt", *files, "--from-first-frame", "--out", str(tmp_path / "t4.csv")]) == 0
    assert pd.read_csv(tmp_path / "t4.csv")["mean"].tolist() == pytest.approx([12.0, 35.0])
    assert _cli(["ttt", *files, "--out", str(tmp_path / "t5.csv")]) == 0
    assert pd.read_csv(tmp_path / "t5.csv")["mean"].tolist() == pytest.approx([28.0, 51.0])


def test_cli_trajectory_commands(tmp_path):
    traj = tmp_path / "traj.extxyz"
    write(traj, [perturbed(CRYSTALS["fcc"][0](), 0.25, seed=k) for k in range(3)], format="extxyz")
    out = tmp_path / "res"
    assert _cli(["cna", str(traj), "--out", str(out / "cna_dt.csv"), "--no-progress", "--dt", "0.001"]) == 0  # deprecated
    assert _cli(["cna", str(traj), "--out", str(out / "cna.csv"), "--no-progress", "--timestep", "0.001"]) == 0
    cna_raw = pd.read_csv(out / "cna.csv")
    pd.testing.assert_frame_equal(cna_raw, pd.read_csv(out / "cna_dt.csv"))
    assert len(cna_raw) == 3 and (cna_raw["fcc"] < 0.8).all() and (out / "cna.png").exists()
    assert _cli(["cna", str(traj), "--out", str(out / "cna_is.csv"), "--no-progress", "--minimize",
                 "--pair-coeff", "* * Al_mm.eam.fs Al", "--step", "2"]) == 0
    cna_is = pd.read_csv(out / "cna_is.csv")
    assert list(cna_is["frame"]) == [0, 2] and (cna_is["fcc"] == 1.0).all()
    assert _cli(["clusters", str(traj), "--out", str(out / "cl.csv"), "--no-progress", "--cutoff", "auto",
                 "--onset-size", "10"]) == 0
    assert (pd.read_csv(out / "cl.csv")["largest_cluster"] > 200).all()
    assert _cli(["steinhardt", str(traj), "--out", str(out / "q.csv"), "--no-progress", "--bins", "20"]) == 0
    assert (out / "q_hist.csv").exists() and (out / "q.png").exists()
    with pytest.raises(MeltpotError, match="--types"):
        _cli(["cna", str(traj), "--out", str(out / "x.csv"), "--types", "Al"])


# --------------------------------------------------------------------------- enthalpy
def test_enthalpy_drop():
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 200.0, 401)
    H = -3.20 - 0.10 * np.clip((t - 80.0) / 40.0, 0.0, 1.0) + rng.normal(scale=0.002, size=t.size)
    d = nu.enthalpy_drop(t, H)
    assert d.found and d.time == pytest.approx(100.0, abs=2.0) and d.dH == pytest.approx(-0.10, abs=0.01)
    flat = nu.enthalpy_drop(t, -3.2 + rng.normal(scale=0.002, size=t.size))
    assert not flat.found and np.isnan(flat.time)


def test_enthalpy_ramp_jump_latent_heat_and_cp():
    T = np.arange(300.0, 1501.0, 50.0)
    Tm, L, cs, cl = 975.0, 0.12, 3.0e-4, 3.6e-4  # eV/atom, eV/(atom K)
    H = np.where(T < Tm, -3.40 + cs * T, -3.40 + cs * Tm + L + cl * (T - Tm))
    r = nu.analyze_ramp(T[::-1], H[::-1])  # order of the points does not matter
    assert r.kind == "jump" and r.T_transition == pytest.approx(Tm)
    assert r.latent_heat == pytest.approx(L, rel=1e-9)
    assert r.cp_low == pytest.approx(cs, rel=1e-9) and r.cp_high == pytest.approx(cl, rel=1e-9)
    rng = np.random.default_rng(1)
    rn = nu.analyze_ramp(T, H + rng.normal(scale=1e-3, size=T.size))
    assert rn.kind == "jump" and rn.T_transition == pytest.approx(Tm)
    assert rn.latent_heat == pytest.approx(L, abs=0.005) and rn.cp_low == pytest.approx(cs, rel=0.1)
    units = nu.per_atom_units(L, cs, molar_mass=26.98)
    assert units["latent_kJ_per_mol"] == pytest.approx(11.578, abs=1e-3)
    assert units["cp_J_per_gK"] == pytest.approx(1.0728, abs=1e-3)
    # separate branches (solid from heating, liquid from cooling) at a known T_m
    assert nu.latent_heat(r.low, r.high, Tm) == pytest.approx(L)


def test_enthalpy_ramp_glass_kink():
    T = np.arange(250.0, 701.0, 10.0)
    Tg = 378.0
    H = np.where(T < Tg, -3.30 + 2.5e-4 * (T - Tg), -3.30 + 4.0e-4 * (T - Tg))
    r = nu.analyze_ramp(T, H)
    assert r.kind == "kink" and r.T_transition == pytest.approx(Tg, abs=1e-6) and r.latent_heat == 0.0
    assert r.cp_low == pytest.approx(2.5e-4) and r.cp_high == pytest.approx(4.0e-4)
    rng = np.random.default_rng(2)
    rn = nu.analyze_ramp(T, H + rng.normal(scale=2e-4, size=T.size))
    assert rn.kind == "kink" and rn.T_transition == pytest.approx(Tg, abs=5.0)
    assert nu.analyze_ramp(T, H, kind="jump").latent_heat != 0.0  # forcing the kind
    with pytest.raises(MeltpotError, match="too few"):
        nu.analyze_ramp(T[:4], H[:4])


# --------------------------------------------------------------------------- two-phase
def _two_phase(kind, T_end, seed):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1000.0, 201)
    f = {"solid": 0.5 + 0.4 * np.clip(t / 600, 0, 1), "liquid": 0.5 - 0.5 * np.clip(t / 400, 0, 1),
         "coexist": np.full_like(t, 0.5)}[kind] + rng.normal(scale=0.01, size=t.size)
    temp = T_end + 30.0 * np.exp(-t / 100.0) + rng.normal(scale=3.0, size=t.size)
    return t, np.clip(f, 0, 1), temp


def test_two_phase_classification_and_melting_point(tmp_path):
    runs = []
    for k, (kind, T) in enumerate([("solid", 930.0), ("coexist", 968.0), ("coexist", 972.0), ("liquid", 1010.0)]):
        t, f, temp = _two_phase(kind, T, k)
        r = nu.classify_two_phase(t, f, temp, T_set=T, final=100.0)
        assert r.outcome == kind
        assert r.T_final == pytest.approx(T, abs=1.5)
        runs.append(r)
    m = nu.two_phase_melting_point(runs)
    assert m.method == "coexistence" and m.n_coexist == 2 and m.T_m == pytest.approx(970.0, abs=1.5)
    assert m.T_low == pytest.approx(930.0, abs=1.5) and m.T_high == pytest.approx(1010.0, abs=1.5)
    # no coexisting run: bracketed by the highest T where the solid grew and the lowest it melted
    br = [nu.TwoPhaseRun(T, o, 0.5, 0.0, np.nan, np.nan) for T, o in
          [(900, "solid"), (950, "solid"), (1000, "liquid"), (1050, "liquid")]]
    mb = nu.two_phase_melting_point(br)
    assert (mb.method, mb.T_m, mb.error) == ("bracket", 975.0, 25.0)
    assert nu.two_phase_melting_point(br[:2]).method == "above"
    assert np.isnan(nu.two_phase_melting_point(br[:2]).T_m)
    assert nu.two_phase_melting_point([br[2], nu.TwoPhaseRun(1020, "solid", 0.5, 0.9, np.nan, np.nan)]
                                      ).method == "inconsistent"
    nu.write_csv(runs, tmp_path / "runs.csv")
    assert nu.two_phase_melting_point(pd.read_csv(tmp_path / "runs.csv")).T_m == pytest.approx(m.T_m)
    nu.plot_two_phase([("930 K", *_two_phase("solid", 930.0, 0)[:2])], tmp_path / "tp.png")
    t, f, temp = _two_phase("coexist", 970.0, 9)
    nu.plot_enthalpy_time(t, temp, tmp_path / "h.png")
    T = np.arange(300.0, 1501.0, 50.0)
    H = np.where(T < 975, 3e-4 * T, 0.12 + 3.6e-4 * T)
    nu.plot_ramp(T, H, nu.analyze_ramp(T, H), tmp_path / "ramp.png")
    assert all((tmp_path / n).stat().st_size > 0 for n in ("tp.png", "h.png", "ramp.png"))
