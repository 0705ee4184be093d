"""``meltpot train``, ``meltpot evaluate``: the dense HDNNP and its errors (:mod:`meltpot.train`)."""

from __future__ import annotations

import sys
from pathlib import Path

from .options import add_progress, add_threads, command, set_threads


def add_commands(sub) -> None:
    t = command(sub, "train", "train an HDNNP (the config's model and training blocks) on a descriptor cache")
    t.add_argument("config")
    t.add_argument("--cache", required=True,
                   help="HDF5 descriptor cache of the dataset (its feature set must be the config's)")
    t.add_argument("--index", required=True, help="dataset index.parquet")
    t.add_argument("--splits", required=True, help="splits.parquet: trains on 'train', monitors 'validation'")
    t.add_argument("--out", required=True, help="model file (.pt)")
    t.add_argument("--checkpoint", help="checkpoint file (default: OUT with suffix .ckpt)")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    t.add_argument("--history", help="learning-curve CSV (default: OUT with suffix .history.csv)")
    t.add_argument("--derivatives", help="derivative store (meltpot descriptors derivatives): forces and stress of "
                                         "its frames from cached ∂G/∂r, without positions (default: through "
                                         "positions when the loss has a force or stress term)")
    t.add_argument("--max-epochs", type=int, help="override training.max_epochs (and schedule.restarts; "
                                                  "default: the config's)")
    t.add_argument("--device", choices=["cpu", "cuda"], help="override training.device")
    t.add_argument("--seed", type=int, help="weight-initialisation and batch-order seed (default training.seed, "
                                            "else derived from the run's seed)")
    t.add_argument("--init", help="model file to start from (same feature set and hidden layers): its weights, "
                                  "scaling and reference energies (a warm start; default: random weights)")
    add_threads(t)
    add_progress(t)
    t.set_defaults(func=cmd_train)

    ev = command(sub, "evaluate", "energy/force errors of a model per split, state and phase; "
                                  "metrics.json, CSV tables, predictions and plots")
    ev.add_argument("config")
    ev.add_argument("--model", required=True, help="model file (.pt)")
    ev.add_argument("--cache", required=True, help="descriptor cache (HDF5) of the dataset, model's feature set")
    ev.add_argument("--index", required=True, help="dataset index.parquet")
    ev.add_argument("--splits", required=True, help="splits.parquet")
    ev.add_argument("--out-dir", required=True)
    ev.add_argument("--history", help="learning-curve CSV of the training run (plotted as learning_curve.png)")
    ev.add_argument("--forces", choices=["auto", "yes", "no"], default="auto",
                    help="evaluate forces through positions (auto: splits of at most 2000 frames)")
    ev.add_argument("--split-names", nargs="+", default=["validation", "test"], metavar="SPLIT",
                    choices=["train", "validation", "test"], help="splits to evaluate")
    ev.add_argument("--batch-frames", type=int, default=16, help="frames per force evaluation")
    ev.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    add_threads(ev)
    ev.set_defaults(func=cmd_evaluate)


def cmd_train(args) -> int:
    from ..config import load_config
    from ..train.run import prepare_training, run_training
    from ..units import energy_unit, unit_labels

    cfg = load_config(args.config)
    set_threads(args.threads)
    run = prepare_training(cfg, args.cache, args.index, args.splits, derivatives=args.derivatives,
                           max_epochs=args.max_epochs, device=args.device, seed=args.seed, init=args.init,
                           progress=not args.no_progress,
                           config_name=str(args.config))
    print(run.describe(), file=sys.stderr)
    res = run_training(run, args.out, checkpoint=args.checkpoint, history=args.history, resume=args.resume)
    factor, unit = energy_unit(cfg["units"])
    how = "early stopping" if res["stopped_early"] else "epoch limit"
    metrics = res["metrics"]
    val = metrics.get("validation", metrics["train"])
    line = (f"{res['out']}: {res['epochs']} epochs ({how}; best epoch {res['best_epoch']}), validation energy RMSE "
            f"{val['energy_rmse'] * factor:.4g} {unit} (train {metrics['train']['energy_rmse'] * factor:.4g})")
    if "force_rmse" in val:
        line += f", force RMSE {val['force_rmse']:.4g} {unit_labels(cfg['units'])['force']}"
    print(line + f", {res['seconds']:.1f} s; learning curve {res['history']}")
    return 0


def cmd_evaluate(args) -> int:
    """Errors of a model file on the validation/test splits; report files and plots."""
    from ..config import load_config
    from ..train.evaluate import evaluate_file

    cfg = load_config(args.config)
    set_threads(args.threads)
    results, paths = evaluate_file(args.model, args.cache, args.index, args.splits, args.out_dir,
                                   units=cfg["units"], config_name=str(args.config), history=args.history,
                                   forces=args.forces, splits_to=args.split_names, batch_frames=args.batch_frames,
                                   device=args.device)
    for split, m in results["splits"].items():
        line = f"{split}: {m['n_frames']} frames"
        if m.get("energy_rmse") is not None:
            line += f", energy RMSE {m['energy_rmse']:.4g} MAE {m['energy_mae']:.4g} {results['energy_unit']}"
        if m.get("force_rmse") is not None:
            line += f", force RMSE {m['force_rmse']:.4g} MAE {m['force_mae']:.4g} {results['force_unit']}"
        print(line)
    print(f"{Path(args.out_dir)}: " + ", ".join(p.name for p in paths.values()))
    return 0
