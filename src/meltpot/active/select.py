"""Selection of one iteration: classify the explored frames by the committee's force deviation,
pick at most ``max_candidates`` to label; and whether the loop stops (:func:`stop_decision`).

A frame with max σ_F (over atoms) below ``trust_lo`` is *accurate*, within [trust_lo,
trust_hi] a *candidate*, above ``trust_hi`` *kept out* (the committee is so far off that the
configuration is likely unphysical; counted, never labelled), and so is a frame with two atoms
closer than the dataset's ``validation.min_distance`` (the dataset would refuse it). The last ``failed_frames`` frames
of a failed run are candidates whatever their deviation below trust_hi (the configurations that
led to the failure).

When there are more candidates than ``max_candidates``, every job that has candidates gets one
and the rest is shared in proportion to the candidates left (largest remainders first); within a
job the frames are chosen by farthest-point sampling in descriptor space (per element the mean
and standard deviation over atoms of every symmetry function:
:func:`meltpot.sampling.labelling.frame_summaries`).

The loop has converged when the frames above ``converged_deviation`` (default ``trust_lo``: the
candidates; kept-out frames count too) are fewer than ``converged_fraction`` of the explored frames
and no run failed; it stops then, or after ``max_iterations``. The decision is kept apart from the
selection (its own file and Snakemake job, reading the selection's deviation table) so that raising
``max_iterations`` or changing the convergence keys re-decides a finished loop without redoing any
selection or labelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MeltpotError

ACCURATE, CANDIDATE, KEPT_OUT = "accurate", "candidate", "kept_out"


def classify(max_devi_f: np.ndarray, trust_lo: float, trust_hi: float) -> np.ndarray:
    """accurate / candidate / kept_out per frame."""
    d = np.asarray(max_devi_f, float)
    return np.where(d < trust_lo, ACCURATE, np.where(d <= trust_hi, CANDIDATE, KEPT_OUT))


def too_close(atoms, min_distance: float) -> bool:
    """Whether two atoms of the frame are closer than ``min_distance`` (Å or σ; periodic images counted)."""
    from ase.neighborlist import neighbor_list

    return min_distance > 0 and len(neighbor_list("i", atoms, float(min_distance))) > 0


def quotas(counts: dict[str, int], n: int) -> dict[str, int]:
    """Frames per job: all when they fit, else one per job that has candidates (while n allows)
    and the rest in proportion to the candidates left, by largest remainder."""
    total = sum(counts.values())
    if total <= n:
        return dict(counts)
    keys = [k for k, c in counts.items() if c > 0]
    base = {k: 0 for k in counts}
    if n >= len(keys):
        for k in keys:
            base[k] = 1
    left = n - sum(base.values())
    raw = {k: left * (counts[k] - base[k]) / max(total - sum(base.values()), 1) for k in keys}
    for k in keys:
        base[k] += int(np.floor(raw[k]))
    rest = n - sum(base.values())
    order = sorted(keys, key=lambda k: (-(raw[k] - np.floor(raw[k])), -counts[k], k))
    for k in order:
        if rest <= 0:
            break
        if base[k] < counts[k]:
            base[k] += 1
            rest -= 1
    return base


@dataclass
class Selection:
    """What :func:`select_frames` decided."""

    frames: list            # the chosen frames (positions, tags), unlabelled
    table: pd.DataFrame     # one row per explored frame: job, step, deviations, class, selected
    status: dict            # counts: explored, accurate, candidates, kept out, failed runs, selected


def select_frames(cfg: dict, explore_dirs, iteration: int, featureset=None) -> Selection:
    """Classify the frames of the exploration folders and choose the candidates to label."""
    import json

    from ..data.io import read_frames
    from ..sampling.labelling import farthest_point_indices, frame_summaries

    al = cfg["active_learning"]
    lo, hi = al["trust_lo"], al["trust_hi"]
    rows, frames, jobs = [], [], []
    for d in map(Path, explore_dirs):
        rec = json.loads((d / "exploration.json").read_text())
        jobs.append(rec)
        path = d / "frames.extxyz"
        got = read_frames(path) if path.stat().st_size else []
        cls = classify([a.info["max_devi_f"] for a in got], lo, hi)
        close = np.array([too_close(a, cfg["validation"]["min_distance"]) for a in got], dtype=bool)
        cls[close] = KEPT_OUT
        if rec["status"] == "failed" and al["failed_frames"]:
            below = [k for k in range(len(got)) if cls[k] != KEPT_OUT]
            for k in below[-al["failed_frames"]:]:
                cls[k] = CANDIDATE
        for k, a in enumerate(got):
            rows.append({"job": rec["job"], "step": a.info["step"], "max_devi_f": a.info["max_devi_f"],
                         "avg_devi_f": a.info["avg_devi_f"], "devi_e": a.info["devi_e"],
                         "extrapolating": a.info["extrapolating"], "class": cls[k], "too_close": bool(close[k]), "failed_run": rec["status"] == "failed",
                         "selected": False})
            frames.append(a)
    table = pd.DataFrame(rows, columns=["job", "step", "max_devi_f", "avg_devi_f", "devi_e", "extrapolating",
                                        "class", "too_close", "failed_run", "selected"])
    cand = table.index[table["class"] == CANDIDATE].to_numpy()
    counts = {rec["job"]: int((table.loc[cand, "job"] == rec["job"]).sum()) for rec in jobs}
    share = quotas(counts, al["max_candidates"])
    chosen = []
    for job, n in share.items():
        idx = cand[table.loc[cand, "job"].to_numpy() == job]
        if n >= len(idx):
            chosen += idx.tolist()
        elif n > 0:
            if featureset is None:
                raise ValueError("more candidates than max_candidates: the selection needs the run's feature set")
            X = frame_summaries([frames[i] for i in idx], featureset)
            chosen += idx[np.sort(farthest_point_indices(X, n))].tolist()
    chosen = sorted(chosen)
    table.loc[chosen, "selected"] = True
    failed = sum(rec["status"] == "failed" for rec in jobs)
    n_explored, n_cand = len(table), len(cand)
    fraction = n_cand / n_explored if n_explored else 1.0
    counts_by_class = table["class"].value_counts()
    status = {
        "iteration": int(iteration), "explored": n_explored,
        "accurate": int(counts_by_class.get(ACCURATE, 0)), "candidate": n_cand,
        "kept_out": int(counts_by_class.get(KEPT_OUT, 0)), "too_close": int(table["too_close"].sum()),
        "selected": len(chosen),
        "candidate_fraction": fraction, "runs": len(jobs), "failed_runs": int(failed),
        "failed_jobs": [rec["job"] for rec in jobs if rec["status"] == "failed"],
        "steps_extrapolating": int(sum(rec.get("steps_extrapolating") or 0 for rec in jobs)),
        "trust_lo": lo, "trust_hi": hi,
    }
    picked = []
    for i in chosen:
        a = frames[i].copy()
        a.info["sampled_from"] = f"active:{iteration}:{a.info['explore_job']}"
        a.info["sampled_index"] = int(a.info["step"])
        picked.append(a)
    return Selection(frames=picked, table=table, status=status)


def unconverged_fraction(table: pd.DataFrame, threshold: float) -> float:
    """Fraction of the explored frames (rows of a selection's deviation table) that the convergence
    test counts against the loop: max σ_F above ``threshold``, or kept out (above trust_hi, too close)."""
    if not len(table):
        return 1.0
    bad = (table["max_devi_f"].to_numpy(float) > threshold) | (table["class"].to_numpy() == KEPT_OUT)
    return float(bad.mean())


def stop_decision(al: dict, status: dict, table: pd.DataFrame | None = None) -> dict:
    """Whether the loop stops after the iteration of ``status`` (a :func:`select_frames` status, with
    its deviation ``table``): converged (frames above ``converged_deviation`` fewer than
    ``converged_fraction`` of those explored, no failed run, frames explored) or its
    ``max_iterations`` reached. Without ``converged_deviation`` the measure is the candidate fraction."""
    it = int(status["iteration"])
    threshold = al.get("converged_deviation")
    if threshold is None:
        measure = float(status["candidate_fraction"])
    elif table is None:
        raise MeltpotError("active_learning.converged_deviation is set: the stop decision needs the selection's "
                           "deviation table (meltpot active stop --deviations deviations.csv)")
    else:
        measure = unconverged_fraction(table, float(threshold))
    converged = (measure < al["converged_fraction"] and status["failed_runs"] == 0
                 and status["explored"] > 0)
    last = it + 1 >= al["max_iterations"]
    return {"iteration": it, "converged": bool(converged), "stop": bool(converged or last),
            "reason": "converged" if converged else ("max_iterations" if last else "continue"),
            "max_iterations": int(al["max_iterations"]), "converged_fraction": float(al["converged_fraction"]),
            "converged_deviation": None if threshold is None else float(threshold),
            "unconverged_fraction": measure}
