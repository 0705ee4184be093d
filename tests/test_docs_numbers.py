"""Numbers quoted in the docs come from files, not from hands: the speed tables of README.md and
docs/lammps.md equal what scripts/bench_tables.py writes from docs/results/benchmark-*.json."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_tables_match_their_json():
    assert _script("bench_tables").main(["--check"]) == 0
