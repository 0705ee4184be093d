"""Reference engines against each other, against finite differences, and their MD."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.eam import EAM
from ase.neighborlist import neighbor_list

from meltpot.errors import EngineError
from meltpot.lammps_env import potentials_dir
from meltpot.reference import MDSegment, make_engine
from meltpot.reference.ase_engine import AseEngine
from meltpot.reference.lammps_engine import LammpsEngine

AL_EAM = dict(pair_style="eam/fs", pair_coeff=["* * Al_mm.eam.fs Al"])


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def lmp_al():
    return LammpsEngine(["Al"], **AL_EAM)


@pytest.fixture(scope="module")
def lmp_lj():
    return LammpsEngine(["Ar"], units="lj", pair_style="lj/cut 2.8", pair_coeff=["1 1 1.0 1.0 2.8"])


def perturbed_fcc(rep=(2, 2, 2), seed=0, a=4.05, symbol="Al", sigma=0.1):
    atoms = bulk(symbol, "fcc", a=a, cubic=True) * rep
    atoms.positions += np.random.default_rng(seed).normal(0.0, sigma, atoms.positions.shape)
    return atoms


def rotation(angles):
    """Rotation matrix from three angles (rad) about x, y, z."""
    out = np.eye(3)
    for axis, t in enumerate(angles):
        c, s = np.cos(t), np.sin(t)
        r = np.eye(3)
        i, j = [k for k in range(3) if k != axis]
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        out = r @ out
    return out


def general_triclinic(seed=1):
    """A sheared, rotated Al cell (27 atoms) that is not in LAMMPS orientation."""
    atoms = bulk("Al", "fcc", a=4.05) * (3, 3, 3)
    shear = np.array([[1.0, 0.05, 0.02], [0.03, 1.0, 0.04], [0.0, 0.01, 1.02]])
    atoms.set_cell(np.array(atoms.cell) @ shear, scale_atoms=True)
    atoms.set_cell(np.array(atoms.cell) @ rotation([0.35, 0.6, 0.9]).T, scale_atoms=True)
    atoms.positions += np.random.default_rng(seed).normal(0.0, 0.1, atoms.positions.shape)
    assert abs(atoms.cell[0, 1]) > 0.1 and abs(atoms.cell[0, 2]) > 0.1  # not lower-triangular
    return atoms


def strained(atoms, eps):
    out = atoms.copy()
    out.set_cell(np.array(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
    return out


# ----------------------------------------------------------------------------- 1. EAM
@pytest.mark.parametrize("make", [perturbed_fcc, general_triclinic], ids=["cubic", "triclinic"])
def test_lammps_eam_matches_ase_eam(lmp_al, make):
    atoms = make()
    ref = atoms.copy()
    ref.calc = EAM(potential=str(potentials_dir() / "Al_mm.eam.fs"))
    got = lmp_al.label(atoms)
    # measured: |dE| ~ 3e-9 eV, |dF| <= 6e-6 eV/Å (the two codes interpolate the tabulated
    # functions with different splines; each is self-consistent to 1e-8 by finite
    # differences), |dσ| ~ 5e-8 eV/Å³
    assert got.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(got.get_forces(), ref.get_forces(), atol=2e-5)
    np.testing.assert_allclose(got.get_stress(), ref.get_stress(), atol=2e-7)
    np.testing.assert_allclose(got.positions, atoms.positions)  # caller's frame is kept
    assert got.info["engine"] == "lammps"


def test_ase_engine_eam_resolves_lammps_potential(lmp_al):
    eng = AseEngine(["Al"], calculator="eam", kwargs={"potential": "Al_mm.eam.fs"})
    assert eng.kwargs["potential"] == str(potentials_dir() / "Al_mm.eam.fs")
    atoms = general_triclinic(seed=4)
    assert eng.label(atoms).get_potential_energy() == pytest.approx(
        lmp_al.label(atoms).get_potential_energy(), abs=1e-6)


# ----------------------------------------------------------------------------- 2. LJ
def test_lammps_lj_matches_ase_lennard_jones(lmp_lj):
    atoms = perturbed_fcc((3, 3, 3), seed=2, a=1.6, symbol="Ar", sigma=0.05)
    ase_lj = AseEngine(["Ar"], units="lj", calculator="LennardJones",
                       kwargs=dict(sigma=1.0, epsilon=1.0, rc=2.8, smooth=False))
    a, b = ase_lj.label(atoms), lmp_lj.label(atoms)
    i, _ = neighbor_list("ij", atoms, 2.8)
    n_pairs = len(i) // 2
    phi_rc = 4.0 * ((1 / 2.8) ** 12 - (1 / 2.8) ** 6)
    # ASE subtracts φ(rc) (< 0) for every pair inside rc; LAMMPS lj/cut is unshifted
    assert a.get_potential_energy() - b.get_potential_energy() == pytest.approx(
        -n_pairs * phi_rc, abs=1e-9)
    np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-10)
    np.testing.assert_allclose(a.get_stress(), b.get_stress(), atol=1e-10)


# ----------------------------------------------------------------------------- 3. FD
def test_lammps_forces_and_stress_are_derivatives(lmp_al):
    atoms = general_triclinic(seed=3)
    lab = lmp_al.label(atoms)
    forces, stress = lab.get_forces(), lab.get_stress(voigt=False)
    h = 1e-5

    def energy(a):
        return lmp_al.label(a).get_potential_energy()

    for i, k in [(0, 0), (5, 1), (11, 2), (26, 0)]:
        p, m = atoms.copy(), atoms.copy()
        p.positions[i, k] += h
        m.positions[i, k] -= h
        assert -(energy(p) - energy(m)) / (2 * h) == pytest.approx(forces[i, k], abs=1e-6)
    vol = atoms.get_volume()
    for i, j in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        eps = np.zeros((3, 3))
        eps[i, j] += h / 2
        eps[j, i] += h / 2
        fd = (energy(strained(atoms, eps)) - energy(strained(atoms, -eps))) / (2 * h) / vol
        assert fd == pytest.approx(stress[i, j], abs=1e-7)


def test_lammps_label_reuses_instance_correctly(lmp_al):
    """The fast path (same atom count, new box and positions) equals a fresh instance."""
    frames = [perturbed_fcc(seed=s) for s in range(3)]
    frames[1].set_cell(frames[1].cell * 1.03, scale_atoms=True)
    frames.append(general_triclinic())  # other atom count: rebuild
    fresh = LammpsEngine(["Al"], **AL_EAM)
    for atoms in frames:
        a = lmp_al.label(atoms)
        fresh._close_label_instance()
        b = fresh.label(atoms)
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-10)


# ----------------------------------------------------------------------------- 4. LAMMPS MD
@pytest.fixture(scope="module")
def al_md(lmp_al):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (3, 3, 3)
    v0 = atoms.get_volume()
    segs = [MDSegment("nvt", 300.0, 200, 0.002, sample_every=50, label="nvt"),
            MDSegment("nve", 300.0, 1, 0.002, sample_every=1, label="nve1"),
            MDSegment("nve", 300.0, 199, 0.002, sample_every=50, label="nve"),
            MDSegment("nvt", 300.0, 20, 0.002, sample_every=10, volume=1.03 * v0, label="resized"),
            MDSegment("npt", 300.0, 300, 0.002, sample_every=100, pressure=5.0, barostat="iso",
                      pdamp=0.1, label="npt")]
    frames = list(lmp_al.md(atoms, segs, seed=7))
    return atoms, segs, frames


def test_lammps_md_frames(al_md, lmp_al):
    atoms, segs, frames = al_md
    assert [i for i, _ in frames] == [0] * 4 + [1] + [2] * 3 + [3] * 2 + [4] * 3
    steps = [f.info["step"] for _, f in frames]
    assert steps == [50, 100, 150, 200, 201, 251, 301, 351, 410, 420, 520, 620, 720]
    assert [f.info["segment"] for _, f in frames][:5] == ["nvt"] * 4 + ["nve1"]
    for _, f in frames:
        assert f.info["time"] == pytest.approx(0.002 * f.info["step"])
        assert f.get_forces().shape == (108, 3) and f.get_stress().shape == (6,)
        assert np.all(f.pbc) and f.get_velocities() is not None
        frac = f.get_scaled_positions(wrap=False)
        assert np.all((frac >= 0) & (frac < 1))
        assert 100 < f.info["T_inst"] < 600
        # T_inst is LAMMPS's temp (3N-3 dof); ASE's uses 3N (and slightly other constants)
        assert f.info["T_inst"] == pytest.approx(f.get_temperature() * 324 / 321, rel=1e-5)


def test_lammps_md_labels_equal_single_point(al_md, lmp_al):
    for _, f in al_md[2]:
        ref = lmp_al.label(f)
        assert f.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(f.get_forces(), ref.get_forces(), atol=1e-9)
        np.testing.assert_allclose(f.get_stress(), ref.get_stress(), atol=1e-11)


def test_lammps_md_velocities_carry_over_and_nve_conserves(al_md):
    _, _, frames = al_md
    last_nvt, first_nve = frames[3][1], frames[4][1]
    v0, v1 = last_nvt.get_velocities(), first_nve.get_velocities()
    # one 2 fs step later: velocities nearly unchanged (not redrawn)
    assert np.abs(v1 - v0).max() < 0.1 * np.abs(v0).max()
    assert first_nve.info["T_inst"] == pytest.approx(last_nvt.info["T_inst"], rel=0.1)
    etot = [f.get_potential_energy() + f.get_kinetic_energy() for i, f in frames if i in (1, 2)]
    assert np.ptp(etot) < 0.01  # eV for 108 atoms over 200 steps of 2 fs


def test_lammps_md_volume_rescale_and_npt(al_md):
    atoms, segs, frames = al_md
    for i, f in frames:
        if i < 3:
            assert f.get_volume() == pytest.approx(atoms.get_volume(), rel=1e-12)
        if i == 3:
            assert f.get_volume() == pytest.approx(segs[3].volume, rel=1e-12)
    npt = [f.get_volume() for i, f in frames if i == 4]
    assert max(npt) < 0.99 * segs[3].volume  # 5 GPa compresses


def test_lammps_md_takes_given_velocities_in_any_orientation(al_md, lmp_al):
    start = al_md[2][-1][1]  # LAMMPS orientation, with velocities (ASE units)
    rot = rotation([0.3, -0.7, 1.1])
    rotated = start.copy()
    rotated.set_cell(np.array(start.cell) @ rot.T, scale_atoms=True)
    rotated.set_velocities(start.get_velocities() @ rot.T)
    seg = MDSegment("nve", 300.0, 1, 0.002, sample_every=1)
    (_, f), = list(lmp_al.md(rotated, [seg], seed=1))
    np.testing.assert_allclose(f.cell, start.cell, atol=1e-9)
    # one velocity-Verlet step in ASE units: exact up to LAMMPS's unit constants (~1e-6)
    v0, dt = start.get_velocities(), 0.002 * 1000 * units.fs
    m = start.get_masses()[:, None]
    f0, f1 = start.get_forces(), f.get_forces()
    np.testing.assert_allclose(f.get_velocities(), v0 + (f0 + f1) / (2 * m) * dt, atol=1e-7)
    dx = f.positions - (start.positions + v0 * dt + f0 / (2 * m) * dt**2)
    dx -= np.round(dx @ np.linalg.inv(f.cell)) @ np.array(f.cell)  # undo wrapping
    assert np.abs(dx).max() < 1e-7


def test_nve_trajectories_agree_between_engines(lmp_al):
    """Same EAM, same start: LAMMPS and ASE velocity Verlet agree (time/velocity units)."""
    ase_eam = AseEngine(["Al"], calculator="EAM", kwargs={"potential": "Al_mm.eam.fs"})
    atoms = perturbed_fcc((2, 2, 2), seed=8, sigma=0.05)
    seg = MDSegment("nve", 500.0, 6, 0.002, sample_every=3, velocity_seed=5)
    (_, a0), (_, a1) = list(lmp_al.md(atoms, [seg], seed=0))
    start = a0.copy()  # restart both engines from the LAMMPS state at step 3
    seg2 = MDSegment("nve", 500.0, 3, 0.002, sample_every=3)
    (_, b1), = list(ase_eam.md(start, [seg2], seed=0))
    (_, c1), = list(lmp_al.md(start, [seg2], seed=0))
    np.testing.assert_allclose(c1.positions, a1.positions, atol=1e-8)
    np.testing.assert_allclose(b1.positions, c1.positions, atol=1e-6)
    np.testing.assert_allclose(b1.get_velocities(), c1.get_velocities(), rtol=0, atol=1e-5)


def test_lammps_md_is_reproducible_and_lj(lmp_lj):
    atoms = bulk("Ar", "fcc", a=1.6, cubic=True) * (3, 3, 3)
    segs = [MDSegment("nvt", 1.5, 40, 0.005, sample_every=20, temperature_stop=2.0, label="ramp"),
            MDSegment("npt", 2.0, 40, 0.005, sample_every=20, pressure=1.0, barostat="tri")]
    a = [f for _, f in lmp_lj.md(atoms, segs, seed=3)]
    b = [f for _, f in lmp_lj.md(atoms, segs, seed=3)]
    assert len(a) == 4
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.positions, y.positions)
        assert x.info["time"] == pytest.approx(0.005 * x.info["step"])
        assert np.all(x.get_masses() == 1.0)
    ref = lmp_lj.label(a[-1])
    np.testing.assert_allclose(a[-1].get_stress(), ref.get_stress(), atol=1e-10)


def test_lammps_md_error_names_segment(lmp_al):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (2, 2, 2)
    seg = MDSegment("nvt", 3000.0, 100, 0.05, sample_every=10, label="blowup")
    with pytest.raises(EngineError, match="blowup"):
        list(lmp_al.md(atoms, [seg], seed=2))


# ----------------------------------------------------------------------------- 5. ASE EMT
@pytest.fixture(scope="module")
def emt():
    return AseEngine(["Al", "Cu"], calculator="EMT")


def test_emt_label_and_finite_differences(emt):
    atoms = perturbed_fcc((2, 2, 2), seed=5)
    atoms.symbols[:8] = "Cu"
    lab = emt.label(atoms)
    assert lab.info["engine"] == "ase:EMT" and lab.get_stress().shape == (6,)
    forces, h = lab.get_forces(), 1e-5
    for i, k in [(0, 0), (9, 1), (20, 2)]:
        p, m = atoms.copy(), atoms.copy()
        p.positions[i, k] += h
        m.positions[i, k] -= h
        fd = -(emt.label(p).get_potential_energy() - emt.label(m).get_potential_energy()) / (2 * h)
        assert fd == pytest.approx(forces[i, k], abs=1e-6)


def test_emt_md_segments(emt):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (2, 2, 2)
    v0 = atoms.get_volume()
    segs = [MDSegment("nvt", 300.0, 10, 0.002, sample_every=5, temperature_stop=500.0, label="a"),
            MDSegment("nve", 300.0, 5, 0.002, sample_every=5, label="b"),
            MDSegment("nvt", 300.0, 4, 0.002, sample_every=2, volume=1.05 * v0, velocity_seed=11),
            MDSegment("npt", 300.0, 4, 0.002, sample_every=4, pressure=1.0, barostat="aniso"),
            MDSegment("npt", 300.0, 4, 0.002, sample_every=4, pressure=1.0, barostat="tri")]
    frames = list(emt.md(atoms, segs, seed=1))
    assert [i for i, _ in frames] == [0, 0, 1, 2, 2, 3, 4]
    assert [f.info["step"] for _, f in frames] == [5, 10, 15, 17, 19, 23, 27]
    for i, f in frames:
        ref = emt.label(f)
        assert f.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(f.get_forces(), ref.get_forces(), atol=1e-10)
        assert f.info["T_inst"] == pytest.approx(f.get_temperature())
        assert f.info["time"] == pytest.approx(0.002 * f.info["step"])
        if i == 2:
            assert f.get_volume() == pytest.approx(1.05 * v0, rel=1e-12)
    assert frames[0][1].info["T_inst"] > 0


def test_ase_lj_md_reduced_units():
    eng = AseEngine(["Ar"], units="lj", calculator="LennardJones",
                    kwargs=dict(sigma=1.0, epsilon=1.0, rc=2.8, smooth=False),
                    thermostat="langevin")
    atoms = bulk("Ar", "fcc", a=1.6, cubic=True) * (2, 2, 2)
    seg = MDSegment("nvt", 1.5, 2, 0.005, sample_every=2, velocity_seed=1)
    (_, f), = list(eng.md(atoms, [seg], seed=0))
    assert np.all(f.get_masses() == 1.0)
    assert 0.5 < f.info["T_inst"] < 3.0  # reduced, not kelvin


# ----------------------------------------------------------------------------- 6. errors
def test_unknown_pair_style():
    with pytest.raises(EngineError, match="foo/bar"):
        LammpsEngine(["Al"], pair_style="foo/bar", pair_coeff=["* *"])


def test_missing_potential_file():
    with pytest.raises(EngineError, match="NoSuch.eam.fs.*looked in.*potentials"):
        LammpsEngine(["Al"], pair_style="eam/fs", pair_coeff=["* * NoSuch.eam.fs Al"])
    with pytest.raises(EngineError, match="NoSuch.eam.fs"):
        AseEngine(["Al"], calculator="EAM", kwargs={"potential": "NoSuch.eam.fs"})


def test_potential_file_relative_to_base_dir(tmp_path):
    shutil.copy(potentials_dir() / "Al_mm.eam.fs", tmp_path / "mine.eam.fs")
    eng = LammpsEngine(["Al"], pair_style="eam/fs", pair_coeff=["* * mine.eam.fs Al"],
                       base_dir=tmp_path)
    assert eng.pair_coeff == [f"* * {(tmp_path / 'mine.eam.fs').resolve()} Al"]


def test_unknown_ase_calculator():
    with pytest.raises(EngineError, match="EMT.*LennardJones.*GPAW"):
        AseEngine(["Al"], calculator="NoSuchCalc")
    with pytest.raises(EngineError, match="no_such_pkg"):
        AseEngine(["Al"], calculator="no_such_pkg.calc:Calc")


def test_symbol_not_in_elements(lmp_al, emt):
    atoms = perturbed_fcc((1, 1, 1))
    atoms.symbols[0] = "Ni"
    with pytest.raises(EngineError, match="Ni"):
        lmp_al.label(atoms)
    with pytest.raises(EngineError, match="Ni"):
        emt.label(atoms)


def test_make_engine():
    eng = make_engine({"engine": "lammps", **AL_EAM}, ["Al"])
    assert isinstance(eng, LammpsEngine) and eng.describe()["engine"] == "lammps"
    eng = make_engine({"engine": "ase", "calculator": "emt"}, ["Al"])
    assert isinstance(eng, AseEngine) and eng.name == "ase:emt"
