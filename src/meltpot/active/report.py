"""The loop's record: the committee's errors on the held-out set, the iteration table, its plots.

:func:`committee_errors` evaluates every member (and the committee mean, the potential the
exploration integrates) on the held-out frames with the Python committee
(:class:`meltpot.model.committee.Committee`): energy RMSE per atom (eV/atom or ε/atom) and force
RMSE over components (eV/Å or ε/σ).

:func:`iteration_table` gathers, per iteration, the selection's counts (explored, accurate,
candidate, kept out, failed runs), the frames labelled and added, the dataset size and the
held-out errors; :func:`plot_iterations` draws the deviation histograms per iteration and the
held-out force error against the labelled frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MeltpotError


def committee_errors(model_files, frames) -> dict:
    """Held-out errors of each member and of the committee mean (see module docstring)."""
    from ..data.frames import labels
    from ..model.committee import Committee

    committee = Committee.from_files(model_files)
    K = committee.size
    de = [[] for _ in range(K + 1)]
    df = [[] for _ in range(K + 1)]
    for i, atoms in enumerate(frames):
        lab = labels(atoms)
        if "energy" not in lab or "forces" not in lab:
            raise MeltpotError(f"held-out frame {i} has no energy or forces label")
        out = committee.evaluate(atoms)
        n = len(atoms)
        for k in range(K + 1):
            e = out["energy"].mean() if k == K else out["energy"][k]
            f = out["forces"].mean(0) if k == K else out["forces"][k]
            de[k].append((e - float(lab["energy"])) / n)
            df[k].append((f - lab["forces"]).ravel())
    rmse_e = [float(np.sqrt(np.mean(np.square(x)))) for x in de]
    rmse_f = [float(np.sqrt(np.mean(np.square(np.concatenate(x))))) for x in df]
    return {"frames": len(frames), "members": K,
            "member_energy_rmse": rmse_e[:K], "member_force_rmse": rmse_f[:K],
            "energy_rmse": float(np.mean(rmse_e[:K])), "force_rmse": float(np.mean(rmse_f[:K])),
            "mean_energy_rmse": rmse_e[K], "mean_force_rmse": rmse_f[K]}


def iteration_table(iteration_dirs) -> pd.DataFrame:
    """One row per iteration folder (``select/selection.json``, ``stop.json``, ``test.json``,
    ``dataset/``, ``labelled.json`` when the iteration labelled)."""
    rows = []
    for d in map(Path, iteration_dirs):
        st = {**json.loads((d / "select" / "selection.json").read_text()), **json.loads((d / "stop.json").read_text())}
        test = json.loads((d / "test.json").read_text())
        lab = d / "labelled.json"
        added = json.loads(lab.read_text())["labelled"] if lab.exists() else 0
        n_data = len(pd.read_parquet(d / "dataset" / "index.parquet"))
        rows.append({"iteration": st["iteration"], "dataset_frames": n_data, "explored": st["explored"],
                     "accurate": st["accurate"], "candidate": st["candidate"], "kept_out": st["kept_out"],
                     "candidate_fraction": st["candidate_fraction"],
                     "unconverged_fraction": st.get("unconverged_fraction", st["candidate_fraction"]),
                     "runs": st["runs"],
                     "failed_runs": st["failed_runs"], "selected": st["selected"], "added": added,
                     "test_energy_rmse": test["energy_rmse"], "test_force_rmse": test["force_rmse"],
                     "test_mean_force_rmse": test["mean_force_rmse"], "converged": st["converged"],
                     "stop": st["stop"], "reason": st["reason"]})
    table = pd.DataFrame(rows)
    table["labelled_total"] = table["added"].cumsum()
    return table


def plot_iterations(iteration_dirs, table: pd.DataFrame, out_dir, units: str = "metal") -> list[Path]:
    """``deviation_hist.png`` (max σ_F per explored frame, one histogram per iteration, the trust
    window shaded) and ``rmse_vs_frames.png`` (held-out force RMSE against the dataset size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..units import unit_labels

    force = unit_labels(units)["force"]
    out = Path(out_dir)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    allv, statuses = [], []
    for d in map(Path, iteration_dirs):
        allv.append(pd.read_csv(d / "select" / "deviations.csv")["max_devi_f"].to_numpy())
        statuses.append(json.loads((d / "select" / "selection.json").read_text()))
    lo = hi = None
    if statuses:
        lo, hi = statuses[-1]["trust_lo"], statuses[-1]["trust_hi"]
    finite = np.concatenate([v[np.isfinite(v)] for v in allv]) if allv else np.array([])
    # frames far below the trust window (a perfect lattice: 1e-14) go into the first bin
    floor = lo / 100 if lo else 1e-6
    bins = np.geomspace(floor, max(finite.max(), 10 * floor), 40) if finite.size else 20
    for st, v in zip(statuses, allv):
        ax.hist(np.clip(v[np.isfinite(v)], floor, None), bins=bins, histtype="step", lw=1.5,
                label=f"iteration {st['iteration']}")
    if lo is not None:
        ax.axvspan(lo, hi, color="0.85", zorder=0, label="trust window")
    ax.set_xscale("log")
    ax.set_xlabel(f"max force deviation per frame ({force})")
    ax.set_ylabel("explored frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    hist = out / "deviation_hist.png"
    fig.savefig(hist, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(table["dataset_frames"], table["test_force_rmse"], "o-", label="members (mean)")
    ax.plot(table["dataset_frames"], table["test_mean_force_rmse"], "s--", label="committee mean")
    for _, r in table.iterrows():
        ax.annotate(str(int(r["iteration"])), (r["dataset_frames"], r["test_force_rmse"]), fontsize=8,
                    textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("frames in the dataset")
    ax.set_ylabel(f"held-out force RMSE ({force})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    rmse = out / "rmse_vs_frames.png"
    fig.savefig(rmse, dpi=120)
    plt.close(fig)
    return [hist, rmse]
