"""Melting study of one or several potentials, replicas pooled (``meltpot analyze melting``).

Input per potential: a folder of ``meltpot md run`` outputs (the workflow's
``md/melting/<potential>/``):

* ``two_phase/<run>/``: solid–liquid coexistence runs (``summary.json`` with the set T and
  the ensemble, ``thermo.csv``, and ``cna.csv`` from ``meltpot analyze cna`` of the dump).
  Each run is classified as solid grew / melted / coexist
  (:func:`~meltpot.analysis.nucleation.classify_two_phase`); T_m with its uncertainty from all
  runs of the potential (:func:`~meltpot.analysis.nucleation.two_phase_melting_point`): NPT,
  the bracket between the highest set T where the crystal grew and the lowest where it melted
  (midpoint ± half the gap; runs whose fraction changed by less than ``tol`` are undecided and
  left out; a crystal that grew above a T where another melted makes the bracket
  "inconsistent"); NPH, the mean steady temperature of the runs where both phases survived.
* ``ramp/<run>/``: heating and cooling ramps (``summary.json`` with T_start, T_stop, rate;
  ``ramp.csv``: H(T) per atom). Each ramp's jump (:func:`~meltpot.analysis.nucleation.analyze_ramp`):
  superheating on heating, undercooling on cooling, both kinetic limits at the given rate and
  size around T_m; latent heat from the jump. Mean ± standard deviation over the replicas.

The potentials are then put side by side, each difference to the first (the reference) with
its combined uncertainty.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FrameError, MeltpotError
from .nucleation import analyze_ramp, classify_two_phase, crystalline_fraction, two_phase_melting_point


def _summary(path: Path) -> dict:
    try:
        s = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FrameError(str(path), None, f"cannot read the run summary: {exc}") from None
    if s.get("status") not in (None, "ok"):
        raise FrameError(str(path), None, f"the run did not finish (status {s.get('status')!r}: {s.get('error')})")
    return s


def _run_dirs(folder: Path, sub: str) -> list[Path]:
    return sorted(p.parent for p in (folder / sub).glob("*/summary.json"))


def two_phase_run(run_dir: Path, tol: float = 0.15, final: float | None = None) -> dict:
    """One coexistence run: outcome, fractions (adaptive CNA, ``cna.csv``) and the mean
    temperature of the final interval (thermo rows of the production stage at the CNA frames)."""
    s = _summary(run_dir / "summary.json")
    params = s.get("params", {})
    if s.get("protocol") != "two_phase":
        raise FrameError(str(run_dir / "summary.json"), None, f"protocol {s.get('protocol')!r}, not two_phase")
    cna_path, thermo_path = run_dir / "cna.csv", run_dir / "thermo.csv"
    for p in (cna_path, thermo_path):
        if not p.exists():
            raise FrameError(str(p), None, "missing (cna.csv: meltpot analyze cna of the run's dump)")
    cna = pd.read_csv(cna_path)
    if len(cna) < 2:
        raise FrameError(str(cna_path), None, f"{len(cna)} frame(s): a two-phase run needs a series")
    thermo = pd.read_csv(thermo_path)
    prod = thermo[thermo["stage"] == "produce"]
    if prod.empty:
        raise FrameError(str(thermo_path), None, "no rows of the produce stage")
    try:
        f = np.asarray(crystalline_fraction(cna), float)
    except MeltpotError as exc:
        raise FrameError(str(cna_path), None, str(exc)) from None
    temp = np.interp(cna["timestep"].to_numpy(float), prod["Step"].to_numpy(float), prod["Temp"].to_numpy(float))
    t = cna["time"].to_numpy(float)
    r = classify_two_phase(t, f, temp, T_set=float(params["T"]), final=final, tol=tol)
    return {"run": run_dir.name, "replica": int(params.get("replica", 0)), "ensemble": params.get("ensemble", "npt"),
            "n_atoms": int(s.get("n_atoms") or params.get("n_atoms", 0)), **asdict(r),
            "production_ps": float(cna["time"].iloc[-1] - cna["time"].iloc[0]),
            "wall_s": float(s.get("wall_s", np.nan)), "steps_per_s": float(s.get("steps_per_s", np.nan))}


def ramp_run(run_dir: Path) -> dict:
    """One heating or cooling ramp: its H(T) jump (T, latent heat per atom) and the C_P slopes."""
    s = _summary(run_dir / "summary.json")
    params = s.get("params", {})
    if s.get("protocol") != "ramp":
        raise FrameError(str(run_dir / "summary.json"), None, f"protocol {s.get('protocol')!r}, not ramp")
    path = run_dir / "ramp.csv"
    if not path.exists():
        raise FrameError(str(path), None, "missing: the ramp's H(T) table")
    ht = pd.read_csv(path)
    T0, T1 = float(params["T_start"]), float(params["T_stop"])
    if "T_target" not in ht or "H_per_atom" not in ht:
        raise FrameError(str(path), None, f"needs columns T_target and H_per_atom (has {', '.join(ht.columns)})")
    try:
        # the thermostat's target, not the block mean of the instantaneous T (±50 K at 256 atoms);
        # a heated crystal melts (the ramps run far above T_m): the largest jump is its melting,
        # while a cooled liquid may stay amorphous (auto: a kink, no transition)
        a = analyze_ramp(ht["T_target"].to_numpy(float), ht["H_per_atom"].to_numpy(float),
                         kind="jump" if T1 > T0 else "auto")
    except MeltpotError as exc:
        raise FrameError(str(path), None, str(exc)) from None
    # a jump: melting (heating) or crystallisation (cooling); a kink: no first-order transition
    # within the ramp (a cooled liquid that stayed amorphous), so no transition temperature
    jump = a.kind == "jump"
    return {"run": run_dir.name, "direction": "heat" if T1 > T0 else "cool", "replica": int(params.get("replica", 0)),
            "n_atoms": int(s.get("n_atoms") or 0), "T_start": T0, "T_stop": T1, "rate": float(params["rate"]),
            "kind": a.kind, "T_transition": a.T_transition if jump else math.nan,
            "latent_heat": a.latent_heat if jump else math.nan, "significance": a.gap_significance,
            "cp_low": a.cp_low, "cp_high": a.cp_high, "low_intercept": a.low.intercept, "high_intercept": a.high.intercept,
            "wall_s": float(s.get("wall_s", np.nan)), "steps_per_s": float(s.get("steps_per_s", np.nan))}


def branch_lines(folder: Path, ramps: pd.DataFrame, direction: str, T_lo: float, T_hi: float,
                 T_at: float) -> list[tuple[float, float]]:
    """(slope, H at ``T_at``) of a straight line through each ``direction`` ramp's H(T) between
    ``T_lo`` and ``T_hi`` (K, thermostat target): for a cooling ramp only above its
    crystallisation jump, for a heating ramp only below its melting jump. Ramps with fewer than
    four points there give none."""
    out = []
    if not (np.isfinite(T_lo) and np.isfinite(T_hi)) or ramps.empty:
        return out
    for _, r in ramps[ramps["direction"] == direction].iterrows():
        ht = pd.read_csv(Path(folder) / "ramp" / r["run"] / "ramp.csv")
        T, H = ht["T_target"].to_numpy(float), ht["H_per_atom"].to_numpy(float)
        keep = (T >= T_lo) & (T <= T_hi)
        if np.isfinite(r["T_transition"]):
            keep &= (T > r["T_transition"]) if direction == "cool" else (T < r["T_transition"])
        if keep.sum() >= 4:
            slope, icpt = np.polyfit(T[keep], H[keep], 1)
            out.append((float(slope), float(icpt + slope * T_at)))
    return out


def _mean_std(x) -> tuple[float, float, int]:
    x = np.asarray([v for v in x if np.isfinite(v)], float)
    if len(x) == 0:
        return math.nan, math.nan, 0
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan, len(x)


def potential_summary(label: str, folder: str | Path, tol: float = 0.15, final: float | None = None,
                      molar_mass: float | None = None) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(summary row, two-phase runs, ramp runs) of one potential's folder; temperatures in K
    (metal units), latent heats in eV/atom, C_P in eV/(K·atom), and in kJ/mol and J/(g·K)
    with ``molar_mass`` (g/mol)."""
    folder = Path(folder)
    tp_dirs, ramp_dirs = _run_dirs(folder, "two_phase"), _run_dirs(folder, "ramp")
    if not tp_dirs and not ramp_dirs:
        raise FrameError(str(folder), None, "no runs: expected two_phase/<run>/summary.json or ramp/<run>/summary.json")
    tp = pd.DataFrame([two_phase_run(d, tol, final) for d in tp_dirs])
    rp = pd.DataFrame([ramp_run(d) for d in ramp_dirs])
    row: dict = {"label": label}
    if not tp.empty:
        nph = set(tp["ensemble"]) == {"nph"}
        m = two_phase_melting_point(tp, use="T_final" if nph else "T_set")
        if not nph:
            # NPT: a run only says on which side of T_m its set T lies; "coexist" (the fraction
            # changed by less than tol) is undecided in the run time, not a coexistence temperature
            decided = tp[tp["outcome"] != "coexist"]
            m = two_phase_melting_point(decided, use="T_set") if len(decided) else m
            if decided.empty:
                m.T_m, m.error, m.method = math.nan, math.nan, "none"
            elif m.T_low == m.T_high:
                # grew and melted at the same set T: T_m is there, to within the scan's spacing
                others = np.abs(np.unique(tp["T_set"]) - m.T_low)
                others = others[others > 0]
                m.T_m, m.method = m.T_low, "straddled"
                m.error = 0.5 * float(others.min()) if len(others) else math.nan
        T_m, err, method = m.T_m, m.error, m.method
        row.update(T_m=T_m, T_m_err=err, T_m_method=method, T_solid_grew=m.T_low, T_melted=m.T_high,
                   two_phase_runs=len(tp), two_phase_atoms=int(tp["n_atoms"].iloc[0]),
                   two_phase_ps=float(tp["production_ps"].mean()), two_phase_wall_s=float(tp["wall_s"].sum()))
        tp.insert(0, "label", label)
    for direction in ("heat", "cool"):
        sub = rp[rp["direction"] == direction] if not rp.empty else rp
        if sub.empty:
            continue
        mean, std, n = _mean_std(sub["T_transition"])     # n: the ramps with a jump
        L, L_std, _ = _mean_std(sub["latent_heat"])
        row.update({f"T_{direction}": mean, f"T_{direction}_std": std, f"{direction}_runs": len(sub), f"{direction}_jumps": n,
                    f"latent_{direction}": L, f"latent_{direction}_std": L_std,
                    f"{direction}_rate": float(sub["rate"].iloc[0]), f"{direction}_wall_s": float(sub["wall_s"].sum())})
    heat = rp[rp["direction"] == "heat"] if not rp.empty else rp
    if not heat.empty:
        # The thesis's §3.3.2: C_P from the crystal branch (heating) and the liquid branch
        # (cooling), the latent heat at T_m as the gap between them there. With T_m known: the
        # heating ramps from their start up to T_m (the superheated part, with its premelting,
        # left out) and the cooling ramps from T_m + 200 K down to T_m − 100 K; otherwise, or
        # without cooling ramps, the two branches of the heating ramps' jump fit.
        T_m = row.get("T_m", math.nan)
        solid = branch_lines(folder, rp, "heat", -math.inf if not np.isfinite(T_m) else 0.0, T_m, T_m)
        liquid = branch_lines(folder, rp, "cool", T_m - 100.0, T_m + 200.0, T_m)
        if solid:
            cp_s, H_sol = zip(*solid)
            row["solid_branch"] = "heating, below T_m"
        else:
            cp_s = tuple(heat["cp_low"])
            H_sol = tuple(heat["low_intercept"] + heat["cp_low"] * T_m)
            row["solid_branch"] = "heating, below the jump"
        if liquid:
            cp_l, H_liq = zip(*liquid)
            row["liquid_branch"] = "cooling"
        else:
            cp_l = tuple(heat["cp_high"])
            H_liq = tuple(heat["high_intercept"] + heat["cp_high"] * T_m)
            row["liquid_branch"] = "heating"
        row["cp_solid"], row["cp_solid_std"], _ = _mean_std(cp_s)
        row["cp_liquid"], row["cp_liquid_std"], _ = _mean_std(cp_l)
        if np.isfinite(T_m):
            H_s, s_s, _ = _mean_std(H_sol)
            H_l, s_l, _ = _mean_std(H_liq)
            row["latent_at_T_m"] = H_l - H_s
            errs = [v for v in (s_s, s_l) if np.isfinite(v)]
            row["latent_at_T_m_std"] = math.hypot(*errs) if errs else math.nan
        if molar_mass:
            from .nucleation import per_atom_units

            for key in ("cp_solid", "cp_liquid"):
                row[f"{key}_J_per_gK"] = per_atom_units(cp_eV_per_K_atom=row[key], molar_mass=molar_mass)["cp_J_per_gK"]
            for key in ("latent_heat", "latent_at_T_m"):
                if key in row:
                    row[f"{key}_kJ_per_mol"] = per_atom_units(latent_eV_per_atom=row[key])["latent_kJ_per_mol"]
    if not rp.empty:
        rp.insert(0, "label", label)
    return row, tp, rp


def compare(rows: list[dict]) -> pd.DataFrame:
    """One row per potential; ``dT_m`` (and ``dT_heat``, ``dT_cool``) against the first row
    with the combined uncertainty (root sum of squares of the two errors / stds)."""
    table = pd.DataFrame(rows)
    ref = rows[0]
    for key, err in (("T_m", "T_m_err"), ("T_heat", "T_heat_std"), ("T_cool", "T_cool_std")):
        if key not in table:
            continue
        table[f"d{key}"] = table[key] - ref.get(key, math.nan)
        e0 = ref.get(err, math.nan)
        table[f"d{key}_err"] = np.sqrt(np.square(table[err].astype(float)) + (e0 if np.isfinite(e0) else 0.0) ** 2)
    return table


def plot_melting(ramps: dict[str, list[Path]], two_phase: pd.DataFrame, path: str | Path,
                 T_ms: dict[str, float] | None = None) -> None:
    """H(T) of every ramp (one colour per potential; heating solid, cooling dashed; T_m of the
    two-phase runs dotted) and the two-phase outcomes (crystalline fraction change vs set T)."""
    from .nucleation import _plt

    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, dirs) in enumerate(ramps.items()):
        c = colours[k % len(colours)]
        shown = set()
        for d in dirs:
            ht = pd.read_csv(d / "ramp.csv")
            what = "heating" if ht["T_target"].iloc[-1] > ht["T_target"].iloc[0] else "cooling"
            a.plot(ht["T_target"], ht["H_per_atom"], color=c, ls="-" if what == "heating" else "--", lw=1,
                   label=None if what in shown else f"{label} {what}")
            shown.add(what)
        T_m = (T_ms or {}).get(label, math.nan)
        if np.isfinite(T_m):
            a.axvline(T_m, color=c, ls=":", lw=1, label=f"{label} T_m (two-phase)")
    a.set_xlabel("thermostat T (K)")
    a.set_ylabel("H (eV/atom)")
    a.legend(fontsize=7)
    a.set_title("H(T) ramps")
    if not two_phase.empty:
        for k, (label, sub) in enumerate(two_phase.groupby("label", sort=False)):
            b.scatter(sub["T_set"] + 2.0 * k, sub["f_end"] - sub["f_start"], color=colours[k % len(colours)],
                      label=label, s=18)
        b.axhline(0, color="grey", lw=0.8)
        b.legend(fontsize=7)
    b.set_xlabel("set T (K)")
    b.set_ylabel("crystalline fraction: end − start")
    b.set_title("two-phase runs (> 0: solid grew)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def melting_study(potentials: dict[str, str | Path], out: str | Path, tol: float = 0.15,
                  final: float | None = None, molar_mass: float | None = None) -> pd.DataFrame:
    """Write ``out`` (CSV: one row per potential), ``<stem>_two_phase.csv``,
    ``<stem>_ramps.csv``, ``<stem>.json`` and ``<stem>.png``; return the table."""
    if not potentials:
        raise MeltpotError("no potentials given (LABEL=FOLDER)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, tps, rps, ramp_dirs = [], [], [], {}
    for label, folder in potentials.items():
        row, tp, rp = potential_summary(label, folder, tol, final, molar_mass)
        rows.append(row)
        tps.append(tp)
        rps.append(rp)
        ramp_dirs[label] = _run_dirs(Path(folder), "ramp")
    table = compare(rows)
    table.to_csv(out, index=False)
    tp_all = pd.concat([t for t in tps if not t.empty], ignore_index=True) if any(not t.empty for t in tps) \
        else pd.DataFrame()
    rp_all = pd.concat([r for r in rps if not r.empty], ignore_index=True) if any(not r.empty for r in rps) \
        else pd.DataFrame()
    stem = out.with_suffix("")
    tp_all.to_csv(f"{stem}_two_phase.csv", index=False)
    rp_all.to_csv(f"{stem}_ramps.csv", index=False)
    from ..manifest import write_json

    write_json(out.with_suffix(".json"), {"tol": tol, "final": final, "molar_mass": molar_mass, "potentials": {k: str(v) for k, v in potentials.items()},
                                          "table": json.loads(table.to_json(orient="records"))})
    plot_melting(ramp_dirs, tp_all, out.with_suffix(".png"),
                 {r["label"]: r.get("T_m", math.nan) for r in rows})
    return table
