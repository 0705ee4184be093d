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


def test_write_block_fills_an_empty_block_and_leaves_the_next_one(tmp_path):
    """An empty block is filled in place; the text and the blocks after it stay as they were
    (a greedy pattern once swallowed everything up to the next block's end marker)."""
    write_block = _script("readme_numbers").write_block
    doc = tmp_path / "doc.md"
    body = "# t\n\n<!-- numbers:a -->\n<!-- /numbers -->\n\ntext between\n\n<!-- numbers:b -->\n<!-- /numbers -->\n"
    doc.write_text(body)
    assert write_block(doc, "<!-- numbers:a -->", "<!-- /numbers -->", "A1\nA2", False, "a", tmp_path) == 0
    assert doc.read_text() == body.replace("<!-- numbers:a -->\n", "<!-- numbers:a -->\nA1\nA2\n")
    assert write_block(doc, "<!-- numbers:a -->", "<!-- /numbers -->", "A3", False, "a", tmp_path) == 0
    assert doc.read_text() == body.replace("<!-- numbers:a -->\n", "<!-- numbers:a -->\nA3\n")
    assert write_block(doc, "<!-- numbers:a -->", "<!-- /numbers -->", "A3", True, "a", tmp_path) == 0
    assert write_block(doc, "<!-- numbers:c -->", "<!-- /numbers -->", "C", True, "c", tmp_path) == 2
