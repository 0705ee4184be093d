#!/usr/bin/env python3
"""The speed tables of docs/lammps.md, written from the benchmarks' JSON (never copied by hand).

    python scripts/bench_tables.py            # print the tables
    python scripts/bench_tables.py --write    # replace them in docs/lammps.md
    python scripts/bench_tables.py --check    # exit 1 if docs/lammps.md differs

``docs/results/benchmark-md.json`` (a copy of ``benchmarks/md.py``'s output) fills the block
between ``<!-- bench:md -->`` and ``<!-- /bench -->``; ``docs/results/benchmark-descriptors.json``
(``benchmarks/descriptors.py``) the block between ``<!-- bench:descriptors -->`` and
``<!-- /bench -->``. (``benchmarks/results/`` is not versioned: copy a run you quote there.)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "lammps.md"
RESULTS = ROOT / "docs" / "results"


def _num(x: float) -> str:
    """Three significant digits, thousands separated by a thin space (as the docs write them)."""
    v = float(f"{x:.3g}")
    return f"{v:,.0f}".replace(",", " ") if v >= 100 else f"{v:.3g}"


def md_table(d: dict) -> str:
    sizes = [r["atoms"] for r in d["runs"]]
    names = list(d["runs"][-1]["potentials"])
    head = "| potential | " + " | ".join(f"{n} atoms" for n in sizes) + " | vs SNAP (" + " / ".join(map(str, sizes)) + ") |"
    lines = [head, "|---" * (len(sizes) + 2) + "|"]
    for name in names:
        rows = [r["potentials"].get(name) for r in d["runs"]]
        rates = " | ".join("—" if r is None else _num(r["atom_steps_per_s"]) for r in rows)
        snap = " / ".join("—" if r is None else f"{r['vs_snap']:.2f}" for r in rows)
        label = name
        if name.startswith("meltpot:"):
            model = name.split(":", 1)[1].split("/")[0]
            nf = d["models"].get(model, {}).get("n_features")
            label = f"{name} ({nf} functions)" if nf else name
        lines.append(f"| {label} | {rates} | {snap} |")
    out = ["atom-steps/s, one thread unless `/mpiN`, " + d.get("machine", "") + ":", "", *lines]
    extra = []
    for r in d["runs"]:
        for name, p in r["potentials"].items():
            if "vs_one_rank" in p:
                extra.append(f"{name} at {r['atoms']} atoms: {p['vs_one_rank']:.2f}× one rank")
            if "vs_double" in p:
                extra.append(f"{name} at {r['atoms']} atoms: {p['vs_double']:.2f}× double precision")
    if d.get("small_vs_large"):
        extra.append("throughput at the smallest size / the largest: " + ", ".join(
            f"{k} {v:.2f}" for k, v in d["small_vs_large"].items() if k.startswith("meltpot")))
    f = d.get("single_vs_double_forces")
    if f:
        extra.append(f"single vs double forces ({f['atoms']} atoms): RMS {f['rms_eV_per_A']:.2g} eV/Å "
                     f"({f['rms_relative']:.2g} of the force RMS), largest {f['max_abs_eV_per_A']:.2g} eV/Å")
    for n in d.get("nve", []) if isinstance(d.get("nve"), list) else [d["nve"]] if d.get("nve") else []:
        extra.append(f"NVE {n['model']} ({n.get('precision', 'double')}), {n['atoms']} atoms, {n['steps']} steps of "
                     f"{n['timestep_ps'] * 1000:g} fs at {n['T_mean_K']:.0f} K: drift {n['drift_meV_per_atom_per_ps']:.2g} "
                     f"meV/atom/ps, RMS fluctuation {n['rms_fluctuation_meV_per_atom']:.2g} meV/atom")
    if extra:
        out += [""] + [f"- {e}" for e in extra]
    return "\n".join(out)


def descriptors_table(d: dict) -> str:
    lines = ["| atoms | angular type | code | cutoff | dtype | environments/s | × DScribe |", "|---" * 7 + "|"]
    for r in d["results"]:
        lines.append(f"| {r['n_atoms']} | {r['variant']} | {r['tool']} | {r['cutoff']} | {r['dtype']} | "
                     f"{_num(r['env_per_s'])} | {r['ratio_vs_dscribe']:.2f} |")
    return "\n".join([f"one thread, median of {d['repeats']} calls, {d['machine']}:", "", *lines])


BLOCKS = {"md": ("benchmark-md.json", md_table), "descriptors": ("benchmark-descriptors.json", descriptors_table)}


def render(text: str) -> str:
    for key, (name, fn) in BLOCKS.items():
        path = RESULTS / name
        if not path.exists():
            continue
        body = fn(json.loads(path.read_text()))
        pattern = re.compile(rf"(<!-- bench:{key} -->\n)(?:.*?\n)??(<!-- /bench -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{DOC}: no <!-- bench:{key} --> … <!-- /bench --> block")
        text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    if args.check or args.write:
        old = DOC.read_text()
        new = render(old)
    if args.check:
        print("docs/lammps.md tables match the benchmark JSON" if new == old else "docs/lammps.md tables differ")
        return 0 if new == old else 1
    if args.write:
        DOC.write_text(new)
        print(f"wrote {DOC}")
    else:
        for key, (name, fn) in BLOCKS.items():
            if (RESULTS / name).exists():
                print(fn(json.loads((RESULTS / name).read_text())), "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
