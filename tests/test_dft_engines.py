"""GPAW and CP2K as reference engines, for real: single points checked by finite differences,
SCF failures, a few steps of 32-atom AIMD through the sampling protocol.

`make dft` installs both codes. Outside CI a missing code skips these tests with the reason;
in CI (CI=true) it fails them, because CI installs the codes.
"""

import os
import shutil

import numpy as np
import pytest
from ase.build import bulk

from meltpot.config import validate_config
from meltpot.errors import ConfigError
from meltpot.reference import make_engine
from meltpot.reference.dft import DftSettings, ScfNotConverged
from meltpot.sampling.grid import expand_states
from meltpot.sampling.protocols import sample_unit

pytestmark = pytest.mark.dft


def _require(code):
    have = shutil.which("cp2k_shell") is not None if code == "cp2k" else _importable("gpaw")
    if not have:
        msg = f"{code} not installed (`make dft` installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + ": CI installs it, so this is an error")
        pytest.skip(msg)


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


GPAW = {"engine": "gpaw", "dft": {"xc": "PBE", "ecut": 250, "kpts": [2, 2, 2],
                                  "smearing": {"method": "fermi-dirac", "width": 0.1},
                                  "scf": {"energy": 1e-7, "density": 1e-6}}}
CP2K = {"engine": "cp2k", "dft": {"xc": "PBE", "ecut": 4000, "basis": "SZV-MOLOPT-SR-GTH",
                                  "smearing": {"width": 0.1}, "scf": {"eps_scf": 1e-8}}}


def _al4():
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.positions[0] += [0.12, -0.05, 0.03]
    return atoms


@pytest.mark.parametrize("spec", [GPAW, CP2K], ids=["gpaw", "cp2k"])
def test_single_point_force_is_the_derivative_of_the_labelled_energy(spec, tmp_path):
    """4-atom Al: the labelled (force-consistent) energy's central difference equals the force."""
    _require(spec["engine"])
    eng = make_engine(spec, ["Al"], workdir=tmp_path / "dft")
    atoms = _al4()
    lab = eng.label(atoms)
    f = lab.get_forces()
    assert lab.info["scf_converged"] is True and lab.info["scf_iterations"] > 0
    assert lab.info["engine"] == spec["engine"]
    np.testing.assert_allclose(f.sum(axis=0), 0.0, atol=2e-3)
    assert abs(f[0, 0]) > 0.1           # the displaced atom feels a real force
    h = 0.005
    e = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions[0, 0] += sign * h
        e.append(eng.label(moved).get_potential_energy())
    fd = -(e[0] - e[1]) / (2 * h)
    assert fd == pytest.approx(f[0, 0], abs=5e-3, rel=1e-2), (fd, f[0, 0])
    if spec["engine"] == "gpaw":     # smearing: the σ→0 energy is kept beside the label
        assert lab.info["energy_zero"] != lab.get_potential_energy()
    assert lab.get_stress().shape == (6,)


@pytest.mark.parametrize("spec", [GPAW, CP2K], ids=["gpaw", "cp2k"])
def test_unconverged_scf_is_reported(spec, tmp_path):
    _require(spec["engine"])
    bad = {"engine": spec["engine"], "dft": dict(spec["dft"], scf={"max_iterations": 2})}
    eng = make_engine(bad, ["Al"], workdir=tmp_path / "dft")
    with pytest.raises(ScfNotConverged, match="not converged within 2"):
        eng.label(_al4())


@pytest.mark.parametrize("spec,steps", [(GPAW, 3), (CP2K, 3)], ids=["gpaw", "cp2k"])
def test_aimd_32_atoms(spec, steps, tmp_path):
    """A few steps of 32-atom liquid-density Al AIMD through the sampling protocol (Γ point)."""
    _require(spec["engine"])
    dft = dict(spec["dft"], kpts="gamma", scf={})
    if spec["engine"] == "gpaw":
        dft["ecut"] = 200
    cfg = validate_config({
        "run_id": "t", "seed": 3, "units": "metal", "elements": ["Al"],
        "reference": {"engine": spec["engine"], "dft": dft}, "md": {"timestep": 0.002},
        "sampling": {"n_atoms": 32, "melt_temperature": 2000, "melt_steps": 0, "equilibration_steps": 0, "production_steps": steps,
                     "sample_every": 1, "states": [{"id": "liq", "phase": "liquid", "T": 1000, "density": 2.35}]}})
    unit = expand_states(cfg)[0]
    out = tmp_path / "liq.extxyz"
    eng = make_engine(cfg["reference"], cfg["elements"], cfg["units"], workdir=tmp_path / "dft")
    summary = sample_unit(cfg, unit, eng, out, progress=False)
    from meltpot.data.io import read_frames

    frames = read_frames(out)
    assert len(frames) == steps and summary["states"]["liq"]["frames"] == steps
    for fr in frames:
        assert len(fr) == 32 and fr.info["scf_converged"] and fr.info["engine"] == spec["engine"]
        assert np.isfinite(fr.get_forces()).all() and 300 < fr.info["T_inst"] < 2000
    e = [fr.get_potential_energy() for fr in frames]
    assert max(e) - min(e) < 0.5     # eV: a few fs of dynamics, not an explosion


# ---------------------------------------------------------------- typed settings (no DFT needed)
BASE = {"run_id": "t", "units": "metal", "elements": ["Al", "Ni"],
        "sampling": {"states": [{"id": "s", "phase": "fcc", "T": 300, "P": 0.0, "composition": {"Al": 1.0}}]}}


@pytest.mark.parametrize("dft,engine,message", [
    ({"magmoms": {"Ni": 0.6}}, "cp2k", "magmoms applies to gpaw only"),
    ({"smearing": {"method": "gaussian"}}, "cp2k", "'gaussian' is not available with cp2k"),
    ({"scf": {"eps_scf": 1e-6}}, "gpaw", "eps_scf not used by gpaw"),
    ({"magmoms": {"Ni": 0.6}}, "gpaw", "magmoms needs spin: true"),
    ({"magmoms": {"Cu": 0.6}, "spin": True}, "gpaw", "magmoms names Cu"),
    ({"kpts": [2, 2]}, "gpaw", "kpts"),
    ({"ecut": -1}, "gpaw", "ecut"),
    ({"basis": "DZVP-MOLOPT-SR-GTH"}, "gpaw", "basis applies to cp2k only"),
])
def test_bad_dft_settings_fail_before_any_work(dft, engine, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(dict(BASE, reference={"engine": engine, "dft": dft}))


def test_dft_block_needs_a_dft_engine_and_metal_units():
    with pytest.raises(ConfigError, match="dft is for engine gpaw or cp2k"):
        validate_config(dict(BASE, reference={"engine": "ase", "calculator": "EMT", "dft": {}}))
    with pytest.raises(ConfigError, match="needs units: metal"):
        validate_config(dict(BASE, units="lj", reference={"engine": "gpaw", "dft": {}}))
    with pytest.raises(ConfigError, match="dft"):
        validate_config(dict(BASE, reference={"engine": "cp2k"}))


def test_settings_become_calculator_arguments():
    from meltpot.reference.dft import cp2k_input, gpaw_kwargs

    s = DftSettings.from_config("gpaw", {"ecut": 280, "kpts": [3, 3, 3], "spin": True, "magmoms": {"Ni": 0.6},
                                         "smearing": {"method": "methfessel-paxton", "width": 0.2},
                                         "scf": {"max_iterations": 40, "energy": 1e-6}})
    kw = gpaw_kwargs(s, None)
    assert kw["mode"] == {"name": "pw", "ecut": 280.0} and kw["kpts"] == {"size": (3, 3, 3), "gamma": True}
    assert kw["occupations"] == {"name": "methfessel-paxton", "width": 0.2, "order": 1}
    assert kw["maxiter"] == 40 and kw["convergence"] == {"energy": 1e-6} and kw["spinpol"] is True
    c = DftSettings.from_config("cp2k", {"smearing": {"width": 0.1}, "kpts": [2, 2, 2], "spin": True})
    text = cp2k_input(c)
    from ase import units

    t_el = float(text.split("ELECTRONIC_TEMPERATURE [K]")[1].split()[0])
    assert t_el == pytest.approx(0.1 / units.kB)      # 1160 K
    assert "MONKHORST-PACK 2 2 2" in text and "UKS TRUE" in text and "ADDED_MOS 20" in text


# ---------------------------------------------------------------- the labelling workflow with GPAW
def test_labelling_workflow_with_gpaw_labels_picked_frames_in_chunk_jobs(tmp_path):
    """The al-dft preset at test size through Snakemake: the EAM samples two states in LAMMPS,
    4 frames are picked and labelled by GPAW in 2 chunk jobs, one 4-atom AIMD state adds its own
    frames; the dataset holds exactly those frames with GPAW's labels. A lost chunk reruns alone."""
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd
    import yaml

    from meltpot.data.io import read_frames

    _require("gpaw")
    root = Path(__file__).resolve().parents[1]
    for name in ("Snakefile", "workflow", "config", "report", "envs"):
        (tmp_path / name).symlink_to(root / name)
    binp = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{binp}:{os.environ['PATH']}", OMP_NUM_THREADS="1")
    cfg = yaml.safe_load((root / "config" / "presets" / "al-dft.yaml").read_text())
    cfg["run_id"] = "al-dft-test"
    cfg["reference"]["dft"].update(ecut=150, kpts="gamma", scf={"max_iterations": 60})
    cfg["labelling"].update(pick={"method": "every", "every": 2}, chunk_size=2)
    cfg["sampling"].update(n_atoms=4, melt_steps=50, equilibration_steps=50, production_steps=40, sample_every=20)
    cfg["sampling"]["states"] = [
        {"id": "fcc_300K", "phase": "fcc", "T": 300, "P": 0},
        {"id": "liquid_1500K", "phase": "liquid", "T": 1500, "density": 2.3},
        {"id": "aimd_1250K", "phase": "liquid", "T": 1250, "density": 2.3, "aimd": True,
         "equilibration_steps": 0, "production_steps": 2, "sample_every": 1}]
    cfg["validation"]["min_cell_width"] = None
    path = tmp_path / "al-dft-test.yaml"
    path.write_text(yaml.safe_dump(cfg))
    target = "results/al-dft-test/dataset/index.parquet"
    cmd = [str(binp / "snakemake"), target, "--cores", "2", "--configfile", str(path)]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "results" / "al-dft-test"
    picked = pd.read_csv(run / "labelling" / "picked" / "picked.csv")
    assert len(picked) == 2 and sorted(picked["state_id"]) == ["fcc_300K", "liquid_1500K"]
    labelled = [a for k in ("000",) for a in read_frames(run / "labelling" / "labelled" / f"chunk_{k}.extxyz")]
    assert len(labelled) == 2
    sampled = read_frames(run / "frames" / "fcc_300K.extxyz")
    for a in labelled:
        assert a.info["engine"] == "gpaw" and a.info["scf_converged"]
        assert a.info["sampler_energy"] != a.get_potential_energy()   # GPAW's energy, not the EAM's
    fcc = next(a for a in labelled if a.info["state_id"] == "fcc_300K")
    np.testing.assert_allclose(fcc.positions, sampled[fcc.info["sampled_index"]].positions, atol=1e-12)
    index = pd.read_parquet(run / "dataset" / "index.parquet")
    assert sorted(index["state_id"]) == ["aimd_1250K", "aimd_1250K", "fcc_300K", "liquid_1500K"]
    aimd = read_frames(run / "frames" / "aimd_1250K.extxyz")
    assert len(aimd) == 2 and all(a.info["engine"] == "gpaw" for a in aimd)
    # a lost chunk: its job alone runs again (no sampling, no picking, no other chunk)
    chunk = run / "labelling" / "labelled" / "chunk_000.extxyz"
    chunk.unlink()
    dry = subprocess.run([str(binp / "snakemake"), str(chunk.relative_to(tmp_path)), "-n", "--cores", "1",
                          "--configfile", str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    table = dict(line.split()[:2] for line in dry.stdout.splitlines()
                 if len(line.split()) == 2 and line.split()[1].isdigit())
    assert table.get("label_chunk") == "1" and table.get("total") == "1", dry.stdout


def test_lammps_stages_of_a_dft_run_use_the_lammps_sampler():
    from pathlib import Path

    from meltpot.config import check_lammps_stages, load_config
    from meltpot.md.potential import Potential, lammps_reference

    cfg = load_config(Path(__file__).resolve().parents[1] / "config" / "presets" / "al-dft.yaml")
    assert lammps_reference(cfg) is cfg["labelling"]["sampler"]
    assert Potential.from_reference(cfg).pair_style == "eam/fs"
    check_lammps_stages(cfg)
    raw = dict(BASE, reference={"engine": "gpaw", "dft": {}})
    with pytest.raises(ConfigError, match="validation_md: reference.engine = 'gpaw'.*need a LAMMPS potential"):
        check_lammps_stages(validate_config(raw))
    check_lammps_stages(validate_config(dict(raw, validation_md={"enabled": False})))
