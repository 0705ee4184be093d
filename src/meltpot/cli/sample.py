"""``meltpot sample``: the reference MD of one sampling unit (:mod:`meltpot.sampling`)."""

from __future__ import annotations

from pathlib import Path

from .options import add_progress, command, group


def add_commands(sub) -> None:
    s = command(sub, "sample", "run the MD of one sampling unit (state or branch) with the reference engine")
    s.add_argument("config")
    s.add_argument("--unit", required=True, help="unit id (see `meltpot units`)")
    s.add_argument("--out", required=True, help="extxyz file of labelled frames")
    s.add_argument("--summary", help="JSON summary (frames, mean T per state, wall time)")
    add_progress(s)
    s.set_defaults(func=cmd_sample)

    lab = group(sub, "label", "single-point labelling: pick sampled frames, label them with the reference engine")
    p = command(lab, "pick", "pick frames from the sampled trajectories (labelling.pick) and write them in chunks")
    p.add_argument("config")
    p.add_argument("--frames", nargs="+", required=True, help="the sampling units' extxyz files")
    p.add_argument("--out-dir", required=True, help="folder for chunk_NNN.extxyz and picked.csv")
    p.set_defaults(func=cmd_label_pick)
    r = command(lab, "run", "single points of a file of frames with the config's reference engine")
    r.add_argument("config")
    r.add_argument("--frames", required=True, help="frames to label (any format meltpot reads)")
    r.add_argument("--out", required=True, help="labelled frames (extxyz)")
    r.add_argument("--report", help="JSON: frames labelled and dropped (with the reason), wall time per frame")
    r.add_argument("--reuse", help="an earlier labelled file of these frames (e.g. from labelling.reuse): taken "
                                   "when its frames are these (species, cell, positions), else ignored and "
                                   "recomputed (default: always compute)")
    add_progress(r)
    r.set_defaults(func=cmd_label_run)


def cmd_sample(args) -> int:
    from ..config import load_config
    from ..manifest import write_json
    from ..reference import make_engine
    from ..sampling.grid import find_unit
    from ..sampling.protocols import sample_unit

    cfg = load_config(args.config)
    unit = find_unit(cfg, args.unit)
    ref = dict(cfg["reference"], base_dir=cfg.get("_base_dir"))
    out = Path(args.out)
    # a DFT code's own files (logs, wavefunctions) beside the frames, one folder per unit
    melt_engine = None
    if cfg["labelling"]["enabled"]:   # the cheap sampler runs the MD; the reference labels picked frames
        sampler = make_engine(dict(cfg["labelling"]["sampler"], base_dir=cfg.get("_base_dir")), cfg["elements"],
                              cfg["units"])
        if not unit.aimd:
            ref = None
            engine = sampler
        else:   # an AIMD state: the sampler melts and cools, the reference takes over
            melt_engine = sampler
    if ref is not None:
        engine = make_engine(ref, cfg["elements"], cfg["units"], workdir=out.with_name(f".{out.name}.dft"))
    summary = sample_unit(cfg, unit, engine, args.out, progress=not args.no_progress, melt_engine=melt_engine)
    if args.summary:
        write_json(args.summary, summary)
    for sid, st in summary["states"].items():
        print(f"{sid}: {st['frames']} frames, <T> = {st['T_inst_mean']:.4g}")
    return 0


def cmd_label_pick(args) -> int:
    import pandas as pd

    from ..config import load_config, load_run_featureset
    from ..sampling.labelling import n_chunks, pick_frames, write_chunks

    cfg = load_config(args.config)
    lab = cfg["labelling"]
    fs = load_run_featureset(cfg) if lab["pick"]["method"] == "fps" else None
    frames = pick_frames(cfg, args.frames, featureset=fs)
    paths = write_chunks(frames, lab["chunk_size"], args.out_dir, n_chunks(cfg))
    table = pd.DataFrame([{"chunk": k // lab["chunk_size"], "sampled_from": a.info["sampled_from"],
                           "sampled_index": a.info["sampled_index"], "state_id": a.info.get("state_id"),
                           "sampler_energy": a.info["sampler_energy"]} for k, a in enumerate(frames)])
    table.to_csv(Path(args.out_dir) / "picked.csv", index=False)
    per_state = table.groupby("state_id").size().to_dict()
    print(f"picked {len(frames)} frames ({lab['pick']['method']}) into {len(paths)} chunks; per state: {per_state}")
    return 0


def cmd_label_run(args) -> int:
    from ..config import load_config
    from ..data.io import read_frames, write_frames
    from ..manifest import write_json
    from ..reference import make_engine
    from ..sampling.labelling import label_frames, reusable_labels

    cfg = load_config(args.config)
    out = Path(args.out)
    ref = dict(cfg["reference"], base_dir=cfg.get("_base_dir"))
    engine = make_engine(ref, cfg["elements"], cfg["units"], workdir=out.with_name(f".{out.name}.dft"))
    frames = read_frames(args.frames)
    earlier = reusable_labels(frames, args.reuse) if args.reuse else None
    if earlier is not None:
        labelled, dropped, timing = earlier
        print(f"{out}: the labels of {args.reuse} are these frames': taken, not recomputed")
    else:
        labelled, dropped, timing = label_frames(frames, engine, on_error=cfg["labelling"]["on_error"],
                                                 progress=not args.no_progress, source=str(args.frames))
    write_frames(out, labelled, format="extxyz")   # every frame dropped: an empty file, which the dataset skips
    if args.report:
        write_json(args.report, {**timing, "engine": engine.describe(), "dropped_frames": dropped})
    print(f"{out}: {len(labelled)} frames labelled, {len(dropped)} dropped, {timing['s_per_frame']:.2f} s per frame")
    return 0
