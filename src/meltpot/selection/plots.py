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
              chosen: float | dict | None = None) -> None:
    """Three panels per path (thesis figs 5.3/5.5): (a) validation RMSE after the penalised
    stage and after retraining vs number of features, (b) AGL group norms vs λ, each curve
    numbered by its feature index, (c) kept features per λ (rows: index and label).

    A table with an ``element`` column (per-element line search) gets one row of panels per
    element path, showing that element's features; ``chosen`` is then ``{element: λ}``."""
    if "element" in table.columns:
        groups = [(el, table[table["element"] == el]) for el in dict.fromkeys(table["element"])]
    else:
        groups = [(None, table)]
    n_rows_max = max(len(labels[el]) for el in labels)
    height = max(4.2, 0.13 * n_rows_max + 1.6)
    fig, axes = plt.subplots(len(groups), 3, figsize=(16, height * len(groups)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.1, 1.2]}, layout="constrained")
    for row, (element, tab) in zip(axes, groups):
        shown = [element] if element is not None else list(labels)
        lam = chosen.get(element) if isinstance(chosen, dict) else chosen
        _panel_errors(row[0], tab, unit, scale, element)
        _panel_norms(row[1], tab, shown, lam)
        _panel_kept(row[2], tab, labels, shown)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _panel_errors(ax, table, unit, scale, element) -> None:
    ax.plot(table["n_total"], table["val_rmse_penalised"] * scale, "o", label="penalised (AGL)")
    ax.plot(table["n_total"], table["val_rmse_retrained"] * scale, "s", label="retrained")
    ax.axhline(table["val_rmse_dense"].iloc[0] * scale, color="grey", ls="--", lw=1, label="dense")
    ax.set_xlabel("features kept (all elements)")
    ax.set_ylabel(f"validation energy RMSE ({unit})")
    ax.set_yscale("log")
    if element is not None:
        ax.set_title(f"λ on {element} only (others 0)", fontsize=9)
    ax.legend(fontsize=8)


def _panel_norms(ax, table, elements, chosen) -> None:
    """Group norms vs λ; each curve is labelled with its feature index where it starts (the
    matrix panel beside it names the features) instead of a legend that would not fit."""
    cmap = plt.get_cmap("tab20")
    for el in elements:
        cols = [c for c in table.columns if c.startswith(f"norm_{el}_")]
        for c in cols:
            j = int(c.rsplit("_", 1)[1])
            y = table[c].to_numpy(float)
            ax.plot(table["lambda"], y, lw=1, color=cmap(j % 20))
            if y.size and y[0] > 0:
                tag = str(j) if len(elements) == 1 else f"{el}{j}"
                ax.annotate(tag, (table["lambda"].iloc[0], y[0]), xytext=(-3, 0), textcoords="offset points",
                            ha="right", va="center", fontsize=6, color=cmap(j % 20))
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.margins(x=0.08)
    ax.set_xlabel("λ")
    ax.set_ylabel("group norm ‖w_j‖ (AGL)")
    if chosen is not None:
        ax.axvline(chosen, color="k", ls=":", lw=1, label="chosen λ")
        ax.legend(fontsize=8, loc="upper right")


def _panel_kept(ax, table, labels, elements) -> None:
    cols = [(el, j) for el in elements for j in range(len(labels[el]))]
    mat = np.zeros((len(table), len(cols)))
    for r, kept in enumerate(table["kept"]):
        kept = json.loads(kept)
        for c, (el, j) in enumerate(cols):
            mat[r, c] = j in kept.get(el, [])
    ax.imshow(mat.T, aspect="auto", cmap="Greens", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(table)))
    ax.set_xticklabels([f"{x:.2g}" for x in table["lambda"]], rotation=90, fontsize=6)
    ax.set_yticks(range(len(cols)))
    prefix = len(elements) > 1
    ax.set_yticklabels([f"{el + ' ' if prefix else ''}{j}: {labels[el][j]}" for el, j in cols], fontsize=5)
    ax.set_xlabel("λ")
    ax.set_title("kept features", fontsize=9)
