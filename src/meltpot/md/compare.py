"""Reference vs ML potential: the same MD protocol run with both, compared on what users check first.

Each label (the first is the reference) has one or more run folders of ``meltpot md run`` (its
``dump.lammpstrj`` and ``thermo.csv``), independent replicas that differ only in the velocity
seed. Per replica: density and potential energy per atom averaged over the production stage,
mean T, g(r) (closest approach r_min — where the running coordination reaches 0.01, the sign of a
collapsing potential when far below the reference's —, first peak position and height, first
minimum, coordination number), the self-diffusion coefficient D from the MSD of the production
dump, and for runs of the meltpot pair style the atom-steps with descriptors outside the training
range (from ``log.lammps``). Per label: the mean over replicas, the standard deviation across
replicas (ddof 1) and the standard error std/√n; per compared label: the difference of the means
to the reference and its combined standard error √(se_ref² + se²) (NaN with a single replica),
and the MSE between the replica-averaged g(r) of the label and of the reference on one common
grid (the same r_max — half the narrowest cell of all runs unless given — and bins for all), with
its noise floor (the MSE two equal potentials would show: the mean over bins of the squared
standard errors of both averages).

Verdicts (:data:`THRESHOLDS`, config ``validation_md.thresholds``) compare each difference with
a tolerance — |ΔD|/D_ref ≤ ``D_relative``, |ΔE_pot| ≤ ``pe_per_atom`` (default 0.005 eV/atom in
metal units, 0.01 ε/atom in lj), |Δρ|/ρ_ref ≤ ``density_relative`` — as an equivalence test on
the interval Δ ± k σ (k = ``sigmas``, σ the combined standard error): **pass** when the whole
interval lies within the tolerance, **fail** when it lies wholly outside, **inconclusive** when it
straddles the limit (the replicas are too few or too short to tell; run more or longer). So a
small but significant difference passes and a large difference that is noise is not called a
failure. With one replica per label there is no σ and the point estimate decides (pass/fail).
g(r) passes when the MSE of the replica-averaged curves ≤ ``gr_mse``. A value that could not be
computed fails. The overall ``pass`` needs every verdict to pass and the stability checks
(:func:`stability_checks`, per replica) of every compared label.

Writes ``comparison.csv`` (one row per quantity: per label the mean, ``_std`` and ``_sem``, per
compared label the difference ``LABEL-REF``, its ``_se`` and ``LABEL_verdict``; the g(r) MSE as
row ``gr_mse``), ``replicas.csv`` (one row per run folder), ``comparison.json`` (all of it, with
``verdicts`` and ``pass``; non-finite numbers as null) and ``gr.png`` / ``msd.png`` (replica means,
the g(r) with a ±1 std band). :func:`combine_comparisons` merges the comparisons of several
conditions (the workflow's temperatures). Units: metal (Å, g/cm³, eV/atom, Å²/ps) or lj.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import dynamics as dy
from ..analysis.trajectory import read_trajectory
from ..analysis.structure import _cell_widths, compute_rdf, coordination_numbers, running_coordination
from ..analysis.trajectory import iter_frames
from ..errors import ConfigError, MeltpotError
from ..manifest import write_json
from ..plots import plt

log = logging.getLogger(__name__)

PRODUCTION_STAGES = ("produce", "production")

#: default verdict thresholds (config ``validation_md.thresholds``); ``pe_per_atom`` None: by units
THRESHOLDS = {"D_relative": 0.10, "sigmas": 2.0, "pe_per_atom": None, "gr_mse": 1.0e-3, "density_relative": 0.01}
#: default |ΔE_pot| per atom by units: 5 meV/atom (metal), 0.01 ε/atom (lj; about 0.2 % of a
#: dense LJ liquid's energy, the same fraction as 5 meV of liquid Al's)
PE_PER_ATOM = {"metal": 0.005, "lj": 0.01}

UNITS = {"metal": {"density": "g/cm³", "pe_per_atom": "eV/atom", "T": "K", "r_min": "Å", "g_peak_r": "Å",
                   "g_first_min": "Å", "D": "Å²/ps"},
         "lj": {"density": "m/σ³", "pe_per_atom": "ε/atom", "T": "ε/k_B", "r_min": "σ", "g_peak_r": "σ",
                "g_first_min": "σ", "D": "σ²/τ"}}


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


def replica_checks(ref: dict, replicas: Sequence[dict]) -> dict:
    """:func:`stability_checks` of every replica against the reference's means; problems and notes
    name the replica (``replica K: …``); stable when every replica is."""
    problems, notes = [], []
    for k, values in enumerate(replicas):
        chk = stability_checks(ref, values)
        problems += [f"replica {k}: {p}" for p in chk["problems"]]
        notes += [f"replica {k}: {n}" for n in chk["notes"]]
    return {"stable": not problems, "problems": problems, "notes": notes}


def half_cell_width(folder: str | Path, types: dict[int, str]) -> float:
    """Half the narrowest width of the first dump frame's cell of a run folder (the largest r
    where g(r) counts each pair once)."""
    cell = np.asarray(next(iter_frames(Path(folder) / "dump.lammpstrj", types=types)).cell)
    return 0.5 * float(_cell_widths(cell).min())


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
        rmax = half_cell_width(folder, types)
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


def replica_stats(values: Sequence[float]) -> dict:
    """Mean, standard deviation across replicas (ddof 1; NaN for one) and standard error std/√n
    of one quantity's replica values (NaN replicas are kept: they make the mean NaN)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    return {"mean": mean, "std": std, "sem": std / math.sqrt(n) if n > 1 else float("nan"), "n": n}


def resolve_thresholds(thresholds: Mapping | None = None, units: str = "metal") -> dict:
    """:data:`THRESHOLDS` updated with ``thresholds`` (None values keep the default); ``pe_per_atom``
    None becomes the units' default (:data:`PE_PER_ATOM`)."""
    out = dict(THRESHOLDS)
    for key, value in (thresholds or {}).items():
        if key not in THRESHOLDS:
            raise ConfigError(f"unknown validation threshold {key!r}; allowed: {', '.join(THRESHOLDS)}")
        if value is not None:
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"validation threshold {key} = {value!r}: need a finite number ≥ 0")
            out[key] = float(value)
    if out["pe_per_atom"] is None:
        if units not in PE_PER_ATOM:
            raise ConfigError(f"units {units!r}: give the potential-energy threshold (pe_per_atom) explicitly")
        out["pe_per_atom"] = PE_PER_ATOM[units]
    return out


def verdict_word(v: Mapping) -> str:
    """'pass', 'fail' or 'inconclusive' of one verdict dict (older files carry only ``pass``)."""
    return v.get("verdict") or ("pass" if v.get("pass") else "fail")


def overall_outcome(verdicts, checks) -> str:
    """'fail' when a verdict fails or a run is not stable, else 'inconclusive' when a verdict is,
    else 'pass'."""
    words = [verdict_word(v) for v in verdicts]
    if "fail" in words or not all(c["stable"] for c in checks):
        return "fail"
    return "inconclusive" if "inconclusive" in words else "pass"


def verdict_shown(v: Mapping) -> str:
    """The verdict as printed for people: 'pass', 'FAIL' or 'INCONCLUSIVE'."""
    w = verdict_word(v)
    return w if w == "pass" else w.upper()


def _finite(*xs) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def _tolerance_verdict(d: float, se: float, limit: float, k: float, *, scale: float | None = None,
                       what: str, unit: str, missing: str) -> dict:
    """Equivalence test of a difference ``d`` ± ``k``·``se`` against the tolerance ``limit`` (relative
    to ``scale`` when given, else absolute): pass / fail / inconclusive (module docstring).
    ``value`` is the difference in the tolerance's terms (relative when ``scale`` is given)."""
    rel = scale is not None
    if not rel:
        f = 1.0
    else:   # relative to the reference value; none without one
        f = 1.0 / scale if _finite(scale) and scale != 0 else float("nan")
    value, sigma = d * f, abs(se * f) if _finite(se) else float("nan")
    res = {"value": value, "threshold": limit, "difference": d, "se": se, "sigma_threshold": k,
           "sigmas": abs(d) / se if _finite(d, se) and se > 0 else None}
    if not _finite(value):
        return {**res, "pass": False, "verdict": "fail", "interval": None, "detail": missing}
    shown = (lambda x: f"{100 * x:+.1f} %") if rel else (lambda x: f"{x:+.3g} {unit}".rstrip())
    lim_shown = f"{100 * limit:g} %" if rel else f"{limit:g} {unit}".rstrip()
    head = f"{what} = {d:.3g} {unit}".rstrip() + (f" = {shown(value)}" if rel else "")
    if not _finite(sigma):
        verdict = "pass" if abs(value) <= limit else "fail"
        return {**res, "pass": verdict == "pass", "verdict": verdict, "interval": None,
                "detail": f"{head} (limit ±{lim_shown}); one replica per label: no σ, the value decides"}
    lo, hi = value - k * sigma, value + k * sigma
    if max(abs(lo), abs(hi)) <= limit:
        verdict, why = "pass", "inside"
    elif lo > limit or hi < -limit:
        verdict, why = "fail", "outside"
    else:
        verdict, why = "inconclusive", "across the limit: more or longer replicas needed to decide"
    return {**res, "pass": verdict == "pass", "verdict": verdict, "interval": [lo, hi],
            "detail": f"{head}, {k:g}σ interval [{shown(lo)}, {shown(hi)}] {why} (limit ±{lim_shown})"}


def verdicts(ref: dict, run: dict, diff: dict, gr_mse: dict, thresholds: dict, units: str = "metal") -> dict:
    """The verdicts (pass / fail / inconclusive) of one compared label (see module docstring). ``ref``/``run``: the
    per-quantity statistics (:func:`replica_stats`) of the reference and of the label; ``diff``:
    ``{quantity: {"difference", "se"}}``; ``gr_mse``: ``{"value", "noise"}``; ``thresholds``
    resolved (:func:`resolve_thresholds`)."""
    u = UNITS.get(units, {})
    k = thresholds["sigmas"]
    out = {}
    d, se, d_ref = diff["D"]["difference"], diff["D"]["se"], ref["D"]["mean"]
    out["D"] = _tolerance_verdict(d, se, thresholds["D_relative"], k, scale=d_ref, what="ΔD",
                                  unit=u.get("D", ""), missing="D not computed")
    d, se = diff["pe_per_atom"]["difference"], diff["pe_per_atom"]["se"]
    out["pe_per_atom"] = _tolerance_verdict(d, se, thresholds["pe_per_atom"], k, what="ΔE_pot",
                                            unit=u.get("pe_per_atom", ""), missing="E_pot not computed")
    # g(r): MSE of the replica-averaged curves on the common grid
    mse, noise, lim = gr_mse["value"], gr_mse["noise"], thresholds["gr_mse"]
    if not _finite(mse):
        detail = "g(r) not computed"
    else:
        detail = f"MSE {mse:.3g} (limit {lim:g}" + (f"; noise floor {noise:.2g})" if _finite(noise) else ")")
    ok = _finite(mse) and mse <= lim
    out["gr_mse"] = {"value": mse, "threshold": lim, "pass": bool(ok), "verdict": "pass" if ok else "fail",
                     "noise": noise, "detail": detail}
    d, se, rho = diff["density"]["difference"], diff["density"]["se"], ref["density"]["mean"]
    out["density"] = _tolerance_verdict(d, se, thresholds["density_relative"], k, scale=rho, what="Δρ",
                                        unit=u.get("density", ""),
                                        missing="density not computed (no Density column)")
    return out


def _folders(spec) -> list[Path]:
    if isinstance(spec, (str, Path)):
        return [Path(spec)]
    folders = [Path(f) for f in spec]
    if not folders:
        raise MeltpotError("a label without run folders")
    return folders


def compare_runs(runs: Mapping[str, str | Path | Sequence[str | Path]], out_dir: str | Path, types: dict[int, str],
                 timestep: float, units: str = "metal", thresholds: Mapping | None = None, bins: int = 200,
                 rmax: float | None = None) -> pd.DataFrame:
    """Analyse each labelled set of replica folders (the first label is the reference; a single
    folder is one replica) and write the comparison files (module docstring); returns the table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folders = {label: _folders(spec) for label, spec in runs.items()}
    labels = list(folders)
    if len(labels) < 2:
        raise MeltpotError(f"compare needs a reference and at least one other label, got {labels}")
    thr = resolve_thresholds(thresholds, units)
    for lab, fs in folders.items():
        for f in fs:
            if not (f / "dump.lammpstrj").exists():
                raise MeltpotError(f"{f / 'dump.lammpstrj'} does not exist (is {f} a `meltpot md run` folder?)")
    if rmax is None:  # one grid for all: half the narrowest cell of all runs
        rmax = min(half_cell_width(f, types) for fs in folders.values() for f in fs)
    res = {lab: [analyse_run(f, types, timestep, rmax=rmax, bins=bins) for f in fs] for lab, fs in folders.items()}
    ref = labels[0]
    quantities = list(res[ref][0]["values"])
    stats = {lab: {q: replica_stats([r["values"][q] for r in rs]) for q in quantities} for lab, rs in res.items()}
    g_mean = {lab: np.mean([r["g"] for r in rs], axis=0) for lab, rs in res.items()}
    g_var = {lab: (np.var([r["g"] for r in rs], axis=0, ddof=1) / len(rs) if len(rs) > 1 else
                   np.full_like(g_mean[lab], np.nan)) for lab, rs in res.items()}
    diffs, mse, checks, verdict = {}, {}, {}, {}
    for lab in labels[1:]:
        diffs[lab] = {q: {"difference": stats[lab][q]["mean"] - stats[ref][q]["mean"],
                          "se": math.hypot(stats[lab][q]["sem"], stats[ref][q]["sem"])} for q in quantities}
        mse[lab] = {"value": float(np.mean((g_mean[lab] - g_mean[ref]) ** 2)),
                    "noise": float(np.mean(g_var[lab] + g_var[ref]))}
        checks[lab] = replica_checks({q: stats[ref][q]["mean"] for q in quantities},
                                     [r["values"] for r in res[lab]])
        verdict[lab] = verdicts(stats[ref], stats[lab], diffs[lab], mse[lab], thr, units)
        if not checks[lab]["stable"]:
            log.warning("%s is not a stable liquid like %s: %s", lab, ref, "; ".join(checks[lab]["problems"]))
    unit = UNITS.get(units, {})
    rows = []
    for q in [*quantities, "gr_mse"]:
        row = {"quantity": q, "unit": unit.get(q, "")}
        for lab in labels:
            s = stats[lab].get(q, {})
            row[lab], row[f"{lab}_std"], row[f"{lab}_sem"] = (s.get(k, float("nan")) for k in ("mean", "std", "sem"))
        for lab in labels[1:]:
            if q == "gr_mse":
                row[f"{lab}-{ref}"], row[f"{lab}-{ref}_se"] = mse[lab]["value"], float("nan")
            else:
                row[f"{lab}-{ref}"], row[f"{lab}-{ref}_se"] = diffs[lab][q]["difference"], diffs[lab][q]["se"]
            v = verdict[lab].get(q)
            row[f"{lab}_verdict"] = "" if v is None else verdict_word(v)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / "comparison.csv", index=False)
    per_replica = [{"label": lab, "replica": k, "folder": str(f), "n_atoms": r["n_atoms"], "frames": r["frames"],
                    **r["values"]} for lab in labels for k, (f, r) in enumerate(zip(folders[lab], res[lab]))]
    pd.DataFrame(per_replica).to_csv(out / "replicas.csv", index=False)
    flat = {(f"{lab}:{name}" if len(labels) > 2 else name): v for lab in labels[1:] for name, v in verdict[lab].items()}
    counts = {lab: len(fs) for lab, fs in folders.items()}
    summary = {
        "units": units, "reference": ref,
        "n_replicas": counts[ref] if len(set(counts.values())) == 1 else counts,
        "grid": {"rmax": rmax, "bins": bins}, "thresholds": thr,
        "runs": {lab: {"folders": [str(f) for f in folders[lab]], "n_replicas": counts[lab],
                       "n_atoms": res[lab][0]["n_atoms"], "frames": [r["frames"] for r in res[lab]],
                       "mean": {q: s["mean"] for q, s in stats[lab].items()},
                       "std": {q: s["std"] for q, s in stats[lab].items()},
                       "sem": {q: s["sem"] for q, s in stats[lab].items()},
                       "replicas": [dict(r["values"], folder=str(f)) for f, r in zip(folders[lab], res[lab])]}
                 for lab in labels},
        "differences": diffs, "gr_mse": mse, "checks": checks, "verdicts": flat,
        "pass": all(v["pass"] for v in flat.values()) and all(c["stable"] for c in checks.values()),
        "outcome": overall_outcome(flat.values(), checks.values()),
    }
    write_json(out / "comparison.json", summary)
    _plots(res, g_mean, out, labels, units, stats)
    return table


def _plots(res: dict, g_mean: dict, out: Path, labels: list[str], units: str, stats: dict) -> None:
    T = stats[labels[0]]["T"]["mean"]
    title = f"{' vs '.join(labels)} at {T:.0f}" + (" K" if units == "metal" else "")
    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    for lab in labels:
        rs = res[lab]
        line, = ax.plot(rs[0]["r"], g_mean[lab], label=f"{lab} ({len(rs)} × {rs[0]['n_atoms']} atoms)")
        if len(rs) > 1:
            sd = np.std([r["g"] for r in rs], axis=0, ddof=1)
            ax.fill_between(rs[0]["r"], g_mean[lab] - sd, g_mean[lab] + sd, color=line.get_color(), alpha=0.25, lw=0)
    ax.set_xlabel("r (Å)" if units == "metal" else "r")
    ax.set_ylabel("g(r)")
    ax.legend(frameon=False)
    ax.set_title(title)
    fig.savefig(out / "gr.png", dpi=130)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    for lab in labels:
        rs = res[lab]
        same = all(len(r["t"]) == len(rs[0]["t"]) and np.allclose(r["t"], rs[0]["t"]) for r in rs)
        if same:
            ax.plot(rs[0]["t"], np.mean([r["msd"] for r in rs], axis=0), label=f"{lab} (mean of {len(rs)})")
        else:
            for k, r in enumerate(rs):
                ax.plot(r["t"], r["msd"], lw=0.8, label=lab if k == 0 else None)
    ax.set_xlabel("t (ps)" if units == "metal" else "t")
    ax.set_ylabel("MSD (Å²)" if units == "metal" else "MSD")
    ax.legend(frameon=False)
    ax.set_title(title)
    fig.savefig(out / "msd.png", dpi=130)
    plt.close(fig)


def _strict_json(path: Path):
    def bad(name):
        raise MeltpotError(f"{path}: not valid JSON ({name})")

    return json.loads(path.read_text(), parse_constant=bad)


def combine_comparisons(parts: Mapping[str, str | Path], out_dir: str | Path) -> pd.DataFrame:
    """Merge the comparison folders of several conditions (``{name: folder}``, e.g. one per
    temperature, names such as ``T1000``): ``comparison.csv`` and ``replicas.csv`` stacked with a
    ``condition`` column first, ``comparison.json`` with each condition's comparison under
    ``conditions``, the verdicts as ``OBSERVABLE@NAME``, the checks as ``LABEL@NAME`` and ``pass``
    when every condition passes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables, replicas, data = [], [], {}
    for name, folder in parts.items():
        folder = Path(folder)
        for f in ("comparison.csv", "comparison.json"):
            if not (folder / f).exists():
                raise MeltpotError(f"{folder / f} does not exist (is {folder} a `meltpot md compare` folder?)")
        tables.append(pd.read_csv(folder / "comparison.csv").assign(condition=name))
        if (folder / "replicas.csv").exists():
            replicas.append(pd.read_csv(folder / "replicas.csv").assign(condition=name))
        data[name] = _strict_json(folder / "comparison.json")
    table = pd.concat(tables, ignore_index=True)
    table = table[["condition", *[c for c in table.columns if c != "condition"]]]
    table.to_csv(out / "comparison.csv", index=False)
    if replicas:
        rep = pd.concat(replicas, ignore_index=True)
        rep[["condition", *[c for c in rep.columns if c != "condition"]]].to_csv(out / "replicas.csv", index=False)
    first = next(iter(data.values()))
    counts = [d.get("n_replicas") for d in data.values()]
    write_json(out / "comparison.json", {
        "units": first.get("units"), "reference": first.get("reference"),
        "n_replicas": counts[0] if all(c == counts[0] for c in counts) else dict(zip(data, counts)),
        "conditions": data,
        "verdicts": {f"{obs}@{name}": v for name, d in data.items() for obs, v in (d.get("verdicts") or {}).items()},
        "checks": {f"{lab}@{name}": c for name, d in data.items() for lab, c in (d.get("checks") or {}).items()},
        "pass": all(bool(d.get("pass")) for d in data.values()),
        "outcome": overall_outcome([{"verdict": d.get("outcome") or ("pass" if d.get("pass") else "fail")}
                                    for d in data.values()], []),
    })
    return table
