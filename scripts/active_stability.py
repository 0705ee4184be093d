#!/usr/bin/env python3
"""How stable is an active-learning loop's final committee in MD? Extra seeds of its exploration
jobs, run to their end, judged by the reference's forces on the frames the committee produced.

    python scripts/active_stability.py results/al-active --run-md            # run the MD, print the section
    python scripts/active_stability.py results/al-active --write             # replace it in docs/results.md
    python scripts/active_stability.py results/al-active --check             # exit 1 if docs/results.md differs

``--run-md`` runs each of ``--jobs`` (exploration job ids of the run's config) ``--replicas``
times (runs already there are kept) with the final iteration's committee (``meltpot active explore``, iterations 100, 101, … so
the velocities and start frames differ from the loop's), with the deviation halt switched off, into
``<run>/active/stability/``; labels every 4th dumped frame with the run's reference (``meltpot
label run``). The section reports per job whether the runs reached their end, the max force
deviation, whether the loop's own halt rule (mean over ``halt_window`` lines above
``halt_deviation``) would have stopped them, and the committee's energy and force RMSE against the
reference on those frames (next to its held-out error). It sits between
``<!-- numbers:al-active-stability -->`` and ``<!-- /numbers:al-active-stability -->``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from active_report import run_config  # noqa: E402
from readme_numbers import results_section_main  # noqa: E402

START, END = "<!-- numbers:al-active-stability -->", "<!-- /numbers:al-active-stability -->"
FIRST_SEED_ITERATION = 100


def _last_iteration(run: Path) -> Path:
    return sorted((run / "active").glob("iter_*/committee/committee.pt"))[-1].parent.parent


def run_md(run: Path, jobs: list[str], replicas: int) -> None:
    """The extra exploration runs (no halt) and the reference labels of every 4th frame."""
    from meltpot.data.io import read_frames, write_frames

    cfg = run_config(run)
    cfg["active_learning"]["exploration"]["halt_deviation"] = None
    out = run / "active" / "stability"
    out.mkdir(parents=True, exist_ok=True)
    config = out / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    last = _last_iteration(run)
    plugin = (run / "lammps" / "plugin.txt").read_text().strip()
    for job in jobs:
        for r in range(replicas):
            it = FIRST_SEED_ITERATION + r
            folder = out / f"{job}_{it}"
            if (folder / "exploration.json").exists():
                continue          # done before (same seed, same run): more replicas add to it
            print(f"{job}, seed iteration {it} …", flush=True)
            subprocess.run(["meltpot", "active", "explore", str(config), "--job", job, "--committee",
                            str(last / "committee" / "committee.pt"), "--plugin", plugin, "--iteration", str(it),
                            "--index", str(last / "dataset" / "index.parquet"), "--out-dir", str(folder)],
                           check=True, stdout=subprocess.DEVNULL)
    sample = [f for p in sorted(out.glob("*_*/frames.extxyz")) for f in read_frames(p)[::4]]
    write_frames(out / "sample.extxyz", sample, format="extxyz")
    subprocess.run(["meltpot", "label", "run", str(config), "--frames", str(out / "sample.extxyz"), "--out",
                    str(out / "sample_labelled.extxyz"), "--report", str(out / "sample_labelled.json"),
                    "--no-progress"], check=True)


def section(run: Path) -> str:
    from meltpot.active.report import committee_errors
    from meltpot.data.io import read_frames
    from meltpot.model.committee import read_deviation

    out = run / "active" / "stability"
    if not (out / "sample_labelled.extxyz").exists():
        return "Not run yet (`python scripts/active_stability.py RUN --run-md`)."
    cfg = run_config(run)
    ex = cfg["active_learning"]["exploration"]
    halt, window = ex["halt_deviation"], ex["halt_window"]
    last = _last_iteration(run)
    models = sorted(str(p) for p in (last / "committee").glob("member_*.pt"))
    labelled = read_frames(out / "sample_labelled.extxyz")
    held = json.loads((last / "test.json").read_text())
    dt = cfg["md"]["timestep"]
    lines = [f"| job | runs | reached the end | steps (ps) | max σ_F (eV/Å) | stopped by the loop's halt rule | "
             f"frames checked | E RMSE (meV/atom) | F RMSE (eV/Å) |", "|---|---|---|---|---|---|---|---|---|"]
    for job in sorted({p.parent.name.rsplit("_", 1)[0] for p in out.glob("*_*/exploration.json")}):
        recs = [json.loads(p.read_text()) for p in sorted(out.glob(f"{job}_*/exploration.json"))]
        stopped = 0
        for p in sorted(out.glob(f"{job}_*/model_devi.out")):
            d = read_deviation(p)["max_devi_f"].to_numpy()
            mean = np.convolve(d, np.ones(window) / window, mode="valid") if len(d) >= window else d
            stopped += int(halt is not None and (mean > halt).any())
        frames = [f for f in labelled if f.info.get("explore_job") == job]
        err = committee_errors(models, frames)
        steps = recs[0]["total_steps"]
        lines.append(f"| {job} | {len(recs)} | {sum(r['status'] == 'ok' for r in recs)} | {steps} ({steps * dt:g}) | "
                     f"{max(r['max_devi_f'] for r in recs):.2f} | {stopped} of {len(recs)} | {len(frames)} | "
                     f"{1000 * err['mean_energy_rmse']:.1f} | {err['mean_force_rmse']:.3f} |")
    lines += ["", f"Committee mean against the reference; on the held-out set the same committee has "
                  f"{1000 * held['mean_energy_rmse']:.1f} meV/atom and {held['mean_force_rmse']:.3f} eV/Å. Runs of "
                  f"{ex['n_atoms']} atoms with the committee of {last.name}, seeds of iterations "
                  f"{FIRST_SEED_ITERATION} on, no halt; the loop's rule: "
                  f"mean max σ_F over {window} lines above {halt:g} eV/Å."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--run-md", action="store_true")
    p.add_argument("--jobs", nargs="+", default=["heat", "quench"])
    p.add_argument("--replicas", type=int, default=4)
    known, rest = p.parse_known_args(argv)
    if known.run_md:
        run = Path(next(a for a in rest if not a.startswith("-")))
        run_md(run, known.jobs, known.replicas)
    return results_section_main(rest, __doc__.splitlines()[0], "results/al-active", START, END, section,
                                "the al-active stability numbers")


if __name__ == "__main__":
    sys.exit(main())
