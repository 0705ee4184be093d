"""``meltpot analyze msd|viscosity|interdiffusion|arrhenius``: transport from trajectories and
logs (:mod:`meltpot.analysis.transport`, :mod:`meltpot.analysis.dynamics`).

Inputs are LAMMPS text dumps / extxyz (through :func:`meltpot.analysis.trajectory.iter_frames`),
LAMMPS logs (through :func:`~meltpot.analysis.trajectory.read_log`) or ``fix ave/time`` files
(:func:`~meltpot.analysis.trajectory.read_ave_time`). Several files given together are
independent replicas of the same state. Each command writes CSV tables and PNG plots into
``--out`` and returns 0.
"""

from __future__ import annotations

from pathlib import Path

from ...analysis import dynamics as dy
from ...analysis.trajectory import parse_types, progress_bar
from ..options import (add_config, add_frame_range, add_option, add_progress, add_timestep, add_types, add_units,
                       command)
from .common import run_defaults

__all__ = ["add_commands", "cmd_msd", "cmd_viscosity", "cmd_interdiffusion", "cmd_arrhenius"]


def _files(args) -> list[Path]:
    return [Path(p) for p in list(args.files) + list(args.replicas or [])]


def _gk_kwargs(args) -> dict:
    kw = {"noise_k": args.noise_k}
    if args.t_max is not None:
        kw["t_max"] = args.t_max
    if args.window is not None:
        kw["window"] = tuple(args.window)
    elif args.cutoff is not None:
        kw["cutoff"] = args.cutoff
    return kw


def _defaults(args) -> None:
    run_defaults(args, _files(args), timestep_from_files=True, need_timestep=True, units_choices=dy.UNITS)


def _trajectories(args, velocities: bool = False) -> list[dict]:
    from ...analysis.trajectory import read_trajectory

    types = parse_types(args.types)
    return [read_trajectory(p, start=args.start, stop=args.stop, step=args.step, types=types, velocities=velocities,
                            progress=not args.no_progress) for p in _files(args)]


def cmd_msd(args) -> int:
    """MSD per species and self-diffusion over replicas → msd.csv, diffusion.csv, msd.png."""
    from ...analysis.transport import msd_analysis, write_msd

    _defaults(args)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = msd_analysis(_trajectories(args), args.timestep, args.units, remove_com=args.remove_com,
                       fit_window=args.fit_window, window_method=args.window_method, slope_tol=args.slope_tol,
                       max_fraction=args.max_fraction)
    if res.truncated:
        print(f"note: replicas truncated to the shortest one, {res.n_frames} frames")
    u = dy.UNITS[args.units]
    for row in res.table.itertuples():
        print(f"{row.species}: D = {row.D:.5g} ± {row.D_err:.2g} {u['diffusion']} (fit {row.t_start:.4g}–"
              f"{row.t_end:.4g} {u['time']}, {res.n_replicas} replica(s))")
    write_msd(res, out, units=args.units)
    return 0


def cmd_viscosity(args) -> int:
    """Green–Kubo shear viscosity → viscosity.csv, gk_viscosity.csv, viscosity.png."""
    from ...analysis.transport import read_pressure, viscosity_analysis, write_viscosity

    _defaults(args)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = _files(args)
    data = [read_pressure(p, args.timestep, fmt=args.format, columns=args.columns, diagonal=args.diagonal,
                          run=args.run, skip=args.skip, temperature=args.temperature, volume=args.volume)
            for p in progress_bar(files, len(files), "logs", not args.no_progress, "file")]
    table, res = viscosity_analysis(data, units=args.units, **_gk_kwargs(args))
    write_viscosity(table, res, out, units=args.units)
    print(f"eta = {res.eta:.5g} ± {res.eta_err:.2g} {res.unit} (plateau {res.gk.t_start:.4g}–{res.gk.t_end:.4g} "
          f"{dy.UNITS[args.units]['time']}, {res.gk.n_samples} samples)")
    return 0


def cmd_interdiffusion(args) -> int:
    """Onsager coefficient L and D_AB = L Φ by Green–Kubo, with the Darken-like comparison →
    interdiffusion.csv, gk_interdiffusion.csv, interdiffusion.png."""
    import numpy as np

    from ...analysis.transport import interdiffusion_analysis, write_interdiffusion

    _defaults(args)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    a, b = args.pair
    table, res, cmp_ = interdiffusion_analysis(_trajectories(args, velocities=True), a, b, args.timestep, args.units,
                                               scc0=args.scc0, phi=args.phi, **_gk_kwargs(args))
    write_interdiffusion(table, res, out, units=args.units)
    u = dy.UNITS[args.units]
    print(f"L = {res.L:.5g} ± {res.L_err:.2g} {u['diffusion']} (Darken {cmp_['L_darken']:.5g}, S = {cmp_['S']:.3g})"
          + (f"; D_AB = {res.D_AB:.5g} ± {res.D_AB_err:.2g}" if not np.isnan(res.phi) else ""))
    return 0


def cmd_arrhenius(args) -> int:
    """D0 and E_a of D = D0 exp(−E_a/k_B T) from per-temperature diffusion tables → CSV, JSON, PNG."""
    from ...analysis.transport import arrhenius, viscosity_vs_temperature, write_arrhenius

    if args.units is None and args.config:
        from ...config import load_config

        args.units = load_config(args.config)["units"]
    data, fit, summary, weighted = arrhenius(args.files, args.pattern, args.species, units=args.units)
    args.units = summary["units"]
    out = write_arrhenius(data, fit, summary, args.out, units=args.units)
    u = dy.UNITS[args.units]
    print(f"E_a = {fit.E_a:.4g} ± {fit.E_a_err:.2g} {u['energy']}, D0 = {fit.D0:.4g} {u['diffusion']} "
          f"({len(data)} temperatures{', weighted' if weighted else ''}); written {out}")
    if args.viscosity:
        path, n = viscosity_vs_temperature(args.viscosity, out, args.pattern, units=args.units)
        print(f"viscosity at {n} temperatures written to {path}")
    return 0


# ----------------------------------------------------------------------------- parser
def _common(p, what: str):
    p.add_argument("files", nargs="+", help=f"{what} (several = independent replicas)")
    p.add_argument("--replicas", nargs="+", default=[], metavar="FILE", help="more replica files")
    add_option(p, "--out-dir", old=("--out",), default=".", help="output folder")
    add_config(p)
    add_units(p, dy.UNITS)
    add_timestep(p, "the --config's md.timestep, else the input files' (log, in.lammps beside them)")
    add_progress(p)


def _gk(p):
    p.add_argument("--t-max", type=float, default=None, help="longest correlation time (time units; "
                                                             "default: half the run)")
    p.add_argument("--cutoff", type=float, default=None, help="plateau start t_c (time units; window [t_c, 2 t_c]; "
                                                              "default: the plateau rule)")
    p.add_argument("--window", type=float, nargs=2, default=None, metavar=("T1", "T2"),
                   help="plateau window (time units; default: the plateau rule)")
    p.add_argument("--noise-k", type=float, default=3.0, help="noise threshold k of the plateau rule "
                                                              "(dimensionless: standard errors)")


def add_commands(subparsers) -> None:
    """Register ``msd``, ``viscosity``, ``arrhenius`` and ``interdiffusion`` on the ``analyze`` group."""
    m = command(subparsers, "msd", "MSD per species and self-diffusion (Einstein) from dumps")
    _common(m, "LAMMPS dump or extxyz trajectories")
    add_types(m)
    add_frame_range(m)
    m.add_argument("--window-method", choices=["slope", "fraction"], default="slope",
                   help="fit window rule (see dynamics.diffusion_window)")
    m.add_argument("--slope-tol", type=float, default=0.1, help="|dlnMSD/dlnt − 1| tolerance of the slope rule "
                                                                "(dimensionless)")
    m.add_argument("--max-fraction", type=float, default=0.5, help="fit window end as a fraction of the run")
    m.add_argument("--fit-window", type=float, nargs=2, default=None, metavar=("T1", "T2"),
                   help="explicit fit window (time units; default: the --window-method rule)")
    m.add_argument("--remove-com", action="store_true", help="subtract the centre-of-mass drift")
    m.set_defaults(func=cmd_msd)

    v = command(subparsers, "viscosity", "Green–Kubo shear viscosity from LAMMPS logs or fix ave/time files")
    _common(v, "LAMMPS logs (thermo with pxy pxz pyz, Temp, Volume) or fix ave/time files")
    v.add_argument("--format", choices=["auto", "log", "ave-time"], default="auto", help="input format")
    v.add_argument("--columns", nargs="+", default=None,
                   help="column names of pxy pxz pyz (with --diagonal: pxx pyy pzz pxy pxz pyz; default: found by name)")
    v.add_argument("--diagonal", action="store_true", help="also use (pxx−pyy)/2 and (pxx+pyy−2pzz)/(2√3)")
    v.add_argument("--run", type=int, default=None, help="thermo block of the log, from 0 (default: the last with "
                                                         "the columns)")
    v.add_argument("--skip", type=int, default=0, help="discard this many initial rows (equilibration)")
    v.add_argument("--temperature", type=float, default=None, help="T (K in metal units; default: mean of the "
                                                                   "Temp column)")
    v.add_argument("--volume", type=float, default=None, help="V (Å³ in metal units; default: mean of the "
                                                              "Volume column)")
    _gk(v)
    v.set_defaults(func=cmd_viscosity)

    a = command(subparsers, "arrhenius", "Arrhenius fit of D(T) from several `msd` diffusion.csv files")
    a.add_argument("files", nargs="+", help="diffusion.csv of `meltpot analyze msd`, one per temperature")
    a.add_argument("--pattern", default=r"T(?P<T>[0-9.]+)",
                   help="regex with a named group T, searched in each file's path")
    a.add_argument("--species", help="species row to fit (default: the first row of each file)")
    add_config(a)
    a.add_argument("--units", choices=["lj", "metal", "real"], default=None,
                   help="unit system of the tables (default: the --config's units, else the tables' D unit, "
                        "else metal)")
    a.add_argument("--out", required=True, help="CSV of T, D, D_err; a PNG and a JSON fit with the same stem")
    a.add_argument("--viscosity", nargs="*", default=[],
                   help="viscosity.csv files of `meltpot analyze viscosity` (T from --pattern): also write "
                        "<stem>_viscosity.csv and .png (η(T) with its error and an Arrhenius fit of η)")
    a.set_defaults(func=cmd_arrhenius)

    d = command(subparsers, "interdiffusion", "Green–Kubo interdiffusion of a binary from dumps with velocities")
    _common(d, "LAMMPS dumps with vx vy vz (and unwrapped coordinates or image flags)")
    add_types(d)
    add_frame_range(d)
    d.add_argument("--pair", nargs=2, required=True, metavar=("A", "B"), help="the two species, e.g. Al Ni")
    d.add_argument("--scc0", type=float, default=None, help="S_CC(q→0) from the structure analysis (dimensionless; "
                                                            "gives Φ, D_AB; default: none)")
    d.add_argument("--phi", type=float, default=None, help="thermodynamic factor Φ directly (dimensionless; "
                                                           "default: none)")
    _gk(d)
    d.set_defaults(func=cmd_interdiffusion)
