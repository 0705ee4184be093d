#!/usr/bin/env python3
"""The README's numbers of the default run, written from a run folder (never copied by hand).

    python scripts/readme_numbers.py results/al-default            # print the paragraph
    python scripts/readme_numbers.py results/al-default --write    # replace it in README.md
    python scripts/readme_numbers.py results/al-default --check    # exit 1 if README.md differs

The paragraph sits between ``<!-- numbers:make-run -->`` and ``<!-- /numbers -->`` in README.md.
It reads the dataset index, the derivative store, the evaluation metrics, the λ path, the
selection comparison, the LAMMPS validation comparison and the per-rule benchmark timings
(``benchmarks/*.tsv``: wall seconds per job; the wall time of the whole run is the span from
the first job's start to the last job's end, taken from the files' times).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- numbers:make-run -->", "<!-- /numbers -->"


def _json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(x, nd=2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _stage_seconds(run: Path, pick=None) -> tuple[dict, float]:
    """Wall seconds per benchmarked job, and the span from the first job's start to the last
    job's end (a benchmark file is written when its job ends); ``pick(name)``: only those jobs."""
    out, starts, ends = {}, [], []
    for f in sorted((run / "benchmarks").rglob("*.tsv")):
        if pick is not None and not pick(f.relative_to(run / "benchmarks").with_suffix("").as_posix()):
            continue
        try:
            sec = float(pd.read_csv(f, sep="\t")["s"].iloc[-1])
        except (KeyError, IndexError, ValueError):
            continue
        name = f.relative_to(run / "benchmarks").with_suffix("").as_posix()
        out[name] = out.get(name, 0.0) + sec
        end = f.stat().st_mtime
        starts.append(end - sec)
        ends.append(end)
    return out, (max(ends) - min(starts)) if ends else 0.0


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def paragraph(run: Path) -> str:
    index = pd.read_parquet(run / "dataset" / "index.parquet")
    n_states = index["state_id"].nunique()
    metrics = _json(run / "evaluation" / "dense" / "metrics.json")["splits"]
    val, test = metrics["validation"], metrics["test"]
    store = _json(run / "logs" / "derivatives.json") or {}
    store_log = (run / "logs" / "derivatives.log")
    if not store and store_log.exists():
        lines = [ln for ln in store_log.read_text().splitlines() if ln.startswith("{")]
        store = json.loads(lines[-1]) if lines else {}
    path = pd.read_csv(run / "selection" / "agl" / "path.csv")
    chosen = _json(run / "selection" / "agl" / "chosen.json")
    comp = pd.read_csv(run / "selection" / "comparison" / "comparison.csv").set_index("set")
    n_full = int(path["n_full"].iloc[0]) if "n_full" in path else 22
    counts = " → ".join(str(int(n)) for n in [n_full] + list(path["n_total"])) if "n_total" in path else "?"
    refined = int(path["refined"].sum()) if "refined" in path else 0
    angular = f" ({int(comp.loc['agl', 'n_angular'])} angular)" if "agl" in comp.index else ""

    def rmse(name):
        if name not in comp.index:
            return "n/a"
        row = comp.loc[name]
        return f"{row['test_rmse_mean'] * 1e3:.2f} ± {row['test_rmse_std'] * 1e3:.2f}"

    def frmse(name):
        if name not in comp.index or "val_force_rmse_mean" not in comp:
            return "n/a"
        row = comp.loc[name]
        return f"{row['val_force_rmse_mean']:.3f} ± {row['val_force_rmse_std']:.3f}"

    stab = _json(run / "selection" / "stability" / "stability.json")
    seeds = ""
    if stab:
        others = ", ".join(f"{n} ({a} angular)" for n, a in zip(stab["n_features"][1:], stab["n_angular"][1:]))
        jac = ", ".join(f"{j:.2f}" for j in stab["jaccard_vs_first"][1:])
        seeds = (f" (the same path with {len(stab['path_seeds']) - 1} other seed{'s' if len(stab['path_seeds']) > 2 else ''} "
                 f"chose {others}; overlap of the kept sets {jac})")
    forces = (f"; validation force RMSE: full {frmse('full')}, AGL {frmse('agl')}, CUR {frmse('cur')}, "
              f"Pearson {frmse('pearson')} eV/Å") if "val_force_rmse_mean" in comp else ""

    parts = [
        f"`make run` runs the whole chain on a small scale: it samples the default Al states "
        f"({n_states}) with the Mendelev EAM reference in LAMMPS, validates every frame, writes the "
        f"dataset index and splits, computes the descriptor cache ({len(index)} frames) and the "
        f"derivative store ∂G/∂r of {store.get('train_frames', '?')} training and "
        f"{store.get('validation_frames', '?')} validation frames "
        f"({store.get('bytes', 0) / 1e9:.2f} GB, {store.get('bytes_per_frame', 0) / 1e6:.1f} MB per frame), "
        f"trains the dense 22-10-10-1 HDNNP on energies and forces and evaluates it (energy RMSE "
        f"validation {_fmt(val['energy_rmse'])}, test {_fmt(test['energy_rmse'])} meV/atom; force RMSE "
        f"validation {_fmt(val.get('force_rmse'), 3)}, test {_fmt(test.get('force_rmse'), 3)} eV/Å), runs the "
        f"AGL λ path with the same loss ({counts} features in order of λ"
        f"{f', {refined} of the λ refining the largest drops' if refined else ''}), chooses "
        f"{chosen['n_features']}{angular} by the "
        f"validation {chosen.get('metric', 'energy_rmse').replace('_', ' ')}{seeds}, trains the Pearson and CUR "
        f"baselines at that count and compares {int(comp['seeds'].iloc[0])} seeds per set (test energy RMSE: "
        f"full {rmse('full')}, AGL {rmse('agl')}, CUR {rmse('cur')}, Pearson {rmse('pearson')} meV/atom{forces})",
    ]
    vcomp = _json(run / "md" / "validation" / "comparison" / "comparison.json")
    if vcomp:
        parts.append(validation_sentence(vcomp))
    secs, span = _stage_seconds(run)
    if secs:
        parts.append(f"from the first job's start to the last one's end the run took {_minutes(span)} "
                     f"on this 2-core machine, two jobs at a time; the jobs took {_minutes(sum(secs.values()))} "
                     f"in all (sampling {_minutes(sum(v for k, v in secs.items() if k.startswith('sample/')))}, "
                     f"descriptors {_minutes(secs.get('descriptors', 0))}, derivative store "
                     f"{_minutes(secs.get('derivatives', 0))}, training "
                     f"{_minutes(secs.get('train_dense', 0))}, λ path "
                     f"{_minutes(sum(v for k, v in secs.items() if k.startswith('select_lambda')))}, comparison "
                     f"{_minutes(secs.get('select_compare', 0))}, LAMMPS validation "
                     f"{_minutes(sum(v for k, v in secs.items() if k.startswith('md_validation')))})")
    return "; ".join(parts) + "."


def validation_sentence(comp: dict) -> str:
    """The LAMMPS validation verdicts (md/validation/comparison/comparison.json)."""
    verdicts = comp.get("verdicts") or {}
    if not verdicts:
        checks = comp.get("checks", {})
        stable = all(c.get("stable") for c in checks.values())
        return "then runs the EAM and the model in LAMMPS and compares them (" + ("stable" if stable else "unstable") + ")"
    bits = []
    for name, v in verdicts.items():
        if not isinstance(v, dict) or "pass" not in v:
            continue
        value, word = v.get("value"), v.get("verdict") or ("pass" if v["pass"] else "fail")
        shown = f"{value:.3g}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"
        if v.get("interval"):
            lo, hi = v["interval"]
            shown += f" ({v.get('sigma_threshold', 2):g}σ interval {lo:.3g} … {hi:.3g}, limit ±{v['threshold']:g}: {word})"
        else:
            shown += f" ({word})"
        bits.append(f"{name} {shown}")
    n = comp.get("replicas") or comp.get("n_replicas")
    head = f"then runs the EAM and the model in LAMMPS ({n} replicas each) and compares them: " if n else \
        "then runs the EAM and the model in LAMMPS and compares them: "
    outcome = comp.get("outcome")
    tail = f"; overall {outcome}" if outcome else ""
    if outcome == "inconclusive":
        tail += (" (the replicas are too few or too short to resolve the tolerances; "
                 "config/presets/al-validation-full.yaml runs ones that do)")
    return head + ", ".join(bits) + tail


def main(argv=None) -> int:
    return results_section_main(argv, __doc__.splitlines()[0], "results/al-default", START, END, paragraph,
                                "the numbers", doc=("--readme", ROOT / "README.md"))


def results_section_main(argv, description: str, example: str, start: str, end: str, section, what: str,
                         on_write=None, doc=("--doc", ROOT / "docs" / "results.md")) -> int:
    """The command line of a numbers script: RUN [--doc FILE] [--write | --check]; prints
    ``section(run)``, or writes it between the markers of the document (``on_write(run)`` first:
    figures). ``doc``: the option naming the document and its default."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("run", type=Path, help=f"run folder, e.g. {example}")
    p.add_argument(doc[0], dest="doc", type=Path, default=doc[1])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true")
    g.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    text = section(args.run)
    if not (args.write or args.check):
        print(text)
        return 0
    if args.write and on_write is not None:
        on_write(args.run)
    return write_block(args.doc, start, end, text, args.check, what, args.run)


def span_sentence(run: Path, pick=None, what: str = "") -> tuple[dict, str]:
    """(job seconds by benchmark name, the sentence on the wall time from the first job's start to
    the last one's end); no benchmarks: ({}, ""). ``pick``/``what``: only those jobs, so named
    (a run folder extended later, e.g. by an MD stage, keeps the span of its first part)."""
    secs, span = _stage_seconds(run, pick)
    if not secs:
        return {}, ""
    return secs, (f"Wall time{what} from the first job's start to the last one's end: {_minutes(span)} on this "
                  "2-core machine (two jobs at a time)")


def write_block(path: Path, start: str, end: str, text: str, check: bool, what: str, run: Path) -> int:
    """Put ``text`` between the marker lines ``start`` and ``end`` of ``path`` (``check``: only
    compare, exit status 1 when it differs). Exit status 2 when the markers are missing."""
    doc = path.read_text()
    pattern = re.compile(re.escape(start) + r"\n(?:.*?\n)??" + re.escape(end), re.S)   # ??: an empty block stays empty
    if not pattern.search(doc):
        print(f"{path}: no {start} … {end} block", file=sys.stderr)
        return 2
    new = pattern.sub(lambda m: f"{start}\n{text}\n{end}", doc)
    if check:
        if new != doc:
            print(f"{path}: {what} differ from {run}; run with --write", file=sys.stderr)
            return 1
        return 0
    path.write_text(new)
    print(f"{path}: {what} written from {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
