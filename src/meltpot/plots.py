"""Plots of the sampling stage (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_states(index: pd.DataFrame, path: str | Path, units: str = "metal") -> None:
    """Two panels per dataset: energy per atom vs T_inst, and T_inst over frames, by state."""
    e_unit, t_unit = ("eV", "K") if units == "metal" else ("ε", "ε/k_B")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.get_cmap("tab20").colors
    for k, (sid, grp) in enumerate(index.groupby("state_id", sort=False)):
        c = colours[k % len(colours)]
        ax1.scatter(grp["T_inst"], grp["energy_per_atom"], s=6, label=sid, color=c)
        ax2.plot(range(len(grp)), grp["T_inst"], lw=0.8, color=c)
        if pd.notna(grp["T_target"].iloc[0]):
            ax2.axhline(grp["T_target"].iloc[0], lw=0.4, ls="--", color="grey")
    ax1.set_xlabel(f"instantaneous T ({t_unit})")
    ax1.set_ylabel(f"energy per atom ({e_unit})")
    ax2.set_xlabel("frame within state")
    ax2.set_ylabel(f"instantaneous T ({t_unit})")
    if index["state_id"].nunique() <= 16 and ax1.get_legend_handles_labels()[0]:
        ax1.legend(fontsize=6, markerscale=2, ncol=2)
    fig.suptitle(f"{len(index)} frames, {index['state_id'].nunique()} states")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
