"""``meltpot md run|render|check|compare``: MD protocols in LAMMPS (:mod:`meltpot.md`).

``meltpot md run PROTOCOL CONFIG [KEY=VALUE ...] --out-dir DIR [--replica K] [--mpi N]
[--set KEY=VALUE ...] [--plugin SO --model PT [--deviation N] | --mliap PKL] [--device cpu|cuda]``
renders the protocol into DIR (``structure.data``, ``in.lammps``), runs LAMMPS there and
writes ``thermo.csv`` and ``summary.json``; ``md render`` only writes the input files. With a
committee export as ``--model``, ``--deviation N`` writes its deviation every N steps to
``model_devi.out`` in DIR (the pair style's ``deviation N FILE``).
Overrides: see :mod:`meltpot.md.plan`. ``minimize`` takes its trajectory from
``md.protocols.minimize.trajectory`` or ``--input``. ``meltpot md check [--route R --device D]``
reports what the LAMMPS in use can do, and whether it runs an ML route. ``meltpot md compare
LABEL=DIR[,DIR...] ... --config CFG --out-dir OUT`` compares replica sets of runs, the first label
the reference (means, spreads, verdicts: :mod:`meltpot.md.compare`); ``--combine NAME=DIR ...``
merges such comparisons (one per temperature).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..md.plan import ALL_PROTOCOLS
from .options import command

DEVIATION_FILE = "model_devi.out"
"""The committee deviation file of ``md run --deviation N`` in the run folder."""


def _load(args) -> dict:
    from ..config import load_config
    from ..md.plan import apply_overrides

    cfg = load_config(args.config)
    return apply_overrides(cfg, args.protocol, [*args.overrides, *args.set_overrides])


def _potential(args, cfg):
    from ..md.potential import Potential

    common = {"units": cfg.get("units", "metal"), "masses": cfg.get("reference", {}).get("masses")}
    if getattr(args, "deviation", None) and not (args.plugin and args.model):
        from ..errors import ConfigError

        raise ConfigError("--deviation is the meltpot pair style's committee output: give --plugin and --model "
                          "(a committee export)")
    if getattr(args, "mliap", None):
        if args.plugin or args.model:
            from ..errors import ConfigError

            raise ConfigError("--mliap is one ML route, --plugin/--model the other: give one of them")
        return Potential.mliap_unified(args.mliap, cfg["elements"], device=args.device, **common)
    if getattr(args, "plugin", None) or getattr(args, "model", None):
        if not (args.plugin and args.model):
            from ..errors import ConfigError

            raise ConfigError("--plugin and --model go together (the meltpot ML pair style)")
        deviation = (args.deviation, DEVIATION_FILE) if args.deviation else None
        return Potential.meltpot_plugin(args.plugin, args.model, cfg["elements"], device=args.device,
                                        extrapolation_limit=args.extrapolation_limit, precision=args.precision,
                                        deviation=deviation, **common)
    return None


def cmd_run(args) -> int:
    from ..manifest import json_text
    from ..md.execute import run_protocol

    cfg = _load(args)
    summary = run_protocol(cfg, args.protocol, args.out_dir, replica=args.replica, mpi=args.mpi,
                           potential=_potential(args, cfg), trajectory=args.input)
    short = {k: summary.get(k) for k in ("protocol", "status", "n_atoms", "total_steps", "frames", "wall_s",
                                         "steps_per_s") if k in summary}
    print(json_text(short, indent=None))
    return 0


def cmd_render(args) -> int:
    from ..md.plan import prepare

    cfg = _load(args)
    script, path = prepare(cfg, args.protocol, args.out_dir, args.replica, _potential(args, cfg))
    print(path)
    return 0


def add_commands(sub) -> None:
    from .options import group

    subparsers = group(sub, "md", "MD protocols (NVT/NPT/NPH, quench, ramp, two-phase, nucleation, minimise) with LAMMPS")
    for name, func, what in (("run", cmd_run, "render and run an MD protocol with LAMMPS"),
                             ("render", cmd_render, "write the protocol's LAMMPS input and data file only")):
        p = command(subparsers, name, what)
        p.add_argument("protocol", choices=ALL_PROTOCOLS if name == "run" else ALL_PROTOCOLS[:-1])
        p.add_argument("config")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="config overrides right after CONFIG: a key of md.protocols.PROTOCOL, md.run or md, "
                            "or a dotted path below md (e.g. T=1100 n_atoms=256 protocols.nvt.T=1100)")
        p.add_argument("--set", dest="set_overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                       help="more overrides (allowed anywhere on the command line)")
        p.add_argument("--out-dir", required=True, type=Path)
        p.add_argument("--replica", type=int, default=0, help="replica index: picks the velocity seed")
        p.add_argument("--plugin", help="meltpot LAMMPS plugin (.so) for the ML pair style (with --model)")
        p.add_argument("--model", help="TorchScript model of the meltpot pair style (with --plugin)")
        p.add_argument("--mliap", help="`meltpot export mliap` pickle: pair_style mliap unified (LAMMPS with "
                                       "ML-IAP + PYTHON; KOKKOS/CUDA for --device cuda)")
        p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where the ML potential runs")
        p.add_argument("--extrapolation-limit", type=int, help="meltpot pair style: stop when more atoms than this "
                                                               "extrapolate in one step (default: count and warn)")
        p.add_argument("--precision", choices=["double", "single"], default="double",
                       help="meltpot pair style: the symmetry-function kernel in double (default) or single "
                            "precision (faster; forces differ by ~1e-6 relative, see docs/lammps.md)")
        p.add_argument("--deviation", type=int, metavar="N",
                       help="meltpot pair style with a committee export: write the committee's force and energy "
                            f"deviation every N steps to {DEVIATION_FILE} in the run folder (docs/lammps.md; "
                            "default: none)")
        if name == "run":
            p.add_argument("--mpi", type=int, help="MPI ranks (default md.run.mpi)")
            p.add_argument("--input", help="minimize: the trajectory (default md.protocols.minimize.trajectory)")
        p.set_defaults(func=func)
    k = command(subparsers, "check", "what the LAMMPS in use can do (packages, KOKKOS, GPU); with --route, "
                                            "exit 2 naming what is missing for it")
    k.add_argument("--route", choices=["plugin", "mliap"], help="the ML route to check")
    k.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    k.set_defaults(func=cmd_check)
    c = command(subparsers, "compare", "compare runs of one protocol (reference vs ML potential) over "
                                              "replicas: density, energy, g(r), D with spreads and verdicts → "
                                              "comparison.csv/json, replicas.csv, gr.png, msd.png")
    c.add_argument("runs", nargs="*", metavar="LABEL=FOLDER[,FOLDER...]",
                   help="`meltpot md run` folders, the replicas of a label comma-separated or the label repeated; "
                        "the first label is the reference")
    c.add_argument("--config", help="the run's config (elements, units, md.timestep; the thresholds of "
                                    "validation_md.thresholds); required unless --combine")
    c.add_argument("--out-dir", required=True, type=Path)
    c.add_argument("--bins", type=int, default=200, help="g(r) bins on the common grid")
    c.add_argument("--rmax", type=float, help="g(r) range (length units: Å in metal, σ in lj; default: half the "
                                                "narrowest cell of all runs)")
    for key, what in (("D_relative", "|ΔD|/D_ref (dimensionless)"),
                      ("sigmas", "k of the Δ ± kσ interval tested against each tolerance (σ: combined standard "
                                 "error)"),
                      ("pe_per_atom", "|ΔE_pot| per atom (energy units)"), ("gr_mse", "g(r) MSE (dimensionless)"),
                      ("density_relative", "|Δρ|/ρ_ref (dimensionless)")):
        c.add_argument(f"--{key.replace('_', '-')}", dest=key, type=float, metavar="X",
                       help=f"verdict threshold of {what} (default: the config's validation_md.thresholds)")
    c.add_argument("--combine", nargs="+", metavar="NAME=FOLDER",
                   help="instead of runs: merge the comparison folders of several conditions (e.g. T1000=DIR "
                        "T1250=DIR) into --out-dir")
    c.set_defaults(func=cmd_compare)


def cmd_check(args) -> int:
    from ..lammps_env import capabilities, check_route
    from ..manifest import json_text

    info = check_route(args.route, args.device) if args.route else capabilities()
    print(json_text(info))
    if args.route:
        print(f"OK: this LAMMPS runs the {args.route} route on {args.device}")
    return 0


def _pairs(specs, what):
    from ..errors import MeltpotError

    out = []
    for spec in specs:
        label, sep, folder = spec.partition("=")
        if not sep or not label or not folder:
            raise MeltpotError(f"{what} take {'LABEL' if what == 'runs' else 'NAME'}=FOLDER, got {spec!r}")
        out.append((label, folder))
    return out


def cmd_compare(args) -> int:
    from ..config import load_config
    from ..errors import MeltpotError
    from ..md.compare import THRESHOLDS, combine_comparisons, compare_runs, verdict_shown

    if args.combine:
        if args.runs:
            raise MeltpotError("--combine merges comparison folders: give no run folders with it")
        parts = dict(_pairs(args.combine, "--combine"))
        table = combine_comparisons(parts, args.out_dir)
    else:
        if not args.config:
            raise MeltpotError("md compare: --config is required (elements, units, md.timestep)")
        cfg = load_config(args.config)
        runs: dict[str, list[str]] = {}
        for label, folders in _pairs(args.runs, "runs"):
            runs.setdefault(label, []).extend(f for f in folders.split(",") if f)
        if len(runs) < 2:
            raise MeltpotError(f"md compare needs a reference and at least one more label, got {list(runs)}")
        thresholds = dict((cfg.get("validation_md") or {}).get("thresholds") or {})
        thresholds.update({k: getattr(args, k) for k in THRESHOLDS if getattr(args, k) is not None})
        types = {k + 1: el for k, el in enumerate(cfg["elements"])}
        table = compare_runs(runs, args.out_dir, types, float(cfg["md"]["timestep"]), cfg.get("units", "metal"),
                             thresholds=thresholds, bins=args.bins, rmax=args.rmax)
        verdict = json.loads((args.out_dir / "comparison.json").read_text())
        for name, v in verdict["verdicts"].items():
            print(f"{name}: {verdict_shown(v)} — {v['detail']}")
        print(f"overall: {verdict_shown({'verdict': verdict['outcome']})}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0
