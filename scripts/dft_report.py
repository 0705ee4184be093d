#!/usr/bin/env python3
"""The al-dft preset's results section of docs/results.md, written from its run folder.

    python scripts/dft_report.py results/al-dft            # print the section
    python scripts/dft_report.py results/al-dft --write    # replace it in docs/results.md
    python scripts/dft_report.py results/al-dft --check    # exit 1 if docs/results.md differs

The section sits between ``<!-- numbers:al-dft -->`` and ``<!-- /numbers:al-dft -->``. It reads the
labelling reports (labelling/labelled/chunk_*.json), the unit summaries, the dataset index, the
evaluation metrics, the chosen selection, the validation comparison (the DFT-trained model
against the EAM sampler) and the per-job benchmark timings.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_numbers import _fmt, _json, _minutes, results_section_main, span_sentence  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- numbers:al-dft -->", "<!-- /numbers:al-dft -->"


def _pm(stats: dict, key: str, scale: float = 1.0, nd: int = 3) -> str:
    m, s = stats["mean"].get(key), stats["std"].get(key)
    if m is None or not math.isfinite(m):
        return "n/a"
    return f"{m * scale:.{nd}f} ± {s * scale:.{nd}f}" if s is not None and math.isfinite(s) else f"{m * scale:.{nd}f}"


def labelling_lines(run: Path) -> list[str]:
    reports = [_json(p) for p in sorted((run / "labelling" / "labelled").glob("chunk_*.json"))]
    if not reports:
        return ["Labelling: not run yet."]
    n = sum(r["frames"] for r in reports)
    lab = sum(r["labelled"] for r in reports)
    dropped = [d for r in reports for d in r["dropped_frames"]]
    wall = sum(r["wall_s"] for r in reports)
    reused = [r for r in reports if r.get("reused_from")]
    wall_here = sum(r["wall_s"] for r in reports if not r.get("reused_from"))
    frames = []
    from meltpot.data.io import read_frames

    for p in sorted((run / "labelling" / "labelled").glob("chunk_*.extxyz")):
        if p.stat().st_size:
            frames += read_frames(p)
    its = [f.info.get("scf_iterations") for f in frames if f.info.get("scf_iterations")]
    per_state = pd.Series([f.info.get("state_id") for f in frames]).value_counts().sort_index()
    picked = run / "labelling" / "picked" / "picked.csv"
    n_picked = len(pd.read_csv(picked)) if picked.exists() else n
    n_chunks = len(list((run / "labelling" / "picked").glob("chunk_*.extxyz")))
    done = f"{len(reports)} of {n_chunks} chunk jobs done: " if len(reports) < n_chunks else ""
    out = [f"Labelling: {done}{lab} of the {n_picked} picked frames labelled by GPAW in {len(reports)} chunk jobs "
           f"({', '.join(f'{k} {v}' for k, v in per_state.items())}); {len(dropped)} dropped"
           + (f" ({'; '.join(sorted({d['error'][:80] for d in dropped}))})" if dropped else "")
           + f"; {wall / max(n, 1):.0f} s per single point (one core, {_minutes(wall)} of job time in all"
           + (f"; {len(reused)} chunks taken from `labelling.reuse`, computed by an earlier run here, "
              f"{len(reports) - len(reused)} computed in this run in {_minutes(wall_here)}" if reused else "") + ")"
           + (f", {sum(its) / len(its):.1f} SCF iterations on average" if its else "") + "."]
    return out


def aimd_lines(run: Path) -> list[str]:
    out = []
    for p in sorted((run / "frames").glob("*.summary.json")):
        s = _json(p)
        if not s["unit_id"].startswith("aimd"):
            continue
        n = sum(st["frames"] for st in s["states"].values())
        out.append(f"AIMD ({s['unit_id']}, {s['n_atoms']} atoms, melted and cooled by the EAM, then GPAW): "
                   f"{n} frames in {_minutes(s['wall_s'])}.")
    return out or ["AIMD: not run yet."]


def model_lines(run: Path) -> list[str]:
    m = _json(run / "evaluation" / "dense" / "metrics.json")
    if not m:
        return ["Training: not run yet."]
    val, test = m["splits"]["validation"], m["splits"]["test"]
    index = pd.read_parquet(run / "dataset" / "index.parquet")
    chosen = _json(run / "selection" / "agl" / "chosen.json") or {}
    return [f"Dataset: {len(index)} frames of {index['state_id'].nunique()} states. Dense 22-10-10-1 model "
            f"trained on energies, forces and stress: energy RMSE validation {_fmt(val['energy_rmse'])}, test "
            f"{_fmt(test['energy_rmse'])} meV/atom; force RMSE validation {_fmt(val.get('force_rmse'), 3)}, "
            f"test {_fmt(test.get('force_rmse'), 3)} eV/Å"
            + (f"; the AGL selection kept {chosen['n_features']} of 22 functions." if chosen else ".")]


def validation_table(run: Path) -> list[str]:
    comp = _json(run / "md" / "validation" / "comparison" / "comparison.json")
    if not comp:
        return ["Validation MD: not run yet."]
    runs = comp["runs"]
    ref, mod = runs["reference"], runs["model"]
    rows = [("density (g/cm³)", "density", 1.0, 3), ("D (Å²/ps)", "D", 1.0, 3),
            ("g(r) first peak position (Å)", "g_peak_r", 1.0, 3), ("g(r) first peak height", "g_peak", 1.0, 3),
            ("coordination number", "cn", 1.0, 2), ("closest approach (Å)", "r_min", 1.0, 2)]
    T = ref["mean"].get("T")
    lines = [f"Validation MD ({comp.get('n_replicas', '?')} replicas of {ref.get('n_atoms', '?')} atoms each, "
             f"mean T {T:.0f} K): the DFT-trained model against the EAM it was sampled with, means ± standard "
             "deviation over the replicas:", "", "| | EAM (Mendelev) | model trained on GPAW labels | Δ |",
             "|---|---|---|---|"]
    for label, key, scale, nd in rows:
        a, b = ref["mean"].get(key), mod["mean"].get(key)
        rel = f"{(b / a - 1) * 100:+.1f} %" if a and b and math.isfinite(a) and math.isfinite(b) else ""
        lines.append(f"| {label} | {_pm(ref, key, scale, nd)} | {_pm(mod, key, scale, nd)} | {rel} |")
    return lines


def timing_line(run: Path) -> str:
    secs, head = span_sentence(run)
    if not secs:
        return ""

    def part(prefix):
        return sum(v for k, v in secs.items() if k.startswith(prefix))

    return (f"{head}; job time by stage: EAM sampling {_minutes(part('sample/') - part('sample/aimd'))}, "
            f"AIMD {_minutes(part('sample/aimd'))}, GPAW labelling {_minutes(part('label/'))}, descriptors and "
            f"derivative store {_minutes(secs.get('descriptors', 0) + secs.get('derivatives', 0))}, training "
            f"{_minutes(secs.get('train_dense', 0))}, selection {_minutes(part('select'))}, validation MD "
            f"{_minutes(part('md_validation'))}.")


def section(run: Path) -> str:
    lines = labelling_lines(run) + aimd_lines(run) + model_lines(run) + [""] + validation_table(run)
    t = timing_line(run)
    return "\n".join(lines + ([" ", t] if t else [])).replace("\n \n", "\n\n")


def main(argv=None) -> int:
    return results_section_main(argv, __doc__.splitlines()[0], "results/al-dft", START, END, section,
                                "the al-dft numbers")


if __name__ == "__main__":
    sys.exit(main())
