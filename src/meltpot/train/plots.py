"""Plots of training and evaluation (matplotlib, headless): energy and force parity plots
per split coloured by phase, and the learning curve of a training run."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..units import ENERGY_SCALE, unit_labels  # noqa: E402

#: fixed colours for the usual phases (others take the next free tab10 colour)
PHASE_COLOURS = {"liquid": "tab:blue", "fcc": "tab:orange", "hcp": "tab:green", "bcc": "tab:red",
                 "imported": "tab:purple"}


def phase_colours(phases) -> dict:
    """A colour per phase: the fixed ones, then unused tab10 colours in order."""
    out = {}
    spare = [c for c in plt.get_cmap("tab10").colors]
    used = set(PHASE_COLOURS.values())
    spare = [c for c in spare if matplotlib.colors.to_hex(c) not in {matplotlib.colors.to_hex(u) for u in used}]
    k = 0
    for ph in sorted(set(map(str, phases))):
        if ph in PHASE_COLOURS:
            out[ph] = PHASE_COLOURS[ph]
        else:
            out[ph] = spare[k % len(spare)]
            k += 1
    return out


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3g}"


def _diagonal(ax, lo, hi):
    pad = 0.04 * (hi - lo if hi > lo else 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.3", lw=0.8, ls="--", zorder=0)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal", adjustable="box")


def plot_energy_parity(predictions: pd.DataFrame, path: str | Path, units: str = "metal",
                       metrics: dict | None = None) -> None:
    """Per split: predicted vs reference energy per atom (top) and the error against the
    reference (bottom), coloured by phase; RMSE and MAE in the titles."""
    ulab = unit_labels(units)
    splits = list(dict.fromkeys(predictions["split"].astype(str)))
    if not splits:
        raise ValueError("no predictions to plot")
    colours = phase_colours(predictions["phase"])
    n = len(splits)
    fig, axes = plt.subplots(2, n, figsize=(4.6 * n, 8.2), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.6]})
    lo = float(np.nanmin(predictions[["E_ref", "E_pred"]].to_numpy()))
    hi = float(np.nanmax(predictions[["E_ref", "E_pred"]].to_numpy()))
    for col, split in enumerate(splits):
        grp = predictions[predictions["split"].astype(str) == split]
        ax, axr = axes[0, col], axes[1, col]
        groups = sorted(grp.groupby("phase"), key=lambda g: -len(g[1]))   # small groups drawn on top
        for ph, sub in groups:
            c = colours[str(ph)]
            ax.scatter(sub["E_ref"], sub["E_pred"], s=9, color=c, alpha=0.75, lw=0, label=f"{ph} ({len(sub)})")
            axr.scatter(sub["E_ref"], (sub["E_pred"] - sub["E_ref"]) * ENERGY_SCALE, s=9, color=c, alpha=0.75,
                        lw=0)
        _diagonal(ax, lo, hi)
        err = (grp["E_pred"] - grp["E_ref"]).to_numpy() * ENERGY_SCALE
        m = (metrics or {}).get(split) or {}
        rmse = m.get("energy_rmse", float(np.sqrt(np.mean(err ** 2))) if len(err) else math.nan)
        mae = m.get("energy_mae", float(np.mean(np.abs(err))) if len(err) else math.nan)
        ax.set_title(f"{split} ({len(grp)} frames)\nRMSE {_fmt(rmse)}, MAE {_fmt(mae)} {ulab['energy']}",
                     fontsize=10)
        ax.set_xlabel(f"reference energy ({ulab['energy_data']})")
        ax.set_ylabel(f"predicted energy ({ulab['energy_data']})")
        handles, labels_ = ax.get_legend_handles_labels()
        order = np.argsort(labels_)
        ax.legend([handles[k] for k in order], [labels_[k] for k in order], fontsize=8, markerscale=1.5, loc="best",
                  title="phase (frames)", title_fontsize=8)
        ax.ticklabel_format(useOffset=False)
        axr.axhline(0.0, color="0.3", lw=0.8, ls="--")
        axr.set_xlim(ax.get_xlim())
        axr.set_xlabel(f"reference energy ({ulab['energy_data']})")
        axr.set_ylabel(f"error ({ulab['energy']})")
        axr.ticklabel_format(useOffset=False)
        for a in (ax, axr):
            a.grid(alpha=0.25)
            a.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_force_parity(forces: dict, path: str | Path, units: str = "metal", metrics: dict | None = None,
                      max_points: int = 200_000, seed: int = 0) -> None:
    """Per split: predicted vs reference force components, coloured by phase (at most
    ``max_points`` components drawn per split, a random subset; the titles' metrics use all)."""
    ulab = unit_labels(units)
    splits = [s for s in forces if len(forces[s]["frame_id"])]
    if not splits:
        raise ValueError("no forces to plot")
    colours = phase_colours(np.concatenate([forces[s]["phase"] for s in splits]))
    lim = max(float(np.abs(np.concatenate([forces[s]["ref"].ravel(), forces[s]["pred"].ravel()])).max())
              for s in splits)
    rng = np.random.default_rng(seed)
    n = len(splits)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.9), squeeze=False)
    for col, split in enumerate(splits):
        f = forces[split]
        ax = axes[0, col]
        ref, pred = f["ref"].reshape(-1), f["pred"].reshape(-1)
        phase = np.repeat(np.asarray(f["phase"], dtype=str), 3)
        take = np.arange(ref.size) if ref.size <= max_points else rng.choice(ref.size, max_points, replace=False)
        names, counts = np.unique(phase[take], return_counts=True)
        for ph in names[np.argsort(-counts, kind="stable")]:   # small groups drawn on top
            sel = take[phase[take] == ph]
            ax.scatter(ref[sel], pred[sel], s=2, color=colours[ph], alpha=0.35, lw=0, rasterized=True,
                       label=f"{ph}")
        _diagonal(ax, -lim, lim)
        m = (metrics or {}).get(split) or {}
        err = pred - ref
        rmse = m.get("force_rmse", float(np.sqrt(np.mean(err ** 2))))
        mae = m.get("force_mae", float(np.mean(np.abs(err))))
        ax.set_title(f"{split} ({len(np.unique(f['frame_id']))} frames, {ref.size} components)\n"
                     f"RMSE {_fmt(rmse)}, MAE {_fmt(mae)} {ulab['force']}", fontsize=10)
        ax.set_xlabel(f"reference force component ({ulab['force']})")
        ax.set_ylabel(f"predicted force component ({ulab['force']})")
        handles, labels_ = ax.get_legend_handles_labels()
        order = np.argsort(labels_)
        leg = ax.legend([handles[k] for k in order], [labels_[k] for k in order], fontsize=8, markerscale=5,
                        loc="upper left", title="phase", title_fontsize=8)
        for h in leg.legend_handles:
            h.set_alpha(1.0)
        ax.grid(alpha=0.25)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _history_columns(h: pd.DataFrame) -> dict:
    """Columns of a history table by panel: energy errors, force/stress errors, losses, lr;
    and the epoch column (None: row number)."""
    cols = [c for c in h.columns if pd.api.types.is_numeric_dtype(h[c])]
    low = {c: c.lower() for c in cols}
    epoch = next((c for c in ("epoch", "epochs", "step") if c in cols), None)
    lr = [c for c in cols if low[c] in ("lr", "learning_rate")]
    errors = [c for c in cols if "rmse" in low[c] or "mae" in low[c]]
    other = [c for c in errors if "force" in low[c] or "stress" in low[c]]
    return {"epoch": epoch, "energy": [c for c in errors if c not in other], "force": other,
            "loss": [c for c in cols if any(k in low[c] for k in ("loss", "penalty", "monitor")) and c not in errors],
            "lr": lr}


def plot_learning_curve(history, path: str | Path, units: str = "metal", title: str | None = None,
                        energy_scale: float = ENERGY_SCALE) -> None:
    """Learning curve from a history CSV (path or DataFrame), log y against the epoch.

    Panels (those with columns): energy errors (columns with ``rmse``/``mae``, energies per
    atom in the data's unit as the trainer writes them, shown × ``energy_scale``: meV/atom),
    force/stress errors, losses (``loss``, ``penalty``, ``monitor`` columns) and the learning
    rate. Validation columns solid, training columns dashed; the epoch with the lowest
    ``monitor`` (else the first validation error) is marked.
    """
    h = pd.read_csv(history) if not isinstance(history, pd.DataFrame) else history
    if h.empty:
        raise ValueError(f"{history}: the history has no rows")
    c = _history_columns(h)
    x = h[c["epoch"]].to_numpy() if c["epoch"] else np.arange(1, len(h) + 1)
    ulab = unit_labels(units)
    flab = f"force ({ulab['force']})" + (" / stress" if any("stress" in k.lower() for k in c["force"]) else "")
    panels = [(k, c[k], lab) for k, lab in (("energy", f"energy error ({ulab['energy']})"),
                                             ("force", f"{flab} error"), ("loss", "loss"),
                                             ("lr", "learning rate")) if c[k]]
    if not panels:
        raise ValueError(f"{history}: no rmse/mae, loss or lr columns to plot (columns: {', '.join(h.columns)})")
    monitor = "monitor" if "monitor" in c["loss"] else next(
        (k for k in c["energy"] + c["force"] if "val" in k.lower()), None)
    best = None
    if monitor is not None and h[monitor].notna().any():
        best = x[int(np.nanargmin(h[monitor].to_numpy(float)))]
    ncol = len(panels) if len(panels) <= 3 else 2
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.8 * ncol, 3.8 * nrow), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (kind, cols, ylabel) in zip(axes.flat, panels):
        for col in cols:
            y = h[col].to_numpy(float) * (energy_scale if kind == "energy" else 1.0)
            ok = np.isfinite(y) & (y > 0)
            if not ok.any():
                continue
            solid = "val" in col.lower() or kind == "lr" or col == "monitor"
            ax.plot(x[ok], y[ok], lw=1.3, ls="-" if solid else "--", label=col,
                    marker="." if ok.sum() < 40 else None, drawstyle="steps-post" if kind == "lr" else "default")
        ax.set_yscale("log")
        ax.set_xlabel("epoch" if c["epoch"] else "row")
        ax.set_ylabel(ylabel)
        if best is not None and kind != "lr":
            ax.axvline(best, color="0.4", lw=0.8, ls=":", label=f"lowest {monitor} (epoch {best:g})")
        ax.grid(alpha=0.25, which="both")
        ax.tick_params(labelsize=8, which="both")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
