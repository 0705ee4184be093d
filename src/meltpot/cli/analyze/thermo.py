"""``meltpot analyze enthalpy|enthalpy-drop|two-phase|melting``: melting and crystallisation from LAMMPS
logs (:mod:`meltpot.analysis.thermo`, :mod:`meltpot.analysis.nucleation`).

``enthalpy`` (H(T) of a heating/cooling ramp: melting/crystallisation jump and latent heat, or
glass kink; C_P of both branches), ``enthalpy-drop`` (H(t) of an isothermal run: the
crystallisation time) and ``two-phase`` (solid–liquid coexistence runs → T_m) write a CSV, a PNG
and a JSON summary with the same stem. ``melting`` pools the workflow's melting runs of several
potentials (:mod:`meltpot.analysis.melting`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ...analysis.thermo import NKTV2P, T_PATTERN, energy_label
from ...errors import MeltpotError
from ..options import add_config, add_timestep, command
from .common import output_paths, run_defaults


def _enthalpy_kw(args) -> dict:
    return dict(H_column=args.H_column, pressure=args.pressure, natoms=args.natoms, total=args.total)


def cmd_enthalpy(args) -> int:
    from ...analysis.nucleation import plot_ramp
    from ...manifest import write_json
    from ...analysis.thermo import enthalpy_ramp

    run_defaults(args, [args.log], units_choices=NKTV2P)
    points, r, summary = enthalpy_ramp(args.log, run=args.run, all_runs=args.all_runs, skip=args.skip,
                                       T_column=args.T_column, block=args.block, kind=args.kind,
                                       min_points=args.min_points, jump_sigma=args.jump_sigma, T_range=args.T_range,
                                       molar_mass=args.molar_mass, units=args.units, **_enthalpy_kw(args))
    out, png = output_paths(args.out)
    unit = energy_label(summary["per_atom"])
    points.to_csv(out, index=False)
    plot_ramp(points["T"].to_numpy(), points["H"].to_numpy(), r, png, T_label=args.T_label,
              H_label=f"H ({unit})" if args.units == "metal" else "H")
    js = out.with_suffix(".json")
    write_json(js, summary)
    what = "jump" if r.kind == "jump" else "kink (crossover)"
    print(f"{what} at T = {r.T_transition:.5g}; latent heat {r.latent_heat:.4g} {unit}; "
          f"C_P low {r.cp_low:.4g}, high {r.cp_high:.4g} {unit}/K (gap {r.gap_significance:.3g} σ)")
    print(f"written {out}, {png}, {js}")
    return 0


def cmd_enthalpy_drop(args) -> int:
    from ...analysis.nucleation import plot_enthalpy_time
    from ...manifest import write_json
    from ...analysis.thermo import enthalpy_time

    run_defaults(args, [args.log], units_choices=NKTV2P)
    series, d, summary, t_label = enthalpy_time(args.log, run=args.run, all_runs=args.all_runs, skip=args.skip,
                                                timestep=args.timestep, time_unit=args.time_unit, window=args.window,
                                                level=args.level, min_drop=args.min_drop, smooth=args.smooth,
                                                units=args.units, **_enthalpy_kw(args))
    out, png = output_paths(args.out)
    series.to_csv(out, index=False)
    unit = energy_label(summary["per_atom"])
    plot_enthalpy_time(series["time"].to_numpy(), series["H"].to_numpy(), png, d, time_label=t_label,
                       H_label=f"H ({unit})" if args.units == "metal" else "H")
    js = out.with_suffix(".json")
    write_json(js, summary)
    if d.found:
        print(f"drop of {d.dH:.4g} {unit} at {t_label.split(' ')[0]} {d.time:.5g} "
              f"(level {args.level:g}; noise {d.noise:.2g})")
    else:
        print(f"no significant drop (H {d.H_before:.5g} → {d.H_after:.5g}, noise {d.noise:.2g})")
    print(f"written {out}, {png}, {js}")
    return 0


def cmd_two_phase(args) -> int:
    from dataclasses import asdict

    from ...analysis.nucleation import plot_two_phase
    from ...manifest import write_json
    from ...analysis.thermo import two_phase

    run_defaults(args, args.runs)
    runs, m, series = two_phase(args.runs, T_set=args.T_set, pattern=args.pattern, final=args.final, tol=args.tol,
                                use=args.use, fraction_column=args.fraction_column, T_column=args.T_column,
                                run=args.run, all_runs=args.all_runs, skip=args.skip, timestep=args.timestep,
                                time_unit=args.time_unit)
    out, png = output_paths(args.out)
    runs.to_csv(out, index=False)
    plot_two_phase(series, png, time_label=args.time_label)
    js = out.with_suffix(".json")
    write_json(js, {"runs": len(runs), **asdict(m)})
    for _, r in runs.iterrows():
        print(f"{r['file']}: {r['outcome']} (fraction {r['f_start']:.3f} → {r['f_end']:.3f}, "
              f"T_final {r['T_final']:.5g})")
    if math.isfinite(m.T_m):
        print(f"T_m = {m.T_m:.5g} ± {m.error:.3g} ({m.method}; bracket {m.T_low:.5g} – {m.T_high:.5g})")
    else:
        print(f"T_m not bracketed ({m.method}): solid grew up to {m.T_low:.5g}, melted from {m.T_high:.5g}")
    print(f"written {out}, {png}, {js}")
    return 0


# ----------------------------------------------------------------------------- parser
def _log_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", required=True, help=f"CSV of the {what}; a PNG and a JSON summary with the same stem")
    p.add_argument("--run", type=int, help="thermo block of the log (0-based, negative from the end; "
                                           "default: the last)")
    p.add_argument("--all-runs", action="store_true", help="use the rows of all thermo blocks")
    p.add_argument("--skip", type=int, default=0, help="drop this many first rows (equilibration)")


def _enthalpy_args(p: argparse.ArgumentParser) -> None:
    h = p.add_argument_group("enthalpy")
    h.add_argument("--H-column", help="thermo column holding H (default: TotEng + --pressure·Volume, else "
                                      "Enthalpy / v_H)")
    h.add_argument("--pressure", type=float, default=0.0,
                   help="external (barostat) pressure in thermo units (bar for metal) for H = E + P·V")
    h.add_argument("--units", default=None, choices=sorted(NKTV2P),
                   help="LAMMPS units of the log (default: the --config's units, else the log's units command, "
                        "else metal)")
    h.add_argument("--natoms", type=int, help="atoms for per-atom H (default: the Atoms column or the log's "
                                              "'with N atoms' line); 1 if thermo_modify norm yes")
    h.add_argument("--total", action="store_true", help="keep H per system, not per atom")


def add_commands(subparsers) -> None:
    """Register ``enthalpy``, ``enthalpy-drop`` and ``two-phase`` on the ``analyze`` group."""
    e = command(subparsers, "enthalpy", "H(T) of a heating/cooling ramp from a LAMMPS log: melting or "
                                        "crystallisation jump (latent heat) or glass kink, C_P")
    e.add_argument("log", help="LAMMPS log with thermo columns Temp and TotEng (or Enthalpy)")
    _log_args(e, "(T, H) points with branch and fit")
    _enthalpy_args(e)
    e.add_argument("--T-column", help="temperature column (default Temp)")
    e.add_argument("--block", type=int, default=1, help="average T and H over blocks of this many rows")
    e.add_argument("--kind", choices=["auto", "jump", "kink"], default="auto",
                   help="transition kind (auto: jump if the gap is significant)")
    e.add_argument("--T-range", type=float, nargs=2, metavar=("LO", "HI"),
                   help="use points in this T range (K in metal units; default: all)")
    e.add_argument("--min-points", type=int, default=3, help="points per branch at least")
    e.add_argument("--jump-sigma", type=float, default=10.0, help="gap that makes a jump (dimensionless: residual standard deviations)")
    e.add_argument("--molar-mass", type=float, help="g/mol (26.98 for Al): also C_P in J/(g K) (default: not given)")
    e.add_argument("--T-label", default="T (K)")
    add_config(e)
    e.set_defaults(func=cmd_enthalpy)

    d = command(subparsers, "enthalpy-drop", "H(t) of an isothermal run from a LAMMPS log: the crystallisation "
                                             "drop and its time")
    d.add_argument("log", help="LAMMPS log with TotEng (or Enthalpy) and Step or Time")
    _log_args(d, "H(t) series")
    _enthalpy_args(d)
    add_timestep(d, "the --config's md.timestep; without: the log's Time column, else steps", old=("--dt",))
    d.add_argument("--time-unit", default=None, help="unit of the time axis (default: from --units)")
    add_config(d)
    d.add_argument("--window", type=float, default=0.1, help="fraction of the run for H before/after")
    d.add_argument("--level", type=float, default=0.5, help="fraction of the drop that dates it")
    d.add_argument("--min-drop", type=float, help="smallest drop that counts (energy units; default 5 × noise)")
    d.add_argument("--smooth", type=int, default=5, help="moving-average frames")
    d.set_defaults(func=cmd_enthalpy_drop)

    t = command(subparsers, "two-phase", "solid–liquid coexistence runs (LAMMPS logs with a crystalline fraction "
                                         "column, or CNA CSVs) → outcomes and T_m")
    t.add_argument("runs", nargs="+", help="one log (or CNA CSV) per run; T from the file name (--pattern) "
                                           "or --T-set, T_final from the Temp column")
    _log_args(t, "runs (outcome, fractions, final T)")
    t.add_argument("--fraction-column", help="crystalline-fraction column (default v_fcryst, v_crystalline, "
                                             "…; CSV: crystalline or fcc+hcp+bcc)")
    t.add_argument("--T-column", help="temperature column (logs: default Temp)")
    t.add_argument("--T-set", type=float, nargs="*", help="set temperature of each run, in order (K in metal units; "
                                                          "default: from the file name)")
    t.add_argument("--pattern", default=T_PATTERN, help="regex with a named group T, searched in file names")
    add_timestep(t, "the --config's md.timestep; without: the logs' Time column, else steps", old=("--dt",))
    t.add_argument("--time-unit", default=None, help="unit of the time axis (default: ps; τ with an lj --config)")
    add_config(t)
    t.add_argument("--time-label", default="time (ps)")
    t.add_argument("--final", type=float, help="final averaging interval (time units; default last 10 %%)")
    t.add_argument("--tol", type=float, default=0.15, help="fraction change that counts as growth/melting")
    t.add_argument("--use", choices=["T_final", "T_set"], default="T_final",
                   help="temperature a run's outcome is attributed to")
    t.set_defaults(func=cmd_two_phase)
    add_melting_command(subparsers)


def cmd_melting(args) -> int:
    from ...analysis.melting import melting_study

    potentials = {}
    for item in args.potentials:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            raise MeltpotError(f"{item!r}: expected LABEL=FOLDER, e.g. reference=results/al/md/melting/reference")
        if label in potentials:
            raise MeltpotError(f"label {label!r} given twice")
        potentials[label] = folder
    table = melting_study(potentials, args.out, tol=args.tol, final=args.final, molar_mass=args.molar_mass)
    for _, r in table.iterrows():
        parts = [r["label"]]
        if "T_m" in r and math.isfinite(r["T_m"]):
            parts.append(f"T_m {r['T_m']:.0f} ± {r['T_m_err']:.0f} K ({r['T_m_method']})")
        elif "T_m_method" in r and isinstance(r["T_m_method"], str):
            parts.append(f"T_m not bracketed ({r['T_m_method']}: solid grew up to {r['T_solid_grew']:.5g}, "
                         f"melted from {r['T_melted']:.5g})")
        for d, what in (("heat", "melts on heating"), ("cool", "freezes on cooling")):
            if f"T_{d}" in r and math.isfinite(r[f"T_{d}"]):
                parts.append(f"{what} at {r[f'T_{d}']:.0f} K ({r[f'{d}_jumps']:.0f} of {r[f'{d}_runs']:.0f} ramps)")
        if "latent_at_T_m" in r and math.isfinite(r["latent_at_T_m"]):
            parts.append(f"latent heat at T_m {r['latent_at_T_m']:.4f} eV/atom")
        print("; ".join(parts))
    stem = Path(args.out).with_suffix("")
    print(f"written {args.out}, {stem}_two_phase.csv, {stem}_ramps.csv, {stem}.json, {stem}.png")
    return 0


def add_melting_command(subparsers) -> None:
    """Register ``melting``: T_m, superheating and undercooling of potentials side by side."""
    m = command(subparsers, "melting", "melting study of potentials side by side: T_m from two-phase runs "
                                       "(bracket or coexistence), H(T) jumps of heating/cooling ramps, replicas pooled")
    m.add_argument("potentials", nargs="+", metavar="LABEL=FOLDER",
                   help="a potential's runs: FOLDER/two_phase/<run>/ (summary.json, thermo.csv, cna.csv) and "
                        "FOLDER/ramp/<run>/ (summary.json, ramp.csv) from meltpot md run; the first is the reference "
                        "of the differences")
    m.add_argument("--out", required=True, help="CSV, one row per potential; <stem>_two_phase.csv, <stem>_ramps.csv, "
                                                "<stem>.json, <stem>.png next to it")
    m.add_argument("--tol", type=float, default=0.15,
                   help="crystalline-fraction change (of all atoms) that counts as growth or melting")
    m.add_argument("--final", type=float, help="final averaging interval of the two-phase runs (ps; default the last "
                                               "10 %% of each run)")
    m.add_argument("--molar-mass", type=float, help="g/mol (26.98 for Al): also C_P in J/(g K) and latent heats in kJ/mol "
                                                   "(default: not given)")
    m.set_defaults(func=cmd_melting)
