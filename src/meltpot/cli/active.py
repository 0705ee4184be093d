"""``meltpot active heldout|split|explore|select|stop|test|report``: the steps of the active-learning
loop (:mod:`meltpot.active`), one command per Snakemake rule of ``workflow/rules/active.smk``."""

from __future__ import annotations

from pathlib import Path

from .options import command, group


def add_commands(sub) -> None:
    g = group(sub, "active", "active learning: committee exploration, selection by deviation, the iteration table")
    h = command(g, "heldout", "the fixed held-out test set from the initial dataset (its test split and "
                              "active_learning.test_files): heldout.extxyz, heldout.csv")
    h.add_argument("config")
    h.add_argument("--index", required=True, help="index.parquet of the initial dataset (iteration 0)")
    h.add_argument("--out-dir", required=True, type=Path)
    h.set_defaults(func=cmd_heldout)

    s = command(g, "split", "an iteration's splits: splits.parquet (every non-held-out frame in train, for the "
                            "descriptor statistics and the derivative store) and member_K.parquet per member")
    s.add_argument("config")
    s.add_argument("--index", required=True, help="the iteration's index.parquet")
    s.add_argument("--heldout", required=True, help="heldout.csv of `meltpot active heldout`")
    s.add_argument("--out-dir", required=True, type=Path)
    s.set_defaults(func=cmd_split)

    e = command(g, "explore", "one exploration MD job with the committee in LAMMPS: frames.extxyz with the "
                              "deviation of every dumped frame, exploration.json (a failed run is recorded, "
                              "not an error)")
    e.add_argument("config")
    e.add_argument("--job", required=True, help="exploration job id (active_learning.exploration.jobs, expanded)")
    e.add_argument("--committee", required=True, help="committee export (`meltpot export torchscript M1 M2 …`)")
    e.add_argument("--plugin", required=True, help="meltpot LAMMPS plugin (.so)")
    e.add_argument("--iteration", type=int, default=0, help="the loop's iteration (tags the frames)")
    e.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where the committee runs")
    e.add_argument("--index", help="the iteration's dataset index.parquet: jobs with `start` begin from one of its frames")
    e.add_argument("--out-dir", required=True, type=Path)
    e.set_defaults(func=cmd_explore)

    c = command(g, "select", "classify the explored frames by force deviation and choose the candidates to "
                             "label: candidates.extxyz, deviations.csv, selection.json (counts)")
    c.add_argument("config")
    c.add_argument("--explore", nargs="+", required=True, type=Path, help="exploration folders of the iteration")
    c.add_argument("--iteration", type=int, required=True, help="the loop's iteration (0, 1, …): tags the frames")
    c.add_argument("--out-dir", required=True, type=Path)
    c.set_defaults(func=cmd_select)

    d = command(g, "stop", "whether the loop stops after an iteration (converged, or max_iterations reached): "
                           "stop.json; apart from the selection, so a raised max_iterations redoes nothing else")
    d.add_argument("config")
    d.add_argument("--selection", required=True, type=Path, help="the iteration's selection.json (`meltpot active select`)")
    d.add_argument("--deviations", type=Path, help="the iteration's deviations.csv (needed with converged_deviation)")
    d.add_argument("--out", required=True, type=Path, help="stop.json")
    d.set_defaults(func=cmd_stop)

    t = command(g, "test", "energy and force RMSE of every member and of the committee mean on the held-out set")
    t.add_argument("config")
    t.add_argument("--models", nargs="+", required=True, help="the members' model files")
    t.add_argument("--heldout", required=True, help="heldout.extxyz")
    t.add_argument("--out", required=True, type=Path, help="test.json")
    t.set_defaults(func=cmd_test)

    r = command(g, "report", "the iteration table (iterations.csv) and its plots (deviation_hist.png, "
                             "rmse_vs_frames.png)")
    r.add_argument("config")
    r.add_argument("--iterations", nargs="+", required=True, type=Path, help="iteration folders, in order")
    r.add_argument("--out-dir", required=True, type=Path)
    r.set_defaults(func=cmd_report)


def cmd_heldout(args) -> int:
    from ..active.data import heldout_frames
    from ..config import load_config
    from ..data.io import write_frames

    cfg = load_config(args.config)
    frames, table = heldout_frames(cfg, args.index)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_frames(args.out_dir / "heldout.extxyz", frames, format="extxyz")
    table.to_csv(args.out_dir / "heldout.csv", index=False)
    print(f"held-out set: {len(frames)} frames ({(table['file_index'] < 0).sum()} from test_files)")
    return 0


def cmd_split(args) -> int:
    import pandas as pd

    from ..active.data import member_splits
    from ..config import load_config
    from ..seeds import derive_seed

    cfg = load_config(args.config)
    al = cfg["active_learning"]
    index = pd.read_parquet(args.index)
    heldout = pd.read_csv(args.heldout, keep_default_na=False)
    pool, members = member_splits(index, Path(args.index).parent, heldout, members=al["committee"],
                                  seed=derive_seed(cfg["seed"], "active", "split"),
                                  validation_fraction=al["validation_fraction"])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    pool.to_parquet(args.out_dir / "splits.parquet", index=False)
    for k, table in enumerate(members):
        table.to_parquet(args.out_dir / f"member_{k}.parquet", index=False)
    counts = [int((t["split"] == "validation").sum()) for t in members]
    print(f"{len(index)} frames: {int(pool['heldout'].sum())} held out; validation frames per member {counts}")
    return 0


def cmd_explore(args) -> int:
    from ..active.explore import explore
    from ..config import load_config

    cfg = load_config(args.config)
    rec = explore(cfg, args.job, args.committee, args.plugin, args.out_dir, iteration=args.iteration,
                  device=args.device, index=args.index)
    print(f"{args.job}: {rec['status']}, {rec['frames']} frames, max force deviation {rec['max_devi_f']}, "
          f"{rec['steps_per_s'] or 0:.1f} steps/s" + (f" ({rec['error']})" if rec["error"] else ""))
    return 0


def cmd_select(args) -> int:
    from ..active.select import select_frames
    from ..config import load_config, load_run_featureset
    from ..data.io import write_frames
    from ..manifest import write_json

    cfg = load_config(args.config)
    sel = select_frames(cfg, args.explore, args.iteration, featureset=load_run_featureset(cfg))
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    write_frames(out / "candidates.extxyz", sel.frames, format="extxyz")
    sel.table.to_csv(out / "deviations.csv", index=False)
    write_json(out / "selection.json", sel.status)
    st = sel.status
    print(f"iteration {st['iteration']}: {st['explored']} frames explored, {st['accurate']} accurate, "
          f"{st['candidate']} candidates ({100 * st['candidate_fraction']:.1f} %), {st['kept_out']} kept out, "
          f"{st['failed_runs']} of {st['runs']} runs failed; {st['selected']} selected")
    return 0


def cmd_stop(args) -> int:
    import json

    from ..active.select import stop_decision
    from ..config import load_config
    from ..manifest import write_json

    import pandas as pd

    cfg = load_config(args.config)
    table = pd.read_csv(args.deviations) if args.deviations else None
    dec = stop_decision(cfg["active_learning"], json.loads(args.selection.read_text()), table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, dec)
    print(f"iteration {dec['iteration']}: {dec['reason']} ({100 * dec['unconverged_fraction']:.1f} % of the frames "
          f"against convergence, limit {100 * dec['converged_fraction']:.1f} %; max_iterations {dec['max_iterations']})")
    return 0


def cmd_test(args) -> int:
    from ..active.report import committee_errors
    from ..data.io import read_frames
    from ..manifest import write_json

    res = committee_errors(args.models, read_frames(args.heldout))
    write_json(args.out, res)
    print(f"held-out ({res['frames']} frames): energy RMSE {res['energy_rmse']:.4g} per atom, force RMSE "
          f"{res['force_rmse']:.4g} (members' mean); committee mean {res['mean_force_rmse']:.4g}")
    return 0


def cmd_report(args) -> int:
    from ..active.report import iteration_table, plot_iterations
    from ..config import load_config

    cfg = load_config(args.config)
    table = iteration_table(args.iterations)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out_dir / "iterations.csv", index=False)
    plot_iterations(args.iterations, table, args.out_dir, units=cfg["units"])
    print(table.to_string(index=False))
    return 0
