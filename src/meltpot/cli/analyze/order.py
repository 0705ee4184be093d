"""``meltpot analyze cna|steinhardt|clusters|ttt|rates``: local order and nucleation
(:mod:`meltpot.analysis.local_order`, :mod:`meltpot.analysis.nucleation`,
:mod:`meltpot.analysis.rates`).

Each trajectory command streams the frames of a LAMMPS dump or extxyz file, optionally minimises
each frame first (``--minimize``: inherent structures), and writes a CSV table plus a PNG with the
same stem. ``ttt`` turns per-run CSVs (one per temperature × replica) into the TTT table and plot;
``rates`` into nucleation rates with censored replicas (several labelled sets side by side).
"""

from __future__ import annotations

import argparse

from ...analysis.nucleation import RUN_PATTERN
from ...analysis.trajectory import parse_types
from ...errors import MeltpotError
from ..options import add_config, add_frame_range, add_progress, add_timestep, add_types, command
from .common import frames_and_total, output_paths, run_defaults


def _auto_cutoff(args) -> float:
    from ...analysis.local_order import first_frame_cutoff

    rc = first_frame_cutoff(args.trajectory, args.start, parse_types(args.types))
    print(f"cutoff = first minimum of g(r) of frame {args.start}: {rc:.4f}")
    return rc


def _resolved_cutoff(args, allowed=("adaptive", "auto")) -> float | str | None:
    """--cutoff as a length (Å), a keyword of ``allowed``, "auto" resolved to the first g(r) minimum."""
    from ...analysis.local_order import parse_cutoff

    cutoff = parse_cutoff(args.cutoff, allowed)
    return _auto_cutoff(args) if cutoff == "auto" else cutoff


def _transform(args):
    if not args.minimize:
        return None
    from ...analysis.local_order import Minimizer

    return Minimizer(pair_style=args.pair_style, pair_coeff=args.pair_coeff or ["* * Al_mm.eam.fs Al"],
                     elements=args.elements, units=args.units, ftol=args.ftol)


def _time_label(args) -> str:
    return f"time ({args.time_unit})" if args.timestep is not None else "time"


def _table_kwargs(args, total) -> dict:
    return dict(dt=args.timestep, transform=_transform(args), progress=not args.no_progress, total=total,
                source=str(args.trajectory))


def _defaults(args) -> None:
    run_defaults(args, [args.trajectory], units_choices=("metal", "lj") if args.minimize else None)


def cmd_cna(args) -> int:
    from ...analysis.local_order import cna_table, plot_cna_table

    _defaults(args)
    cutoff = _resolved_cutoff(args, ("auto",))
    frames, total = frames_and_total(args)
    table = cna_table(frames, cutoff=cutoff, **_table_kwargs(args, total))
    if table.empty:
        raise MeltpotError(f"{args.trajectory}: no frames selected")
    csv, png = output_paths(args.out)
    table.to_csv(csv, index=False)
    plot_cna_table(table, png, _time_label(args))
    last = table.iloc[-1]
    print(f"{len(table)} frames; last: " + ", ".join(f"{k} {last[k]:.3f}" for k in
                                                   ("fcc", "hcp", "bcc", "ico", "crystalline")))
    print(f"written {csv}, {png}")
    return 0


def cmd_steinhardt(args) -> int:
    from ...analysis.local_order import plot_steinhardt, steinhardt_table

    _defaults(args)
    cutoff = _resolved_cutoff(args)
    if args.engine == "ovito" and cutoff == "adaptive":
        cutoff = None  # OVITO: the --num-neighbors nearest
    frames, total = frames_and_total(args)
    table, hist = steinhardt_table(frames, l=args.l, cutoff=cutoff, averaged=not args.no_average,
                                   engine=args.engine, bins=args.bins, num_neighbors=args.num_neighbors,
                                   **_table_kwargs(args, total))
    if table.empty:
        raise MeltpotError(f"{args.trajectory}: no frames selected")
    csv, png = output_paths(args.out)
    hist_csv = csv.with_name(csv.stem + "_hist.csv")
    table.to_csv(csv, index=False)
    hist.to_csv(hist_csv, index=False)
    plot_steinhardt(table, hist, png, _time_label(args))
    print(f"{len(table)} frames; written {csv}, {hist_csv}, {png}")
    return 0


def cmd_clusters(args) -> int:
    from ...analysis.local_order import cluster_table, plot_cluster_table

    _defaults(args)
    cutoff = _resolved_cutoff(args)
    frames, total = frames_and_total(args)
    bonds = int(args.bonds) if float(args.bonds).is_integer() and args.bonds >= 1 else float(args.bonds)
    table = cluster_table(frames, cutoff=cutoff, bonds=bonds, threshold=args.threshold,
                          avgthreshold=args.avgthreshold, **_table_kwargs(args, total))
    if table.empty:
        raise MeltpotError(f"{args.trajectory}: no frames selected")
    csv, png = output_paths(args.out)
    table.to_csv(csv, index=False)
    plot_cluster_table(table, png, _time_label(args))
    print(f"{len(table)} frames; largest cluster: max {int(table['largest_cluster'].max())}, "
          f"last {int(table['largest_cluster'].iloc[-1])} atoms")
    if args.onset_size is not None:
        from ...analysis.nucleation import onset_time

        p = onset_time(table["time"].to_numpy(float), table["largest_cluster"].to_numpy(float),
                       args.onset_size, args.hold)
        print(f"onset (largest cluster ≥ {args.onset_size:g}): "
              + (f"{p.time:.6g}" if p.reached else "not reached"))
    print(f"written {csv}, {png}")
    return 0


def cmd_ttt(args) -> int:
    from ...analysis.nucleation import plot_ttt, run_list, ttt_from_files

    ttt, runs = ttt_from_files(run_list(args.tables, args.index, args.pattern), args.from_first_frame,
                               criterion=args.criterion, level=args.level, size=args.size, hold=args.hold)
    out, png = output_paths(args.out)
    runs_csv = out.with_name(out.stem + "_runs.csv")
    ttt.to_csv(out, index=False)
    runs.to_csv(runs_csv, index=False)
    plot_ttt(ttt, png, runs, time_label=args.time_label, T_label=args.T_label)
    for _, r in ttt.iterrows():
        print(f"T = {r['T']:g}: {r['mean']:.4g} ± {r['std']:.2g} ({r['n_reached']}/{r['n_replicas']} reached)")
    print(f"written {out}, {runs_csv}, {png}")
    return 0


def cmd_rates(args) -> int:
    from ...analysis.rates import labelled_runs, plot_survival, rates_from_files

    run_defaults(args, [])  # --units: the --config's, else metal (the tables do not state them)
    runs = labelled_runs(args.tables, args.index, args.runs or [], args.pattern, args.label)
    rates, onsets = rates_from_files(runs, confidence=args.confidence, lag=args.lag, units=args.units,
                                     criterion=args.criterion, size=args.size, level=args.level, hold=args.hold,
                                     from_first_frame=args.from_first_frame, volume=args.volume)
    out, png = output_paths(args.out)
    runs_csv = out.with_name(out.stem + "_runs.csv")
    rates.to_csv(out, index=False)
    onsets.to_csv(runs_csv, index=False)
    tu = rates["time_unit"].iloc[0]
    plot_survival(onsets, rates, png, args.lag, args.confidence, time_label=f"time ({tu})", T_label=args.T_label)
    for _, r in onsets[onsets["time"] <= args.lag].iterrows():
        state = "crystallised" if r["observed"] else "ended"
        print(f"note: {r['path']} {state} at {r['time']:g} {tu}, at or before the lag {args.lag:g}: "
              "not at risk, left out of the rate")
    for _, r in rates.iterrows():
        head = f"{r['label']} T = {r['T']:g}: {r['events']}/{r['replicas']} crystallised"
        if r["interval"] == "none":
            print(f"{head}, no replica at risk after the lag")
            continue
        ci = f"{args.confidence:.0%}"
        if r["interval"] == "upper bound":
            print(f"{head}, k < {r['k_hi']:.4g} /{tu}, τ > {r['tau_lo']:.4g} {tu}, J < {r['J_hi']:.4g} "
                  f"{r['J_unit']} ({ci} upper bound)")
        else:
            print(f"{head}, k = {r['k']:.4g} [{r['k_lo']:.4g}, {r['k_hi']:.4g}] /{tu}, τ = {r['tau']:.4g} {tu}, "
                  f"J = {r['J']:.4g} [{r['J_lo']:.4g}, {r['J_hi']:.4g}] {r['J_unit']} ({ci}); naive mean of the "
                  f"crystallised {r['naive_mean']:.4g} {tu}")
    print(f"written {out}, {runs_csv}, {png}")
    return 0


# ----------------------------------------------------------------------------- parser
def _trajectory_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("trajectory", help="LAMMPS text dump (.gz ok) or extxyz file")
    p.add_argument("--out", required=True, help=f"CSV of the {what} per frame; a PNG with the same stem is written")
    add_types(p, nargs="*")
    add_frame_range(p)
    add_timestep(p, "the --config's md.timestep; without: the frame's time if stored, else the step number", old=("--dt",))
    p.add_argument("--time-unit", default=None, help="unit of --timestep for plot labels (default: from --units)")
    add_config(p)
    add_progress(p)
    m = p.add_argument_group("inherent structures (energy minimisation in LAMMPS before the analysis)")
    m.add_argument("--minimize", action="store_true", help="minimise every frame first (fixed cell)")
    m.add_argument("--pair-style", default="eam/fs")
    m.add_argument("--pair-coeff", action="append",
                   help="pair_coeff line (repeatable); default '* * Al_mm.eam.fs Al'")
    m.add_argument("--elements", nargs="*", help="element of type 1, 2, … (default: from pair_coeff)")
    m.add_argument("--units", default=None, choices=["metal", "lj"],
                   help="LAMMPS units of the minimisation (default: the --config's units, else what the dump header "
                        "or the in.lammps beside it states, else metal)")
    m.add_argument("--ftol", type=float, default=1e-6, help="force tolerance (eV/Å in metal units)")


def _onset_options(p, criterion: str) -> None:
    """--pattern and the onset criterion (--criterion, --level, --size, --hold) of ttt and rates."""
    p.add_argument("--pattern", default=RUN_PATTERN,
                   help="regex with named groups T and replica, searched in file names")
    p.add_argument("--criterion", choices=["fraction", "cluster"], default=criterion,
                   help="onset: 'fraction': time to --level crystalline fraction (CNA tables); "
                        "'cluster': the largest solid cluster reaches --size (cluster tables)")
    p.add_argument("--level", type=float, default=0.4, help="crystalline fraction (thesis: 0.4)")
    p.add_argument("--size", type=float, default=100.0, help="cluster size (atoms)")
    p.add_argument("--hold", type=float, default=0.0, help="the criterion must hold this long (time units)")


def add_commands(subparsers) -> None:
    """Register ``cna``, ``steinhardt``, ``clusters``, ``ttt`` and ``rates`` on the ``analyze`` group."""
    c = command(subparsers, "cna", "common neighbour analysis (OVITO): class fractions vs time")
    _trajectory_args(c, "CNA fractions (other fcc hcp bcc ico crystalline)")
    c.add_argument("--cutoff", help="fixed cutoff (Å, e.g. the first minimum of g(r)) or 'auto' (that "
                                    "minimum from the first frame); default: adaptive CNA")
    c.set_defaults(func=cmd_cna)

    s = command(subparsers, "steinhardt", "averaged Steinhardt q̄4, q̄6 (pyscal3 or OVITO): means vs time and "
                                          "histograms")
    _trajectory_args(s, "mean and std of q_l (histograms: <stem>_hist.csv)")
    s.add_argument("--cutoff", default="adaptive", help="neighbour cutoff (Å), 'adaptive' or 'auto'")
    s.add_argument("--l", type=int, nargs="+", default=[4, 6], help="orders l of q_l")
    s.add_argument("--no-average", action="store_true", help="plain q_l instead of q̄_l")
    s.add_argument("--engine", choices=["pyscal3", "ovito"], default="pyscal3")
    s.add_argument("--num-neighbors", type=int, default=12, help="OVITO without a cutoff length")
    s.add_argument("--bins", type=int, default=100, help="histogram bins")
    s.set_defaults(func=cmd_steinhardt)

    k = command(subparsers, "clusters", "solid-like atoms (pyscal3 find_solids) and the largest solid cluster "
                                        "vs time")
    _trajectory_args(k, "solid atoms and cluster sizes")
    k.add_argument("--cutoff", default="adaptive", help="neighbour cutoff (Å), 'adaptive' or 'auto'")
    k.add_argument("--bonds", type=float, default=6, help="solid bonds needed (int) or fraction (< 1)")
    k.add_argument("--threshold", type=float, default=0.5, help="s_ij of a solid bond (dimensionless)")
    k.add_argument("--avgthreshold", type=float, default=0.6, help="mean s_ij of a solid atom (dimensionless)")
    k.add_argument("--onset-size", type=float, help="also print the first time the largest cluster "
                                                    "reaches this many atoms (default: not printed)")
    k.add_argument("--hold", type=float, default=0.0, help="… and stays there this long (time units)")
    k.set_defaults(func=cmd_clusters)

    t = command(subparsers, "ttt", "TTT table and plot from per-run CNA or cluster CSVs")
    t.add_argument("tables", nargs="*", help="per-run CSVs (from `cna` or `clusters`), T and replica "
                                             "taken from the file name by --pattern")
    t.add_argument("--index", help="CSV with columns T, replica, path (paths relative to it)")
    _onset_options(t, "fraction")
    t.add_argument("--from-first-frame", action="store_true",
                   help="measure times from each run's first frame (e.g. the start of the isothermal stage, "
                        "when the dump starts there) instead of the time stored in the table")
    t.add_argument("--out", required=True, help="TTT CSV; also <stem>_runs.csv and <stem>.png")
    t.add_argument("--time-label", default="time (ps)")
    t.add_argument("--T-label", default="T (K)")
    t.set_defaults(func=cmd_ttt)

    r = command(subparsers, "rates", "nucleation rates from replica onsets with censoring: Kaplan–Meier survival, "
                                     "k, τ = 1/k and J = k/V with chi-square intervals, CNA pathway of the "
                                     "critical cluster")
    r.add_argument("tables", nargs="*", help="per-run CSVs (from `clusters`; `cna` with --criterion fraction), "
                                             "T and replica taken from the file name by --pattern, labelled --label")
    r.add_argument("--runs", nargs="+", action="append", metavar=("LABEL", "TABLE"),
                   help="one labelled set of per-run CSVs (repeatable: e.g. --runs reference … --runs model …, "
                        "side by side in one table and plot)")
    r.add_argument("--label", default="runs", help="label of the positional tables (e.g. reference, model)")
    r.add_argument("--index", help="CSV with columns T, path and optionally replica, label (paths relative to it)")
    _onset_options(r, "cluster")
    r.add_argument("--lag", type=float, default=0.0,
                   help="induction time t0 (time units): replicas still liquid at t0 are at risk, with times "
                        "counted from t0; τ is then the mean waiting time after t0")
    r.add_argument("--confidence", type=float, default=0.95,
                   help="confidence level of the intervals and the survival band (a fraction)")
    r.add_argument("--volume", type=float, default=None,
                   help="liquid volume of every run (Å³ in metal/real units, σ³ in lj; default: each table's "
                        "`volume` column, averaged up to the onset)")
    r.add_argument("--units", choices=["lj", "metal", "real"], default=None,
                   help="unit system of the tables (metal: ps, Å → J in 1e30 m⁻³ s⁻¹ and m⁻³ s⁻¹; real: fs, Å; "
                        "lj: τ, σ → J in σ⁻³ τ⁻¹; default: the --config's units, else metal)")
    add_config(r)
    r.add_argument("--from-first-frame", action="store_true",
                   help="measure times from each run's first frame (the start of the isothermal stage, when the "
                        "dump starts there) instead of the time stored in the table")
    r.add_argument("--out", required=True, help="rates CSV (one row per label and T); also <stem>_runs.csv (one row "
                                                "per replica) and <stem>.png (survival curves, J(T))")
    r.add_argument("--T-label", default="T (K)")
    r.set_defaults(func=cmd_rates)
