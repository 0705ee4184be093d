"""Plots of the λ path: validation RMSE vs features kept, group norms vs λ, kept-feature matrix."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_path(table: pd.DataFrame, labels: dict, path, unit: str = "meV/atom", scale: float = 1000.0,
              chosen: float | None = None) -> None:
    """Three panels (thesis figs 5.3/5.5): (a) validation RMSE after the penalised stage and
    after retraining vs number of features, (b) AGL group norms vs λ, (c) kept features per λ."""
    fig, axes = plt.subplots(1, 3, figsize=(19, 5.2), gridspec_kw={"width_ratios": [1, 1.25, 1]})
    ax = axes[0]
    ax.plot(table["n_total"], table["val_rmse_penalised"] * scale, "o", label="penalised (AGL)")
    ax.plot(table["n_total"], table["val_rmse_retrained"] * scale, "s", label="retrained")
    ax.axhline(table["val_rmse_dense"].iloc[0] * scale, color="grey", ls="--", lw=1, label="dense")
    ax.set_xlabel("features kept (all elements)")
    ax.set_ylabel(f"validation energy RMSE ({unit})")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax = axes[1]
    norm_cols = [c for c in table.columns if c.startswith("norm_")]
    for c in norm_cols:
        el, j = c[5:].rsplit("_", 1)
        lab = labels.get(el, [])
        ax.plot(table["lambda"], table[c], lw=1, label=lab[int(j)] if int(j) < len(lab) else c)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("λ")
    ax.set_ylabel("group norm ‖w_j‖ (AGL)")
    if len(norm_cols) <= 30:
        ax.legend(fontsize=5, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if chosen is not None:
        ax.axvline(chosen, color="k", ls=":", lw=1)
    ax = axes[2]
    elements = list(labels)
    cols = [(el, j) for el in elements for j in range(len(labels[el]))]
    mat = np.zeros((len(table), len(cols)))
    for r, kept in enumerate(table["kept"]):
        kept = json.loads(kept)
        for c, (el, j) in enumerate(cols):
            mat[r, c] = j in kept.get(el, [])
    ax.imshow(mat.T, aspect="auto", cmap="Greens", interpolation="nearest")
    ax.set_xticks(range(len(table)))
    ax.set_xticklabels([f"{x:.2g}" for x in table["lambda"]], rotation=90, fontsize=6)
    ax.set_yticks(range(len(cols)))
    ax.set_yticklabels([f"{el}: {labels[el][j]}" for el, j in cols], fontsize=5)
    ax.set_xlabel("λ")
    ax.set_title("kept features", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
