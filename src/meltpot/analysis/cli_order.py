"""Command-line front end of the local-order and nucleation analyses.

``add_commands(subparsers)`` registers ``cna``, ``steinhardt``, ``clusters`` and ``ttt`` on an
argparse sub-parser group (``meltpot analyze …``). Each trajectory command streams the
frames of a LAMMPS dump or extxyz file (:func:`meltpot.analysis.trajectory.iter_frames`),
optionally minimises each frame first (``--minimize``: inherent structures), and writes a
CSV table plus a PNG with the same stem. ``ttt`` turns per-run CSVs (one per temperature ×
replica) into the TTT table and plot.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from ..errors import MeltpotError
from .trajectory import parse_types

#: default pattern for T and replica in per-run file names: T600_r0.csv, T600.0_rep3_cna.csv, …
RUN_PATTERN = r"T(?P<T>\d+(?:\.\d+)?)\D*?_r(?:ep)?(?P<replica>\d+)"
#: count frames up front (for the progress bar's total) only below this file size
_COUNT_LIMIT = 1 << 30


def _cutoff(value: str | None, allowed: tuple[str, ...]) -> float | str | None:
    if value is None:
        return None
    if value in allowed:
        return value
    try:
        r = float(value)
    except ValueError:
        raise MeltpotError(f"--cutoff must be a length or one of {allowed}, got {value!r}") from None
    if r <= 0:
        raise MeltpotError(f"--cutoff must be > 0, got {r}")
    return r


def _frames(args):
    """(frame iterator, expected number of frames or None)."""
    from .trajectory import count_frames, iter_frames

    types = parse_types(args.types)
    path = Path(args.trajectory)
    total = None
    if path.exists() and path.stat().st_size < _COUNT_LIMIT and not args.no_progress:
        n = count_frames(path)
        total = len(range(args.start, n if args.stop is None else min(args.stop, n), args.step))
    return iter_frames(path, start=args.start, stop=args.stop, step=args.step, types=types), total


def _auto_cutoff(args) -> float:
    """First minimum of g(r) of the first selected frame."""
    from .local_order import rdf_first_minimum
    from .trajectory import iter_frames

    first = next(iter(iter_frames(args.trajectory, start=args.start, stop=args.start + 1,
                                  types=parse_types(args.types))), None)
    if first is None:
        raise MeltpotError(f"{args.trajectory}: no frame at index {args.start}")
    rc = rdf_first_minimum(first)
    print(f"cutoff = first minimum of g(r) of frame {args.start}: {rc:.4f}")
    return rc


def _transform(args):
    if not args.minimize:
        return None
    from .local_order import Minimizer

    return Minimizer(pair_style=args.pair_style, pair_coeff=args.pair_coeff or ["* * Al_mm.eam.fs Al"],
                     elements=args.elements, units=args.units, ftol=args.ftol)


def _outputs(args) -> tuple[Path, Path]:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out, out.with_suffix(".png")


def _time_label(args) -> str:
    return f"time ({args.time_unit})" if args.dt is not None else "time"


def _table_kwargs(args, total) -> dict:
    return dict(dt=args.dt, transform=_transform(args), progress=not args.no_progress, total=total,
                source=str(args.trajectory))


# ----------------------------------------------------------------------------- commands
def cmd_cna(args) -> int:
    from .local_order import cna_table, plot_cna_table

    cutoff = _cutoff(args.cutoff, ("auto",))
    if cutoff == "auto":
        cutoff = _auto_cutoff(args)
    frames, total = _frames(args)
    table = cna_table(frames, cutoff=cutoff, **_table_kwargs(args, total))
    if table.empty:
        raise MeltpotError(f"{args.trajectory}: no frames selected")
    csv, png = _outputs(args)
    table.to_csv(csv, index=False)
    plot_cna_table(table, png, _time_label(args))
    last = table.iloc[-1]
    print(f"{len(table)} frames; last: " + ", ".join(f"{k} {last[k]:.3f}" for k in
                                                   ("fcc", "hcp", "bcc", "ico", "crystalline")))
    print(f"written {csv}, {png}")
    return 0


def _resolved_cutoff(args) -> float | str:
    """--cutoff as a length (Å), "adaptive", or "auto" resolved to the first g(r) minimum."""
    cutoff = _cutoff(args.cutoff, ("adaptive", "auto"))
    return _auto_cutoff(args) if cutoff == "auto" else cutoff


def cmd_steinhardt(args) -> int:
    from .local_order import plot_steinhardt, steinhardt_table

    cutoff = _resolved_cutoff(args)
    if args.engine == "ovito" and cutoff == "adaptive":
        cutoff = None  # OVITO: the --num-neighbors nearest
    frames, total = _frames(args)
    table, hist = steinhardt_table(frames, l=args.l, cutoff=cutoff, averaged=not args.no_average,
                                   engine=args.engine, bins=args.bins, num_neighbors=args.num_neighbors,
                                   **_table_kwargs(args, total))
    if table.empty:
        raise MeltpotError(f"{args.trajectory}: no frames selected")
    csv, png = _outputs(args)
    hist_csv = csv.with_name(csv.stem + "_hist.csv")
    table.to_csv(csv, index=False)
    hist.to_csv(hist_csv, index=False)
    plot_steinhardt(table, hist, png, _time_label(args))
    print(f"{len(table)} frames; written {csv}, {hist_csv}, {png}")
    return 0


def cmd_clusters(args) -> int:
    from .local_order import cluster_table, plot_cluster_table

    cutoff = _resolved_cutoff(args)
    frames, total = _frames(args)
    bonds = int(args.bonds) if float(args.bonds).is_integer() and args.bonds >= 1 else float(args.bonds)
    table = cluster_table(frames, cutoff=cutoff, bonds=bonds, threshold=args.threshold,
                          avgthreshold=args.avgthreshold, **_table_kwargs(args, total))
    if table.empty:
        raise MeltpotError(f"{args.trajectory}: no frames selected")
    csv, png = _outputs(args)
    table.to_csv(csv, index=False)
    plot_cluster_table(table, png, _time_label(args))
    print(f"{len(table)} frames; largest cluster: max {int(table['largest_cluster'].max())}, "
          f"last {int(table['largest_cluster'].iloc[-1])} atoms")
    if args.onset_size is not None:
        from .nucleation import onset_time

        p = onset_time(table["time"].to_numpy(float), table["largest_cluster"].to_numpy(float),
                       args.onset_size, args.hold)
        print(f"onset (largest cluster ≥ {args.onset_size:g}): "
              + (f"{p.time:.6g}" if p.reached else "not reached"))
    print(f"written {csv}, {png}")
    return 0


def _run_list(args) -> list[tuple[float, str, Path]]:
    """(T, replica, path) of every per-run table."""
    runs = []
    if args.index:
        idx = pd.read_csv(args.index)
        missing = {"T", "path"} - set(idx.columns)
        if missing:
            raise MeltpotError(f"{args.index}: needs columns T, path (and replica), lacks {sorted(missing)}")
        base = Path(args.index).parent
        for k, row in idx.iterrows():
            p = Path(str(row["path"]))
            runs.append((float(row["T"]), str(row["replica"]) if "replica" in idx else str(k),
                         p if p.is_absolute() else base / p))
    pattern = re.compile(args.pattern)
    for f in args.tables:
        m = pattern.search(Path(f).name)
        if m is None or "T" not in m.groupdict():
            raise MeltpotError(f"{f}: the file name does not match --pattern {args.pattern!r} "
                               "(named groups T and replica); use --index runs.csv instead")
        runs.append((float(m.group("T")), m.groupdict().get("replica") or Path(f).stem, Path(f)))
    if not runs:
        raise MeltpotError("ttt: no per-run tables given (files or --index)")
    return runs


def cmd_ttt(args) -> int:
    from .nucleation import plot_ttt, ttt_from_tables, ttt_table

    triples = []
    for T, rep, path in _run_list(args):
        if not path.exists():
            raise MeltpotError(f"{path}: per-run table not found (T={T}, replica {rep})")
        triples.append((T, rep, pd.read_csv(path)))
    runs = ttt_from_tables(triples, criterion=args.criterion, level=args.level, size=args.size,
                           hold=args.hold)
    ttt = ttt_table(runs)
    out, png = _outputs(args)
    runs_csv = out.with_name(out.stem + "_runs.csv")
    ttt.to_csv(out, index=False)
    runs.to_csv(runs_csv, index=False)
    plot_ttt(ttt, png, runs, time_label=args.time_label, T_label=args.T_label)
    for _, r in ttt.iterrows():
        print(f"T = {r['T']:g}: {r['mean']:.4g} ± {r['std']:.2g} ({r['n_reached']}/{r['n_replicas']} reached)")
    print(f"written {out}, {runs_csv}, {png}")
    return 0


# ----------------------------------------------------------------------------- parser
def _trajectory_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("trajectory", help="LAMMPS text dump (.gz ok) or extxyz file")
    p.add_argument("--out", required=True, help=f"CSV of the {what} per frame; a PNG with the same stem is written")
    p.add_argument("--types", nargs="*", metavar="TYPE=EL", help="LAMMPS type → element, e.g. 1=Al 2=Ni")
    p.add_argument("--start", type=int, default=0, help="first frame (0-based)")
    p.add_argument("--stop", type=int, help="stop before this frame")
    p.add_argument("--step", type=int, default=1, help="use every STEP-th frame")
    p.add_argument("--dt", type=float, help="time per MD step (time = timestep × dt); default: the "
                                            "frame's time if stored, else the timestep")
    p.add_argument("--time-unit", default="ps", help="unit of --dt for plot labels")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    m = p.add_argument_group("inherent structures (energy minimisation in LAMMPS before the analysis)")
    m.add_argument("--minimize", action="store_true", help="minimise every frame first (fixed cell)")
    m.add_argument("--pair-style", default="eam/fs")
    m.add_argument("--pair-coeff", action="append",
                   help="pair_coeff line (repeatable); default '* * Al_mm.eam.fs Al'")
    m.add_argument("--elements", nargs="*", help="element of type 1, 2, … (default: from pair_coeff)")
    m.add_argument("--units", default="metal", choices=["metal", "lj"])
    m.add_argument("--ftol", type=float, default=1e-6, help="force tolerance (eV/Å)")


def add_commands(subparsers) -> None:
    """Register ``cna``, ``steinhardt``, ``clusters`` and ``ttt`` on ``subparsers``."""
    c = subparsers.add_parser("cna", help="common neighbour analysis (OVITO): class fractions vs time")
    _trajectory_args(c, "CNA fractions (other fcc hcp bcc ico crystalline)")
    c.add_argument("--cutoff", help="fixed cutoff (Å, e.g. the first minimum of g(r)) or 'auto' (that "
                                    "minimum from the first frame); default: adaptive CNA")
    c.set_defaults(func=cmd_cna)

    s = subparsers.add_parser("steinhardt", help="averaged Steinhardt q̄4, q̄6 (pyscal3 or OVITO): "
                                                 "means vs time and histograms")
    _trajectory_args(s, "mean and std of q_l (histograms: <stem>_hist.csv)")
    s.add_argument("--cutoff", default="adaptive", help="neighbour cutoff (Å), 'adaptive' or 'auto'")
    s.add_argument("--l", type=int, nargs="+", default=[4, 6])
    s.add_argument("--no-average", action="store_true", help="plain q_l instead of q̄_l")
    s.add_argument("--engine", choices=["pyscal3", "ovito"], default="pyscal3")
    s.add_argument("--num-neighbors", type=int, default=12, help="OVITO without a cutoff length")
    s.add_argument("--bins", type=int, default=100)
    s.set_defaults(func=cmd_steinhardt)

    k = subparsers.add_parser("clusters", help="solid-like atoms (pyscal3 find_solids) and the largest "
                                               "solid cluster vs time")
    _trajectory_args(k, "solid atoms and cluster sizes")
    k.add_argument("--cutoff", default="adaptive", help="neighbour cutoff (Å), 'adaptive' or 'auto'")
    k.add_argument("--bonds", type=float, default=6, help="solid bonds needed (int) or fraction (< 1)")
    k.add_argument("--threshold", type=float, default=0.5, help="s_ij of a solid bond")
    k.add_argument("--avgthreshold", type=float, default=0.6, help="mean s_ij of a solid atom")
    k.add_argument("--onset-size", type=float, help="also print the first time the largest cluster "
                                                    "reaches this many atoms")
    k.add_argument("--hold", type=float, default=0.0, help="… and stays there this long")
    k.set_defaults(func=cmd_clusters)

    t = subparsers.add_parser("ttt", help="TTT table and plot from per-run CNA or cluster CSVs")
    t.add_argument("tables", nargs="*", help="per-run CSVs (from `cna` or `clusters`), T and replica "
                                             "taken from the file name by --pattern")
    t.add_argument("--index", help="CSV with columns T, replica, path (paths relative to it)")
    t.add_argument("--pattern", default=RUN_PATTERN,
                   help="regex with named groups T and replica, searched in file names")
    t.add_argument("--criterion", choices=["fraction", "cluster"], default="fraction",
                   help="'fraction': time to --level crystalline fraction (CNA tables); "
                        "'cluster': largest cluster reaches --size (cluster tables)")
    t.add_argument("--level", type=float, default=0.4, help="crystalline fraction (thesis: 0.4)")
    t.add_argument("--size", type=float, default=100.0, help="cluster size (atoms)")
    t.add_argument("--hold", type=float, default=0.0, help="the criterion must hold this long")
    t.add_argument("--out", required=True, help="TTT CSV; also <stem>_runs.csv and <stem>.png")
    t.add_argument("--time-label", default="time (ps)")
    t.add_argument("--T-label", default="T (K)")
    t.set_defaults(func=cmd_ttt)
