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


def test_conda_env_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "envs" / "meltpot.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(p for p in pip if not p.startswith("-e")) == sorted(deps)
    assert "-e .." in pip  # the project itself, from the checkout


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
