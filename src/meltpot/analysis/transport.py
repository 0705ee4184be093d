"""Transport coefficients from the files of MD runs, over independent replicas: self-diffusion
from the MSD of trajectories, Green–Kubo shear viscosity from pressure-tensor series (LAMMPS
logs or ``fix ave/time`` files), Green–Kubo interdiffusion of a binary from velocities, and
Arrhenius fits of D(T) and η(T) from the per-temperature tables those write
(``meltpot analyze msd|viscosity|interdiffusion|arrhenius``).

The estimators (MSD, fit windows, Green–Kubo integrals and plateaus) are in
:mod:`meltpot.analysis.dynamics`; this module reads the inputs, checks that replicas agree, and
assembles the tables and plots.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FrameError, MeltpotError
from ..manifest import write_json
from . import dynamics as dy

_PRESS_INDEX = {"pxx": 1, "pyy": 2, "pzz": 3, "pxy": 4, "pxz": 5, "pyz": 6}
#: default pattern for T in per-temperature file paths (arrhenius)
T_PATH_PATTERN = r"T(?P<T>[0-9.]+)"


# ----------------------------------------------------------------------------- trajectories
def frame_spacing(rep: dict) -> int:
    """The MD steps between consecutive frames of a :func:`~meltpot.analysis.trajectory.read_trajectory`
    result; FrameError naming the first frame whose step number repeats (the steps do not
    advance), goes back, or breaks an equal spacing."""
    steps = np.asarray(rep["steps"])
    d = np.diff(steps)
    back = np.flatnonzero(d <= 0)
    if len(back):
        i = int(back[0]) + 1
        if d[i - 1] == 0:
            reason = (f"step {steps[i]} again (frame {i - 1} has the same step): the step numbers do not advance, "
                      "so the time between frames is unknown (a frame written twice, or step numbers that are not "
                      "MD steps)")
        else:
            reason = (f"step {steps[i]} after step {steps[i - 1]}: the step numbers go back (several runs in one "
                      "file? select one with --start/--stop)")
        raise FrameError(rep["source"], i, reason)
    bad = np.flatnonzero(d != d[0])
    if len(bad):
        i = int(bad[0]) + 1
        raise FrameError(rep["source"], i, f"step {steps[i]}: {d[i - 1]} steps after the previous frame, {d[0]} "
                                           "between the first frames: frames are not equally spaced in time")
    return int(d[0])


@dataclass
class MSDAnalysis:
    """MSD per species averaged over replicas and the self-diffusion coefficients."""

    t: np.ndarray
    mean: dict
    err: dict | None
    fits: dict
    table: pd.DataFrame
    n_frames: int
    truncated: bool
    n_replicas: int
    n_atoms: int
    unwrapped_by: list = field(default_factory=list)


def msd_analysis(reps: list[dict], timestep: float, units: str = "metal", *, remove_com: bool = False,
                 fit_window=None, window_method: str = "slope", slope_tol: float = 0.1,
                 max_fraction: float = 0.5) -> MSDAnalysis:
    """MSD per species of replica trajectories (:func:`~meltpot.analysis.trajectory.read_trajectory`
    results with the same species and frame spacing; longer ones are cut to the shortest) and D
    with its standard error over replicas (:func:`~meltpot.analysis.dynamics.diffusion_replicas`).
    ``timestep``: MD time per step of the files' step counter."""
    spacing = []
    for r in reps:
        spacing.append(frame_spacing(r))
        if list(r["species"]) != list(reps[0]["species"]):
            raise FrameError(r["source"], None, f"species differ from {reps[0]['source']}")
    if len(set(spacing)) > 1:
        raise MeltpotError(f"replicas have different frame spacings {spacing} (steps)")
    n = min(len(r["steps"]) for r in reps)
    truncated = any(len(r["steps"]) != n for r in reps)
    dt = spacing[0] * timestep
    t, curves = None, []
    for r in reps:
        t, m = dy.msd_per_species(r["positions"][:n], dt, r["species"], remove_com=remove_com)
        curves.append(m)
    labels = list(curves[0])
    mean = {k: np.mean([c[k] for c in curves], axis=0) for k in labels}
    err = ({k: np.std([c[k] for c in curves], axis=0, ddof=1) / np.sqrt(len(curves)) for k in labels}
           if len(curves) > 1 else None)
    window_kw = {"method": window_method, "tol": slope_tol, "max_fraction": max_fraction}
    rows, fits = [], {}
    u = dy.UNITS[units]
    sp = reps[0]["species"]
    for k in labels:
        res = dy.diffusion_replicas(t, [c[k] for c in curves], window=tuple(fit_window) if fit_window else None,
                                    **window_kw)
        fits[k] = res.fit
        row = {"species": k, "n_atoms": int((sp == k).sum()) if k in set(sp.tolist()) else len(sp), "D": res.D,
               "D_err": res.D_err, "unit": u["diffusion"], "n_replicas": len(reps), "t_start": res.fit.t_start,
               "t_end": res.fit.t_end, "window": res.fit.method, "window_ok": res.fit.ok}
        if units in dy._DIFFUSION_SI:
            f = dy._DIFFUSION_SI[units] / 1e-9
            row.update({"D_1e-9_m2_s": res.D * f, "D_err_1e-9_m2_s": res.D_err * f})
        rows.append(row)
    return MSDAnalysis(t=t, mean=mean, err=err, fits=fits, table=pd.DataFrame(rows), n_frames=n, truncated=truncated,
                       n_replicas=len(reps), n_atoms=reps[0]["positions"].shape[1],
                       unwrapped_by=sorted({r["unwrapped_by"] for r in reps}))


def write_msd(res: MSDAnalysis, out_dir, units: str = "metal") -> list[Path]:
    """``msd.csv``, ``diffusion.csv`` and ``msd.png`` of an :class:`MSDAnalysis` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dy.write_msd_csv(out / "msd.csv", res.t, res.mean, res.err)
    res.table.to_csv(out / "diffusion.csv", index=False)
    dy.plot_msd(out / "msd.png", res.t, res.mean, res.fits, units=units,
                title=f"{res.n_replicas} replica(s), {res.n_atoms} atoms; unwrapped by {', '.join(res.unwrapped_by)}")
    return [out / "msd.csv", out / "diffusion.csv", out / "msd.png"]


# ----------------------------------------------------------------------------- pressure series
def _file_kind(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    return "ave-time" if first.startswith("# Time-averaged data") else "log"


def _find_column(table, name: str, source: str) -> str:
    """Column of ``table`` holding pressure component ``name`` (pxy...): the name itself,
    v_<name>, or c_<id>[k] of a pressure compute (k = 1..6 for xx yy zz xy xz yz)."""
    lookup = {str(c).lower(): c for c in table.columns}
    for cand in (name.lower(), f"v_{name.lower()}"):
        if cand in lookup:
            return lookup[cand]
    k = _PRESS_INDEX.get(name.lower())
    if k is not None:
        hits = [c for c in table.columns if re.fullmatch(rf"c_\w*press\w*\[{k}\]", str(c), re.I)]
        if len(hits) == 1:
            return hits[0]
    raise FrameError(source, None, f"no column for {name} (columns: {', '.join(map(str, table.columns))}); "
                                   "name it with --columns")


def _uniform_rows(table, source: str):
    """Rows with a uniform Step spacing (a last, off-grid thermo row is dropped)."""
    steps = table["Step"].to_numpy()
    if len(steps) < 3:
        raise FrameError(source, None, f"only {len(steps)} rows of data")
    diffs = np.diff(steps)
    spacing = Counter(diffs.tolist()).most_common(1)[0][0]
    if diffs[-1] != spacing and np.all(diffs[:-1] == spacing):
        table, diffs = table.iloc[:-1], diffs[:-1]
    bad = np.flatnonzero(diffs != spacing)
    if len(bad) or spacing <= 0:
        i = int(bad[0]) + 1 if len(bad) else 1
        raise FrameError(source, None, f"row {i} (Step {steps[i]}): samples are not equally spaced in time "
                                       f"(spacing {spacing} steps elsewhere); select one run with --run")
    return table, int(spacing)


def read_pressure(path, timestep: float, *, fmt: str = "auto", columns=None, diagonal: bool = False,
                  run: int | None = None, skip: int = 0, temperature: float | None = None,
                  volume: float | None = None) -> dict:
    """The shear-stress series of one run for Green–Kubo: ``stress`` (rows × 3 or 5 components),
    ``dt`` (time between rows: the Step spacing × ``timestep``), ``temperature`` and ``volume``
    (given, else the means of their columns), ``rows`` and the ``columns`` used. ``fmt``: "log",
    "ave-time" or "auto"; ``columns``: names of pxy pxz pyz (with ``diagonal``: pxx pyy pzz pxy
    pxz pyz), else found by name; ``run``: the thermo block of a log (default: the last with all
    columns); ``skip``: initial rows dropped."""
    from .trajectory import read_ave_time, read_log

    path = Path(path)
    kind = _file_kind(path, fmt)
    table = read_ave_time(path) if kind == "ave-time" else read_log(path)
    source = str(path)
    if columns:
        if len(columns) != (6 if diagonal else 3):
            raise MeltpotError(f"--columns needs {'6 (xx yy zz xy xz yz)' if diagonal else '3 (xy xz yz)'} "
                               f"names, got {len(columns)}")
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise FrameError(source, None, f"no column {', '.join(missing)} (columns: {', '.join(map(str, table.columns))})")
        cols = list(columns)
    else:
        names = ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz") if diagonal else ("pxy", "pxz", "pyz")
        cols = [_find_column(table, n, source) for n in names]
    if "run" in table.columns:
        runs = sorted(table["run"].unique())
        if run is not None:
            if run not in runs:
                raise FrameError(source, None, f"no thermo block {run}; blocks: {runs}")
            chosen = run
        else:  # the last block that has all needed columns
            ok = [r for r in runs if table.loc[table["run"] == r, cols].notna().all().all()]
            if not ok:
                raise FrameError(source, None, f"no thermo block has all of {', '.join(cols)}")
            chosen = ok[-1]
        table = table[table["run"] == chosen]
    table = table.iloc[skip:]
    table, spacing = _uniform_rows(table.reset_index(drop=True), source)
    values = table[cols].to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        row = int(np.argmax(~np.isfinite(values).all(axis=1)))
        raise FrameError(source, None, f"row {row} (Step {table['Step'].iloc[row]}): non-finite pressure")
    stress = values if len(cols) == 3 else dy.shear_components(values, diagonal=True)

    def mean_of(value, names, what):
        if value is not None:
            return float(value)
        lookup = {str(c).lower(): c for c in table.columns}
        for n in names:
            if n.lower() in lookup:
                return float(table[lookup[n.lower()]].mean())
        raise FrameError(source, None, f"no {what} column ({'/'.join(names)}); give --{what}")

    temperature = mean_of(temperature, ("Temp", "c_thermo_temp", "v_temp", "v_T"), "temperature")
    # v_meltpot_vol: the pressure.dat that `meltpot md run` production stages write
    volume = mean_of(volume, ("Volume", "v_vol", "v_volume", "v_V", "v_meltpot_vol"), "volume")
    return {"stress": stress, "dt": spacing * timestep, "temperature": temperature, "volume": volume,
            "rows": len(table), "columns": cols}


def viscosity_analysis(data: list[dict], units: str = "metal", **gk_kw):
    """Green–Kubo shear viscosity over replica series (:func:`read_pressure` results with the
    same sampling interval): (one-row summary table, :class:`~meltpot.analysis.dynamics.ViscosityResult`)."""
    dts = {round(d["dt"], 12) for d in data}
    if len(dts) > 1:
        raise MeltpotError(f"replicas have different sampling intervals {sorted(dts)}")
    res = dy.viscosity_gk([d["stress"] for d in data], data[0]["dt"], [d["volume"] for d in data],
                          [d["temperature"] for d in data], units=units, **gk_kw)
    row = {"eta": res.eta, "eta_err": res.eta_err, "unit": res.unit, "n_replicas": res.n_replicas,
           "n_components": res.n_components, "n_samples": res.gk.n_samples, "t_start": res.gk.t_start,
           "t_end": res.gk.t_end, "plateau_ok": res.gk.ok, "rule": res.gk.rule,
           "T_mean": float(np.mean([d["temperature"] for d in data])),
           "V_mean": float(np.mean([d["volume"] for d in data])), "dt_sample": data[0]["dt"],
           "rows_per_replica": min(d["rows"] for d in data), "columns": " ".join(map(str, data[0]["columns"]))}
    return pd.DataFrame([row]), res


def write_viscosity(table: pd.DataFrame, res, out_dir, units: str = "metal") -> list[Path]:
    """``viscosity.csv``, ``gk_viscosity.csv`` and ``viscosity.png`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "viscosity.csv", index=False)
    dy.write_gk_csv(out / "gk_viscosity.csv", res.gk)
    dy.plot_gk(out / "viscosity.png", res.gk, "η", res.unit, dy.UNITS[units]["time"])
    return [out / "viscosity.csv", out / "gk_viscosity.csv", out / "viscosity.png"]


# ----------------------------------------------------------------------------- interdiffusion
def interdiffusion_analysis(reps: list[dict], a: str, b: str, timestep: float, units: str = "metal", *,
                            scc0=None, phi=None, **gk_kw):
    """Onsager coefficient L and D_AB = L Φ of species ``a``, ``b`` by Green–Kubo over replica
    trajectories with velocities, with the Darken-like comparison from the self-diffusion of the
    same trajectories: (one-row table, :class:`~meltpot.analysis.dynamics.InterdiffusionResult`,
    the Darken comparison dict)."""
    n = min(len(r["steps"]) for r in reps)
    dt = frame_spacing(reps[0]) * timestep
    res = dy.interdiffusion_gk([r["velocities"][:n] for r in reps], reps[0]["species"], a, b, dt,
                               scc0=scc0, phi=phi, **gk_kw)
    u = dy.UNITS[units]
    row = {"pair": f"{a}-{b}", "x_a": res.x_a, "n_atoms": res.n_atoms, "L": res.L, "L_err": res.L_err,
           "phi": res.phi, "D_AB": res.D_AB, "D_AB_err": res.D_AB_err, "unit": u["diffusion"],
           "n_replicas": len(reps), "t_start": res.gk.t_start, "t_end": res.gk.t_end, "rule": res.gk.rule}
    # Darken-like comparison from the self-diffusion of the same trajectories
    t, curves = None, []
    for r in reps:
        t, m = dy.msd_per_species(r["positions"][:n], dt, r["species"])
        curves.append(m)
    self_d = {s: dy.diffusion_replicas(t, [c[s] for c in curves]).D for s in (a, b)}
    cmp_ = dy.darken_comparison(res.L, self_d[a], self_d[b], res.x_a, None if np.isnan(res.phi) else res.phi)
    row.update({f"D_{a}": self_d[a], f"D_{b}": self_d[b], "L_darken": cmp_["L_darken"], "S": cmp_["S"]})
    if "D_AB_darken" in cmp_:
        row["D_AB_darken"] = cmp_["D_AB_darken"]
    return pd.DataFrame([row]), res, cmp_


def write_interdiffusion(table: pd.DataFrame, res, out_dir, units: str = "metal") -> list[Path]:
    """``interdiffusion.csv``, ``gk_interdiffusion.csv`` and ``interdiffusion.png`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    u = dy.UNITS[units]
    table.to_csv(out / "interdiffusion.csv", index=False)
    dy.write_gk_csv(out / "gk_interdiffusion.csv", res.gk)
    dy.plot_gk(out / "interdiffusion.png", res.gk, "L", u["diffusion"], u["time"])
    return [out / "interdiffusion.csv", out / "gk_interdiffusion.csv", out / "interdiffusion.png"]


# ----------------------------------------------------------------------------- Arrhenius
def tables_by_temperature(files, pattern: str, column: str, what: str):
    """(T, file, table) for per-temperature CSV files, T from the named group of ``pattern`` in the
    path; MeltpotError naming the file when T or ``column`` is missing (``what``: the file kind)."""
    regex = re.compile(pattern)
    for f in files:
        m = regex.search(str(f))
        if m is None or "T" not in m.groupdict():
            raise MeltpotError(f"{f}: no temperature in the path (--pattern {pattern!r}, named group T)")
        table = pd.read_csv(f)
        if column not in table:
            raise MeltpotError(f"{f}: no {column} column (is it {what}?)")
        yield float(m.group("T")), f, table


def units_of_diffusion(labels) -> str | None:
    """The unit system whose diffusion unit (Å²/ps, Å²/fs, σ²/τ) all ``labels`` name, else None."""
    systems = {u for u, lab in dy.UNITS.items() for x in set(labels) if lab["diffusion"] == x}
    return systems.pop() if len(systems) == 1 and len(set(labels)) == 1 else None


def arrhenius(files, pattern: str = T_PATH_PATTERN, species: str | None = None, units: str | None = "metal"):
    """D0 and E_a of D = D0 exp(−E_a/k_B T) from per-temperature ``diffusion.csv`` files (of
    ``analyze msd``; ``species``: its row, default the first), weighted by D_err when every point
    has one: (table T, species, D, D_err, unit, file; the fit; its JSON summary with the
    ``units`` used; weighted). ``units`` None: the system of the tables' D unit, else metal."""
    rows = []
    for T, f, table in tables_by_temperature(files, pattern, "D", "a diffusion.csv of `meltpot analyze msd`"):
        if species is not None:
            table = table[table["species"].astype(str) == species]
            if table.empty:
                raise MeltpotError(f"{f}: no row for species {species}")
        row = table.iloc[0]
        err = float(row["D_err"]) if "D_err" in row and pd.notna(row["D_err"]) else float("nan")
        rows.append({"T": T, "species": str(row.get("species", "")), "D": float(row["D"]),
                     "D_err": err, "unit": str(row.get("unit", "")), "file": str(f)})
    data = pd.DataFrame(rows).sort_values("T")
    if units is None:
        units = units_of_diffusion(data["unit"]) or "metal"
    errs = data["D_err"].to_numpy(float)
    weighted = bool(np.all(np.isfinite(errs) & (errs > 0)))
    fit = dy.arrhenius_fit(data["T"], data["D"], errs if weighted else None, units=units)
    u = dy.UNITS[units]
    summary = {"D0": fit.D0, "D0_err": fit.D0_err, "E_a": fit.E_a, "E_a_err": fit.E_a_err,
               "D_unit": u["diffusion"], "E_unit": u["energy"], "weighted": weighted, "n_points": len(data)}
    return data, fit, summary | {"units": units}, weighted


def write_arrhenius(data: pd.DataFrame, fit, summary: dict, out, units: str = "metal") -> Path:
    """The table to ``out`` (CSV), the fit beside it (.json) and the plot (.png)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(out, index=False)
    write_json(out.with_suffix(".json"), {k: v for k, v in summary.items() if k != "units"})
    errs = data["D_err"].to_numpy(float)
    dy.plot_arrhenius(out.with_suffix(".png"), data["T"], data["D"], fit,
                      errs if summary["weighted"] else None, units=units)
    return out


def viscosity_vs_temperature(files, out, pattern: str = T_PATH_PATTERN, units: str = "metal") -> tuple[Path, int]:
    """η(T) table ``<stem>_viscosity.csv`` and plot (log η vs T with an Arrhenius fit of 1/η)
    beside ``out``, from per-temperature ``viscosity.csv`` files. Returns (table path, temperatures)."""
    out = Path(out)
    u = dy.UNITS[units]
    rows = []
    for T, f, table in tables_by_temperature(files, pattern, "eta", "a viscosity.csv of `meltpot analyze viscosity`"):
        r = table.iloc[0]
        rows.append({"T": T, "eta": float(r["eta"]),
                     "eta_err": float(r["eta_err"]) if "eta_err" in r and pd.notna(r["eta_err"]) else float("nan"),
                     "unit": str(r.get("unit", "")), "file": str(f)})
    visc = pd.DataFrame(rows).sort_values("T")
    path = out.with_name(out.stem + "_viscosity.csv")
    visc.to_csv(path, index=False)
    plt = dy._plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    err = visc["eta_err"].to_numpy(float)
    ax.errorbar(visc["T"], visc["eta"], yerr=np.where(np.isfinite(err), err, 0.0), fmt="o", ms=4)
    if len(visc) >= 2 and (visc["eta"] > 0).all():
        # η = η0 exp(+E_η / k_B T): the same fit as D with 1/η
        fit = dy.arrhenius_fit(visc["T"], 1.0 / visc["eta"], units=units)
        tt = np.linspace(visc["T"].min(), visc["T"].max(), 100)
        ax.plot(tt, 1.0 / fit.predict(tt), "--", label=f"E_η = {fit.E_a:.3g} ± {fit.E_a_err:.1g} {u['energy']}")
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel(f"T ({u['temperature']})")
    ax.set_ylabel(f"η ({visc['unit'].iloc[0]})")
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    plt.close(fig)
    return path, len(visc)
