"""``meltpot analyze rdf|sq``: g(r) and S(q) of a trajectory, written as CSV + PNG
(:mod:`meltpot.analysis.structure`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from ...errors import ConfigError
from ...analysis.trajectory import parse_types
from ..options import add_frame_range, add_types, command
from .common import frames_with_bar


def _rmax(args) -> float:
    if args.rmax is not None:
        return args.rmax
    from ...analysis.structure import default_rmax

    return default_rmax(args.trajectory, args.start, args.stop, args.step, parse_types(args.types))


def _prefix(args, what: str) -> str:
    if args.out_prefix:
        return args.out_prefix
    p = Path(args.trajectory)
    return str(p.with_name(p.name.split(".")[0] or what))


def cmd_rdf(args) -> int:
    """Partial/total g(r), coordination numbers → <prefix>_rdf.csv/.png, <prefix>_cn.csv."""
    from ...analysis.structure import compute_rdf, coordination_numbers, write_rdf

    rmax = _rmax(args)
    rdf = compute_rdf(frames_with_bar(args, "rdf"), rmax=rmax, bins=args.bins, engine=args.engine)
    cn = coordination_numbers(rdf, smooth=args.smooth)
    paths = write_rdf(rdf, _prefix(args, "rdf"), coordination=cn)
    tot, rmin = cn["total"]
    print(f"{args.trajectory}: {rdf.n_frames} frames, {rdf.n_atoms} atoms, "
          f"ρ = {rdf.density:.5g} Å⁻³; first minimum {rmin:.3f} Å, CN {tot:.3f}")
    for key, (c, r) in cn.items():
        if key != "total" and len(rdf.species) > 1:
            print(f"  CN {key[0]}-{key[1]}: {c:.3f} (r_min {r:.3f} Å)")
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def cmd_sq(args) -> int:
    """S(q) (Faber–Ziman partials, total, Bhatia–Thornton for binaries, optionally neutron
    weighted) from the FT of g(r) or from k-vectors → <prefix>_sq.csv/.png."""
    from ...analysis.structure import (bhatia_thornton, compute_rdf, extrapolate_q0, neutron_sq, sq_from_rdf,
                                       sq_kvectors, write_sq)

    if args.method == "kvectors":
        sq = sq_kvectors(frames_with_bar(args, "sq"), qmax=args.qmax, dq=args.dq, max_per_shell=args.max_per_shell)
    else:
        rmax = _rmax(args)
        rdf = compute_rdf(frames_with_bar(args, "sq"), rmax=rmax, bins=args.bins, engine=args.engine)
        q = np.arange(args.dq, args.qmax + 1e-9, args.dq)
        sq = sq_from_rdf(rdf, q=q, lorch=args.lorch)
    extra = {}
    fit = None
    msg = ""
    try:
        if args.neutron:
            extra["S_neutron"] = neutron_sq(sq)
        if len(sq.species) == 2 and args.scc_window:
            qmin, qmax = args.scc_window
            fit = extrapolate_q0(sq.q, bhatia_thornton(sq).cc, qmin, qmax, order=args.scc_order)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{args.trajectory}: {exc.args[0]}") from exc
    if fit is not None:
        msg = (f"; S_CC(0) = {fit.value:.5f} ± {fit.stderr:.5f} "
               f"(fit q ∈ [{qmin}, {qmax}] Å⁻¹, {fit.n_points} points)")
    paths = write_sq(sq, _prefix(args, "sq"), extra=extra, fit=fit)
    peak = sq.q[int(np.nanargmax(sq.total))] if len(sq.q) else math.nan
    print(f"{args.trajectory}: {sq.n_frames} frames, method {sq.method}, first peak of S(q) at "
          f"{peak:.3f} Å⁻¹{msg}")
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("trajectory", help="LAMMPS text dump (custom/atom, .gz ok) or extxyz file")
    add_types(p)
    add_frame_range(p)
    p.add_argument("--rmax", type=float, default=None,
                   help="g(r) range (Å; default: half the smallest cell width)")
    p.add_argument("--bins", type=int, default=200, help="g(r) histogram bins")
    p.add_argument("--engine", choices=("ovito", "kdtree"), default="ovito",
                   help="pair counting: OVITO or scipy cKDTree")
    p.add_argument("--out-prefix", default=None,
                   help="output prefix (default: trajectory name without suffix)")


def add_commands(subparsers) -> None:
    """Register ``rdf`` and ``sq`` on the ``analyze`` group."""
    p = command(subparsers, "rdf", "partial/total g(r) and coordination numbers", description=cmd_rdf.__doc__)
    _common(p)
    p.add_argument("--smooth", type=float, default=0.1,
                   help="Gaussian smoothing (Å) used to locate the first minimum")
    p.set_defaults(func=cmd_rdf)

    p = command(subparsers, "sq", "structure factors S(q), Bhatia–Thornton", description=cmd_sq.__doc__)
    _common(p)
    p.add_argument("--method", choices=("ft", "kvectors"), default="ft",
                   help="Fourier transform of g(r) or direct k-vector sums")
    p.add_argument("--qmax", type=float, default=12.0, help="largest q (Å⁻¹)")
    p.add_argument("--dq", type=float, default=0.02, help="q step (ft) or shell width (kvectors), Å⁻¹")
    p.add_argument("--lorch", action="store_true", help="Lorch window in the transform")
    p.add_argument("--max-per-shell", type=int, default=None,
                   help="kvectors: thin crowded q shells to about this many vectors (default: all)")
    p.add_argument("--neutron", action="store_true",
                   help="add the neutron-weighted total (needs --types or element names)")
    p.add_argument("--scc-window", nargs=2, type=float, metavar=("QMIN", "QMAX"),
                   help="binary: fit S_CC over this q window (Å⁻¹) and report S_CC(0) (default: no fit)")
    p.add_argument("--scc-order", type=int, choices=(2, 4), default=2,
                   help="even polynomial order of the S_CC fit")
    p.set_defaults(func=cmd_sq)
