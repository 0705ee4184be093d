#!/usr/bin/env python3
"""The al-active preset's results section of docs/results.md, written from its run folder.

    python scripts/active_report.py results/al-active            # print the section
    python scripts/active_report.py results/al-active --write    # replace it in docs/results.md
    python scripts/active_report.py results/al-active --check    # exit 1 if docs/results.md differs

The section sits between ``<!-- numbers:al-active -->`` and ``<!-- /numbers:al-active -->``. It
reads the loop's table (active/iterations.csv), the exploration records of the last iteration,
the validation comparison of the final committee against the EAM, the per-job timings, and the
default config's state grid (the hand-designed data it is compared with).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_numbers import _fmt, _json, _minutes, results_section_main, span_sentence  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- numbers:al-active -->", "<!-- /numbers:al-active -->"


def hand_grid() -> tuple[int, int, int]:
    """(states, frames, atom environments) the default config's sampling produces."""
    from meltpot.config import load_config
    from meltpot.sampling.grid import expand_states
    from meltpot.sampling.labelling import unit_frame_counts

    cfg = load_config(ROOT / "config" / "config.yaml")
    n_states = sum(len(u.steps) for u in expand_states(cfg))
    frames = sum(unit_frame_counts(cfg).values())
    return n_states, frames, frames * cfg["sampling"]["n_atoms"]


def run_config(run: Path) -> dict:
    """The run's config (``<run>/config.yaml``, as the workflow wrote it)."""
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


def iteration_lines(run: Path) -> list[str]:
    path = run / "active" / "iterations.csv"
    if not path.exists():
        return ["The loop has not finished yet."]
    t = pd.read_csv(path)
    al = run_config(run)["active_learning"]
    above = al.get("converged_deviation") or al["trust_lo"]
    lines = [f"| iteration | frames in data | explored | accurate | candidates | kept out | above {above:g} eV/Å | "
             "failed runs | added | held-out E RMSE (meV/atom) | held-out F RMSE (eV/Å), members / mean |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in t.iterrows():
        lines.append(f"| {r['iteration']} | {r['dataset_frames']} | {r['explored']} | {r['accurate']} | "
                     f"{r['candidate']} ({100 * r['candidate_fraction']:.1f} %) | {r['kept_out']} | "
                     f"{100 * r['unconverged_fraction']:.1f} % | "
                     f"{r['failed_runs']} of {r['runs']} | {r['added']} | {_fmt(1000 * r['test_energy_rmse'])} | "
                     f"{_fmt(r['test_force_rmse'], 3)} / {_fmt(r['test_mean_force_rmse'], 3)} |")
    last = t.iloc[-1]
    n_atoms = _n_atoms(run)
    states, frames, atoms = hand_grid()
    labelled = int(t["dataset_frames"].iloc[-1])
    lines += ["", f"Converged means: fewer than {100 * al['converged_fraction']:g} % of the explored frames above "
                  f"{above:g} eV/Å (or kept out) and no failed run. "
                  f"The loop stopped after iteration {int(last['iteration'])} ({last['reason'].replace('_', ' ')}). "
                  f"Its final data: {labelled} frames of {n_atoms} atoms ({labelled * n_atoms} atom environments), "
                  f"{int(t['added'].sum())} of them labelled by the loop; the default run's {states} hand-designed "
                  f"states hold {frames} frames of 256 atoms ({atoms} atom environments)."]
    return lines


def _n_atoms(run: Path) -> int:
    index = pd.read_parquet(sorted((run / "active").glob("iter_*/dataset/index.parquet"))[-1])
    return int(index["n_atoms"].median())


def stability_lines(run: Path) -> list[str]:
    its = sorted((run / "active").glob("iter_*/explore"))
    if not its:
        return []
    recs = [json.loads(p.read_text()) for p in sorted(its[-1].glob("*/exploration.json"))]
    cfg = run_config(run)
    dt = cfg["md"]["timestep"]

    def part(r):
        if not r["error"]:
            return f"{r['job']} {r['status']}"
        why = "halted by the deviation" if "halt" in r["error"] else r["error"][:60]
        return (f"{r['job']} failed ({why} after {r['steps_run'] * dt:g} of {r['total_steps'] * dt:g} ps, "
                f"max σ_F {r['max_devi_f']:.2f} eV/Å)")

    parts = [part(r) for r in recs]
    ex = cfg["active_learning"]["exploration"]
    ramps = ", ".join(f"{j['id']} {j['T_start']:g} → {j['T_stop']:g} K in {j['steps'] * cfg['md']['timestep']:g} ps"
                      for j in ex["jobs"] if j["protocol"] == "ramp")
    return ["", f"Exploration with the final committee ({its[-1].parent.name}; {ex['n_atoms']} atoms, the committee "
                f"mean integrated; ramps: {ramps}): {', '.join(parts)}."]


def validation_lines(run: Path) -> list[str]:
    comp = _json(run / "md" / "validation" / "comparison" / "comparison.json")
    table = run / "md" / "validation" / "comparison" / "comparison.csv"
    if not comp or not table.exists():
        return ["", "Validation MD: not run yet."]
    t = pd.read_csv(table)
    cfg = run_config(run)
    vmd = cfg["validation_md"]
    size = f"{vmd['n_atoms']} atoms, {vmd['production_steps'] * cfg['md']['timestep']:g} ps of production"
    out = ["", f"Validation MD of the final committee against the EAM ({comp['n_replicas']} replicas per potential "
               f"and temperature, {size}; means ± standard deviation over replicas, Δ ± its standard error):", "",
           "| T | quantity | EAM | committee | Δ | verdict |", "|---|---|---|---|---|---|"]
    for _, r in t[t["quantity"].isin(["density", "pe_per_atom", "D", "gr_mse"])].iterrows():
        ref = f"{r['reference']:.4g} ± {r['reference_std']:.2g}" if pd.notna(r["reference"]) else ""
        mod = f"{r['model']:.4g} ± {r['model_std']:.2g}" if pd.notna(r["model"]) else ""
        if r["quantity"] in ("D", "density") and pd.notna(r["reference"]):
            delta = (f"{100 * r['model-reference'] / r['reference']:+.1f} % ± "
                     f"{100 * r['model-reference_se'] / r['reference']:.1f} %")
        elif pd.notna(r.get("model-reference")):
            se = r["model-reference_se"]
            delta = f"{r['model-reference']:+.3g}" + (f" ± {se:.2g}" if pd.notna(se) else "")
        else:
            delta = ""
        unit = f" ({r['unit']})" if isinstance(r["unit"], str) else ""
        out.append(f"| {r['condition']} | {r['quantity']}{unit} | {ref} | {mod} | {delta} | "
                   f"{r['model_verdict'] if pd.notna(r['model_verdict']) else ''} |")
    out += ["", f"Overall: {'pass' if comp['pass'] else 'not passed'}."]
    return out


def timing_line(run: Path) -> str:
    """The loop's wall time (its own jobs: the later MD stages of the run folder are not in the
    span) and the job time per kind, the validation MD included."""
    from readme_numbers import _stage_seconds

    _, head = span_sentence(run, pick=lambda k: k.startswith(("active/", "sample/")), what=" of the loop")
    secs, _ = _stage_seconds(run)
    if not head:
        return ""

    def total(pick):
        return _minutes(sum(v for k, v in secs.items() if pick(k)))

    return (f"{head}; job time: member training {total(lambda k: '/train_' in k)}, exploration "
            f"{total(lambda k: '/explore_' in k)}, labelling {total(lambda k: k.endswith('/label'))}, validation MD "
            f"{total(lambda k: k.startswith('md_validation'))}.")


def section(run: Path) -> str:
    lines = iteration_lines(run) + stability_lines(run) + validation_lines(run)
    t = timing_line(run)
    return "\n".join(lines + (["", t] if t else []))


def copy_figures(run: Path) -> None:
    """The loop's table and plots, and the validation comparison, into docs/results/ (al-active-*)."""
    import shutil

    out = ROOT / "docs" / "results"
    for src, name in (("active/iterations.csv", "iterations.csv"), ("active/deviation_hist.png", "deviation-hist.png"),
                      ("active/rmse_vs_frames.png", "rmse-vs-frames.png"),
                      ("md/validation/comparison/comparison.csv", "validation-comparison.csv")):
        if (run / src).exists():
            shutil.copyfile(run / src, out / f"al-active-{name}")


def main(argv=None) -> int:
    return results_section_main(argv, __doc__.splitlines()[0], "results/al-active", START, END, section,
                                "the al-active numbers", on_write=copy_figures)


if __name__ == "__main__":
    sys.exit(main())
