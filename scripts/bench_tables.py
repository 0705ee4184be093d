#!/usr/bin/env python3
"""The speed tables of docs/lammps.md and README.md, written from the benchmarks' JSON (never
copied by hand).

    python scripts/bench_tables.py            # print the docs/lammps.md tables
    python scripts/bench_tables.py --write    # replace them in docs/lammps.md and README.md
    python scripts/bench_tables.py --check    # exit 1 if either differs

README.md's block ``<!-- bench:summary -->`` takes the headline ratios of the three runs
(``benchmark-md.json``, ``benchmark-descriptors.json``, ``benchmark-training.json``).
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


def readme_summary(md: dict, desc: dict, train: dict) -> str:
    """One table of the headline ratios (README), from the three quoted benchmark runs."""
    rows = ["| benchmark (one thread) | meltpot | peer in the same run | ratio |", "|---|---|---|---|"]
    res = {(r["n_atoms"], r["variant"], r["tool"], r["cutoff"], r["dtype"]): r for r in desc["results"]}
    sizes = sorted({k[0] for k in res})
    for variant in ("narrow", "wide"):
        ours = [res.get((n, variant, "meltpot", "cosine", "float64")) for n in sizes]
        peer = [res.get((n, variant, "dscribe", "cosine", "float64")) for n in sizes]
        if all(ours) and all(peer):
            ratios = " / ".join("%.1f" % (a["env_per_s"] / b["env_per_s"]) for a, b in zip(ours, peer))
            rows.append(f"| `descriptors.py`: al-thesis set, {variant} angular, cosine cutoff, float64, "
                        f"{' / '.join(map(str, sizes))} atoms | {' / '.join(_num(r['env_per_s']) for r in ours)} env/s | "
                        f"DScribe {' / '.join(_num(r['env_per_s']) for r in peer)} | "
                        f"{ratios}× |")
    def fastest(mode):
        runs = [r for r in train["results"] if r["mode"] == mode]
        return max(runs, key=lambda r: r["configs_per_s"]) if runs else None

    store, pos = fastest("energy+forces/store"), fastest("energy+forces/positions")   # best batch of each
    if store and pos:
        rows.append(f"| `training.py`: energy + forces, 256-atom Al, derivative store | {_num(store['configs_per_s'])} "
                    f"configs/s | through positions {_num(pos['configs_per_s'])} | "
                    f"{store['configs_per_s'] / pos['configs_per_s']:.0f}× |")
    large = md["runs"][-1]
    for name, p in large["potentials"].items():
        if name.startswith("meltpot:") and "/" not in name:
            model = name.split(":", 1)[1]
            nf = md["models"].get(model, {}).get("n_features")
            rows.append(f"| `md.py`: liquid Al, {large['atoms']} atoms, pair style meltpot, `{model}` ({nf} functions) | "
                        f"{_num(p['atom_steps_per_s'])} atom-steps/s | SNAP {_num(large['potentials']['snap']['atom_steps_per_s'])} | "
                        f"{p['vs_snap']:.2f}× SNAP |")
    return "\n".join(rows)


BLOCKS = {"md": ("benchmark-md.json", md_table), "descriptors": ("benchmark-descriptors.json", descriptors_table)}
README = ROOT / "README.md"
SUMMARY_FILES = ("benchmark-md.json", "benchmark-descriptors.json", "benchmark-training.json")


def _replace(text: str, key: str, body: str, where: Path) -> str:
    pattern = re.compile(rf"(<!-- bench:{key} -->\n)(?:.*?\n)??(<!-- /bench -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{where}: no <!-- bench:{key} --> … <!-- /bench --> block")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def render(text: str) -> str:
    """docs/lammps.md with its blocks written from the JSON."""
    for key, (name, fn) in BLOCKS.items():
        path = RESULTS / name
        if path.exists():
            text = _replace(text, key, fn(json.loads(path.read_text())), DOC)
    return text


def render_readme(text: str) -> str:
    """README.md with its summary block written from the JSON."""
    data = [json.loads((RESULTS / name).read_text()) for name in SUMMARY_FILES]
    return _replace(text, "summary", readme_summary(*data), README)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    if args.check or args.write:
        pairs = [(DOC, render), (README, render_readme)]
        differ = []
        for path, fn in pairs:
            old = path.read_text()
            new = fn(old)
            if new != old:
                differ.append(path.name)
                if args.write:
                    path.write_text(new)
                    print(f"wrote {path}")
        if args.check:
            print("the tables match the benchmark JSON" if not differ else f"tables differ in {', '.join(differ)}")
            return 1 if differ else 0
    else:
        for key, (name, fn) in BLOCKS.items():
            if (RESULTS / name).exists():
                print(fn(json.loads((RESULTS / name).read_text())), "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
