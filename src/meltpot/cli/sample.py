"""``meltpot sample``: the reference MD of one sampling unit (:mod:`meltpot.sampling`)."""

from __future__ import annotations

from .options import add_progress, command


def add_commands(sub) -> None:
    s = command(sub, "sample", "run the MD of one sampling unit (state or branch) with the reference engine")
    s.add_argument("config")
    s.add_argument("--unit", required=True, help="unit id (see `meltpot units`)")
    s.add_argument("--out", required=True, help="extxyz file of labelled frames")
    s.add_argument("--summary", help="JSON summary (frames, mean T per state, wall time)")
    add_progress(s)
    s.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    from ..config import load_config
    from ..manifest import write_json
    from ..reference import make_engine
    from ..sampling.grid import find_unit
    from ..sampling.protocols import sample_unit

    cfg = load_config(args.config)
    unit = find_unit(cfg, args.unit)
    ref = dict(cfg["reference"], base_dir=cfg.get("_base_dir"))
    engine = make_engine(ref, cfg["elements"], cfg["units"])
    summary = sample_unit(cfg, unit, engine, args.out, progress=not args.no_progress)
    if args.summary:
        write_json(args.summary, summary)
    for sid, st in summary["states"].items():
        print(f"{sid}: {st['frames']} frames, <T> = {st['T_inst_mean']:.4g}")
    return 0
