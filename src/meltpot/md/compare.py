"""Reference vs ML potential: the same MD protocol run with both, compared on what users check first.

For each labelled run folder of ``meltpot md run`` (its ``dump.lammpstrj`` and ``thermo.csv``):
density and potential energy per atom averaged over the production stage, g(r) (closest
approach r_min — where the running coordination reaches 0.01, the sign of a collapsing potential
when far below the reference's —, first peak position and height, first minimum, coordination number),
the self-diffusion coefficient from the MSD of the production dump, and for runs of the meltpot
pair style the atom-steps with descriptors outside the training range (from ``log.lammps``). Writes ``comparison.csv`` (one row per quantity, a column
per run and the difference of each run to the first), ``comparison.json``, and ``gr.png`` /
``msd.png`` with the curves overlaid. Units: metal (Å, g/cm³, eV/atom, Å²/ps) or lj.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import dynamics as dy
from ..analysis.cli_dynamics import read_trajectory
from ..analysis.structure import _cell_widths, compute_rdf, coordination_numbers, running_coordination
from ..analysis.trajectory import iter_frames
from ..errors import MeltpotError
from ..plots import plt

log = logging.getLogger(__name__)

PRODUCTION_STAGES = ("produce", "production")


def _production(thermo: pd.DataFrame, source: Path) -> pd.DataFrame:
    rows = thermo[thermo["stage"].isin(PRODUCTION_STAGES)] if "stage" in thermo else thermo
    if rows.empty:
        raise MeltpotError(f"{source}: no production rows (stage {'/'.join(PRODUCTION_STAGES)})")
    return rows


def _extrapolations(log: Path) -> float:
    """Atom-steps with descriptors outside the training range reported by the meltpot pair style
    in ``log`` (0 when it reported none; NaN for another pair style or no log)."""
    if not log.exists():
        return float("nan")
    text = log.read_text(errors="replace")
    if "pair_style meltpot" not in text and "meltpot: model" not in text:
        return float("nan")
    counts = [int(n) for n in re.findall(r"(\d+) atom-steps so far", text)]
    return float(max(counts, default=0))


def stability_checks(ref: dict, run: dict) -> dict:
    """Signs that a potential failed in MD, relative to the reference run: a closest approach
    (r_min) below 75 % of the reference's (a collapse: the model lacks short-range repulsion where
    it had no data), a temperature more than 10 % off the reference's (energy pumped in by the
    collapse), more than 0.1 % of the atom-steps extrapolating. ``stable`` is True when none
    occurred; ``notes`` lists rarer extrapolation."""
    problems = []
    if run["r_min"] < 0.75 * ref["r_min"]:
        problems.append(f"closest approach {run['r_min']:.3g} vs {ref['r_min']:.3g} (collapse)")
    if abs(run["T"] - ref["T"]) > 0.1 * ref["T"]:
        problems.append(f"mean T {run['T']:.4g} vs {ref['T']:.4g}")
    notes = []
    n_ext = run["extrapolation_atom_steps"]
    if n_ext > 1e-3 * run["atom_steps"]:
        problems.append(f"{n_ext:.0f} of {run['atom_steps']} atom-steps outside the training range")
    elif n_ext > 0:
        notes.append(f"{n_ext:.0f} of {run['atom_steps']} atom-steps outside the training range")
    return {"stable": not problems, "problems": problems, "notes": notes}


def analyse_run(folder: str | Path, types: dict[int, str], timestep: float, rmax: float | None = None,
                bins: int = 200) -> dict:
    """The quantities of one run folder (see module docstring) and its g(r) and MSD curves."""
    folder = Path(folder)
    dump, thermo_file = folder / "dump.lammpstrj", folder / "thermo.csv"
    for f in (dump, thermo_file):
        if not f.exists():
            raise MeltpotError(f"{f} does not exist (is {folder} a `meltpot md run` folder?)")
    thermo = pd.read_csv(thermo_file)
    prod = _production(thermo, thermo_file)
    traj = read_trajectory(dump, types=types, progress=False)
    n_atoms = traj["positions"].shape[1]
    if rmax is None:
        cell = np.asarray(next(iter_frames(dump, types=types)).cell)
        rmax = 0.5 * float(_cell_widths(cell).min())
    rdf = compute_rdf(iter_frames(dump, types=types), rmax=rmax, bins=bins)
    cn = coordination_numbers(rdf)
    i_peak = int(np.argmax(rdf.total))
    steps = np.asarray(traj["steps"])
    if len(steps) < 4:
        raise MeltpotError(f"{dump}: {len(steps)} frames; the MSD needs at least 4 (lower md.run.dump_every)")
    dt = float(steps[1] - steps[0]) * timestep
    t, msd = dy.msd_per_species(traj["positions"], dt, traj["species"])
    key = next(iter(msd))
    fit = dy.fit_diffusion(t, msd[key])
    # closest approach: where the running coordination n(r) reaches 0.01 (1 % of the atoms have
    # a neighbour this close, frame-averaged): robust to a single close-contact event
    n_run = running_coordination(rdf)["total"]
    reach = np.flatnonzero(n_run >= 0.01)
    values = {"density": float(prod["Density"].mean()) if "Density" in prod else float("nan"),
              "pe_per_atom": float(prod["PotEng"].mean()) / n_atoms,
              "T": float(prod["Temp"].mean()),
              "r_min": float(rdf.edges[reach[0]]) if reach.size else float("nan"),
              "g_peak_r": float(rdf.r[i_peak]), "g_peak": float(rdf.total[i_peak]),
              "g_first_min": float(cn["total"][1]), "cn": float(cn["total"][0]),
              "D": float(fit.D), "extrapolation_atom_steps": _extrapolations(folder / "log.lammps"),
              "atom_steps": n_atoms * int(thermo["Step"].max())}
    return {"values": values, "r": rdf.r, "g": rdf.total, "t": t, "msd": msd[key], "n_atoms": n_atoms,
            "frames": len(steps)}


def compare_runs(runs: dict[str, str | Path], out_dir: str | Path, types: dict[int, str], timestep: float,
                 units: str = "metal") -> pd.DataFrame:
    """Analyse each labelled run (the first is the reference) and write the comparison files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = {label: analyse_run(folder, types, timestep) for label, folder in runs.items()}
    labels = list(res)
    unit = {"metal": {"density": "g/cm³", "pe_per_atom": "eV/atom", "T": "K", "r_min": "Å", "g_peak_r": "Å",
                      "g_peak": "", "g_first_min": "Å", "cn": "", "D": "Å²/ps",
                      "extrapolation_atom_steps": "", "atom_steps": ""}}.get(units, {})
    rows = []
    for q in res[labels[0]]["values"]:
        row = {"quantity": q, "unit": unit.get(q, "")}
        for lab in labels:
            row[lab] = res[lab]["values"][q]
        for lab in labels[1:]:
            row[f"{lab}-{labels[0]}"] = res[lab]["values"][q] - res[labels[0]]["values"][q]
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / "comparison.csv", index=False)
    checks = {lab: stability_checks(res[labels[0]]["values"], res[lab]["values"]) for lab in labels[1:]}
    for lab, chk in checks.items():
        if not chk["stable"]:
            log.warning("%s is not a stable liquid like %s: %s", lab, labels[0], "; ".join(chk["problems"]))
    (out / "comparison.json").write_text(json.dumps(
        {"runs": {lab: {"folder": str(runs[lab]), "n_atoms": res[lab]["n_atoms"], "frames": res[lab]["frames"],
                        **res[lab]["values"]} for lab in labels}, "checks": checks, "units": units},
        indent=2) + "\n")
    for name, xk, yk, xl, yl in (("gr", "r", "g", "r (Å)", "g(r)"), ("msd", "t", "msd", "t (ps)", "MSD (Å²)")):
        fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
        for lab in labels:
            ax.plot(res[lab][xk], res[lab][yk], label=f"{lab} ({res[lab]['n_atoms']} atoms)")
        ax.set_xlabel(xl if units == "metal" else xk)
        ax.set_ylabel(yl)
        ax.legend(frameon=False)
        T = res[labels[0]]["values"]["T"]
        ax.set_title(f"{' vs '.join(labels)} at {T:.0f}" + (" K" if units == "metal" else ""))
        fig.savefig(out / f"{name}.png", dpi=130)
        plt.close(fig)
    return table
