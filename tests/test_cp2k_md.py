"""CP2K's own MD (``dft.md_driver: native``) against ASE's integrators through ``cp2k_shell``:
same trajectory, same frame tags, refusals before any work, a killed run resumed.

4-atom SZV cells and a few steps: cheap enough for CI's 2 cores. Outside CI a missing CP2K
skips the tests that run it; in CI (CI=true) it fails them (see tests/test_dft_engines.py).
"""

import os
import shutil

import numpy as np
import pytest
from ase.build import bulk

from meltpot.config import validate_config
from meltpot.data.io import read_frames
from meltpot.errors import ConfigError
from meltpot.reference import MDSegment, make_engine
from meltpot.sampling.checkpoint import checkpoint_path, partial_path
from meltpot.sampling.grid import expand_states
from meltpot.sampling.protocols import sample_unit

from helpers import Killed, KilledAfter

pytestmark = pytest.mark.dft


def _require_cp2k():
    missing = [exe for exe in ("cp2k", "cp2k_shell") if shutil.which(exe) is None]
    if missing:
        msg = f"{', '.join(missing)} not installed (`make dft` installs CP2K)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + ": CI installs it, so this is an error")
        pytest.skip(msg)


DFT = {"xc": "PBE", "ecut": 4000, "basis": "SZV-MOLOPT-SR-GTH", "smearing": {"width": 0.1},
       "scf": {"eps_scf": 1e-8}}


def _engine(driver, folder):
    return make_engine({"engine": "cp2k", "dft": dict(DFT, md_driver=driver)}, ["Al"], workdir=folder)


def _al4():
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.positions[0] += [0.12, -0.05, 0.03]
    return atoms


def test_native_nve_follows_the_ase_trajectory_and_tags_its_frames(tmp_path):
    """Same start, same seeded velocities, both velocity Verlet on the same FORCE_EVAL: the
    trajectories agree to what the SCF tolerance and CP2K's printed digits leave.

    EPS_SCF 1e-8 makes the forces of the two drivers (different wavefunction guesses) differ by
    ~1e-6 eV/Å; over 4 steps of 2 fs that moves an Al atom by ~δF·t²/m ≈ 1e-9 Å. CP2K prints
    positions to 1e-10 Å and energies to 1e-10 Ha. Tolerances 1e-6 Å, 1e-5 eV, 1e-4 eV/Å and
    1e-5 eV/Å³ are far above that and far below what a wrong mass, timestep or velocity unit
    gives (≥ 1e-3 Å after one step).
    """
    _require_cp2k()
    seg = MDSegment(ensemble="nve", temperature=1000.0, steps=4, timestep=0.002, sample_every=2,
                    velocity_seed=4, label="nve")
    runs = {d: list(_engine(d, tmp_path / d).md(_al4(), [seg], seed=1)) for d in ("ase", "native")}
    assert [i for i, _ in runs["native"]] == [i for i, _ in runs["ase"]] == [0, 0]
    for (_, a), (_, b) in zip(runs["ase"], runs["native"]):
        for key in ("step", "time", "segment", "engine", "units", "scf_converged"):
            assert b.info[key] == a.info[key], key
        assert b.info["md_driver"] == "native" and b.info["scf_iterations"] > 0
        assert b.info["T_inst"] == pytest.approx(a.info["T_inst"], rel=1e-6)
        np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-6)
        np.testing.assert_allclose(b.get_velocities(), a.get_velocities(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(b.get_forces(), a.get_forces(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(b.get_stress(), a.get_stress(), rtol=0, atol=1e-5)
        assert b.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-5)
    assert [f.info["step"] for _, f in runs["native"]] == [2, 4]
    # the walk really moved and the energy is conserved
    assert np.abs(runs["native"][-1][1].positions - _al4().positions).max() > 1e-3


def test_native_refuses_npt_and_ramps_before_running_cp2k(tmp_path):
    _require_cp2k()
    eng = _engine("native", tmp_path / "dft")
    for seg in (MDSegment(ensemble="npt", temperature=900.0, steps=2, timestep=0.002, sample_every=1),
                MDSegment(ensemble="nvt", temperature=900.0, temperature_stop=600.0, steps=2, timestep=0.002)):
        with pytest.raises(ConfigError, match="native"):
            next(iter(eng.md(_al4(), [seg], seed=1)))
    assert not (tmp_path / "dft" / "md").exists()


# ---------------------------------------------------------------- the config (no CP2K needed)
def _config(engine="cp2k", driver="native", state=None, **sampling):
    state = state or {"id": "liq", "phase": "liquid", "T": 1000, "density": 2.35}
    samp = {"n_atoms": 4, "melt_temperature": 2000, "melt_steps": 0, "equilibration_steps": 0,
            "production_steps": 4, "sample_every": 1, "states": [state]}
    samp.update(sampling)
    dft = dict(DFT, md_driver=driver)
    if engine == "gpaw":
        dft = {"md_driver": driver}
    return {"run_id": "t", "seed": 3, "units": "metal", "elements": ["Al"],
            "reference": {"engine": engine, "dft": dft}, "md": {"timestep": 0.002}, "sampling": samp}


@pytest.mark.parametrize("cfg,message", [
    (_config("gpaw"), "md_driver native is for cp2k only"),
    (_config(driver="lammps"), "lammps"),
    (_config(state={"id": "s", "phase": "fcc", "T": 300, "P": 0.0}), "is NPT"),
    (_config(melt_steps=10), "ramps the temperature"),
])
def test_bad_md_driver_settings_fail_at_validation(cfg, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_md_driver_defaults():
    from meltpot.reference.dft import DEFAULT_MD_DRIVER, DftSettings

    assert DftSettings.from_config("gpaw", {}).md_driver == "ase"
    assert DftSettings.from_config("cp2k", {}).md_driver == DEFAULT_MD_DRIVER["cp2k"]
    validate_config(_config(driver="ase", melt_steps=10))     # the ASE driver ramps


# ---------------------------------------------------------------- kill and resume
def test_killed_native_run_keeps_its_frames_and_resumes(tmp_path):
    """Killed after 2 of 4 frames: the 2 frames stay byte for byte, the rerun restarts CP2K from
    the restart file of frame 2 (positions, velocities, Nosé–Hoover chain) and its frames 3, 4
    match an uninterrupted run to the SCF tolerance (the SCF starts again from the atomic guess)."""
    _require_cp2k()
    cfg = validate_config(_config(production_steps=4))
    unit = expand_states(cfg)[0]
    full = tmp_path / "full.extxyz"
    sample_unit(cfg, unit, make_engine(cfg["reference"], ["Al"], workdir=tmp_path / "a"), full, progress=False)
    out = tmp_path / "resumed.extxyz"
    with pytest.raises(Killed):
        sample_unit(cfg, unit, KilledAfter(make_engine(cfg["reference"], ["Al"], workdir=tmp_path / "b"), 2),
                    out, progress=False)
    assert checkpoint_path(out).exists()
    written = partial_path(out).read_bytes()
    summary = sample_unit(cfg, unit, make_engine(cfg["reference"], ["Al"], workdir=tmp_path / "b"), out,
                          progress=False)
    assert summary["resumed_after_frames"] == 2
    assert out.read_bytes().startswith(written)
    a, b = read_frames(full), read_frames(out)
    assert [f.info["step"] for f in b] == [1, 2, 3, 4] == [f.info["step"] for f in a]
    for fa, fb in zip(a, b):
        np.testing.assert_allclose(fb.positions, fa.positions, rtol=0, atol=1e-6)
        np.testing.assert_allclose(fb.get_forces(), fa.get_forces(), rtol=0, atol=1e-4)
        assert fb.get_potential_energy() == pytest.approx(fa.get_potential_energy(), abs=1e-5)
        assert fb.info["md_driver"] == "native"
