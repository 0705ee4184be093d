"""``meltpot analyze rdf|sq``: g(r) and S(q) of a trajectory, written as CSV + PNG.

``add_commands(subparsers)`` registers the two subcommands on an argparse subparsers
object; each handler returns 0 (errors are MeltpotError/ValueError raised to the caller).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from ..errors import ConfigError
from .trajectory import parse_types


def _frames(args):
    """Frames of ``args.trajectory`` with a tqdm progress bar over them."""
    from tqdm import tqdm  # noqa: PLC0415

    from .trajectory import count_frames, iter_frames  # noqa: PLC0415

    types = parse_types(args.types)
    n = count_frames(args.trajectory)
    total = len(range(args.start, n if args.stop is None else min(args.stop, n), args.step))
    frames = iter_frames(args.trajectory, start=args.start, stop=args.stop, step=args.step,
                         types=types)
    return tqdm(frames, total=total, unit="frame", desc=args.command_name, leave=False)


def _default_rmax(args) -> float:
    """Half the smallest perpendicular cell width of the first selected frame (Å)."""
    from .structure import _cell_widths  # noqa: PLC0415
    from .trajectory import iter_frames  # noqa: PLC0415

    first = next(iter_frames(args.trajectory, start=args.start, stop=args.stop, step=args.step,
                             types=parse_types(args.types)), None)
    if first is None:
        raise ConfigError(f"{args.trajectory}: no frame in the selected range")
    return float(0.5 * _cell_widths(np.asarray(first.cell)).min())


def _prefix(args, what: str) -> str:
    if args.out_prefix:
        return args.out_prefix
    from pathlib import Path  # noqa: PLC0415

    p = Path(args.trajectory)
    return str(p.with_name(p.name.split(".")[0] or what))


def cmd_rdf(args) -> int:
    """Partial/total g(r), coordination numbers → <prefix>_rdf.csv/.png, <prefix>_cn.csv."""
    from .structure import compute_rdf, coordination_numbers, write_rdf  # noqa: PLC0415

    rmax = args.rmax if args.rmax is not None else _default_rmax(args)
    rdf = compute_rdf(_frames(args), rmax=rmax, bins=args.bins, engine=args.engine)
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
    from .structure import (bhatia_thornton, compute_rdf, extrapolate_q0,  # noqa: PLC0415
                            neutron_sq, sq_from_rdf, sq_kvectors, write_sq)

    if args.method == "kvectors":
        sq = sq_kvectors(_frames(args), qmax=args.qmax, dq=args.dq,
                         max_per_shell=args.max_per_shell)
    else:
        rmax = args.rmax if args.rmax is not None else _default_rmax(args)
        rdf = compute_rdf(_frames(args), rmax=rmax, bins=args.bins, engine=args.engine)
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
    p.add_argument("--types", nargs="+", metavar="TYPE=EL",
                   help="LAMMPS type → element, e.g. --types 1=Al 2=Ni")
    p.add_argument("--start", type=int, default=0, help="first frame (0-based)")
    p.add_argument("--stop", type=int, default=None, help="stop before this frame")
    p.add_argument("--step", type=int, default=1, help="use every STEP-th frame")
    p.add_argument("--rmax", type=float, default=None,
                   help="g(r) range in Å (default: half the smallest cell width)")
    p.add_argument("--bins", type=int, default=200, help="g(r) histogram bins")
    p.add_argument("--engine", choices=("ovito", "kdtree"), default="ovito",
                   help="pair counting: OVITO (default) or scipy cKDTree")
    p.add_argument("--out-prefix", default=None,
                   help="output prefix (default: trajectory name without suffix)")


def add_commands(subparsers) -> None:
    """Register ``rdf`` and ``sq`` on an argparse ``subparsers`` object."""
    p = subparsers.add_parser("rdf", help="partial/total g(r) and coordination numbers",
                              description=cmd_rdf.__doc__)
    _common(p)
    p.add_argument("--smooth", type=float, default=0.1,
                   help="Gaussian smoothing (Å) used to locate the first minimum")
    p.set_defaults(func=cmd_rdf, command_name="rdf")

    p = subparsers.add_parser("sq", help="structure factors S(q), Bhatia–Thornton",
                              description=cmd_sq.__doc__)
    _common(p)
    p.add_argument("--method", choices=("ft", "kvectors"), default="ft",
                   help="Fourier transform of g(r) (default) or direct k-vector sums")
    p.add_argument("--qmax", type=float, default=12.0, help="largest q (Å⁻¹)")
    p.add_argument("--dq", type=float, default=0.02,
                   help="q step (ft) or shell width (kvectors), Å⁻¹")
    p.add_argument("--lorch", action="store_true", help="Lorch window in the transform")
    p.add_argument("--max-per-shell", type=int, default=None,
                   help="kvectors: thin crowded q shells to about this many vectors")
    p.add_argument("--neutron", action="store_true",
                   help="add the neutron-weighted total (needs --types or element names)")
    p.add_argument("--scc-window", nargs=2, type=float, metavar=("QMIN", "QMAX"),
                   help="binary: fit S_CC over this q window (Å⁻¹) and report S_CC(0)")
    p.add_argument("--scc-order", type=int, choices=(2, 4), default=2,
                   help="even polynomial order of the S_CC fit")
    p.set_defaults(func=cmd_sq, command_name="sq")
