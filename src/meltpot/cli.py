"""``meltpot`` command line: every workflow step as a subcommand (Snakemake rules call these).

Errors that meltpot raises on purpose print one line naming the file/frame/key at fault
and exit with status 2; nothing already written is overwritten by a failing step.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from .errors import MeltpotError

log = logging.getLogger("meltpot")


# ----------------------------------------------------------------------------- config
def cmd_config_check(args) -> int:
    from .config import config_hash, load_config
    from .sampling.grid import expand_states

    cfg = load_config(args.config)
    units = expand_states(cfg)
    print(f"{args.config}: valid (run_id {cfg['run_id']}, sha256 {config_hash(cfg)[:12]})")
    for u in units:
        print(f"  {u.kind:8s} {u.unit_id}: {len(u.steps)} state(s), {u.phase}, ~{u.n_atoms} atoms")
    for imp in cfg["imports"]:
        print(f"  import   {imp['id']}: {imp['path']}")
    return 0


def cmd_units(args) -> int:
    """Print the sampling unit ids and import ids (one per line), for workflows."""
    from .config import load_config
    from .sampling.grid import expand_states

    cfg = load_config(args.config)
    for u in expand_states(cfg):
        print(u.unit_id)
    for imp in cfg["imports"]:
        print(imp["id"])
    return 0


# ----------------------------------------------------------------------------- sample
def cmd_sample(args) -> int:
    from .config import load_config
    from .manifest import write_json
    from .reference import make_engine
    from .sampling.grid import find_unit
    from .sampling.protocols import sample_unit

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


# ----------------------------------------------------------------------------- import
def cmd_import(args) -> int:
    from .config import load_config
    from .data.frames import composition_string
    from .data.io import read_frames, write_frames

    cfg = load_config(args.config)
    entries = {e["id"]: e for e in cfg["imports"]}
    if args.id not in entries:
        raise MeltpotError(f"{args.config}: no import with id {args.id!r}; known: {', '.join(entries) or 'none'}")
    entry = entries[args.id]
    path = Path(entry["path"])
    if not path.is_absolute():
        path = Path(cfg["_base_dir"]) / path
    frames = read_frames(path, format=entry.get("format"), units=entry.get("n2p2_units", "metal"))
    fmt = entry.get("format") or "auto"
    for fr in frames:
        fr.info.update(state_id=entry["id"], branch="", phase=entry.get("phase", "imported"),
                       T_target=entry.get("T", math.nan), P_target=entry.get("P", math.nan),
                       composition=composition_string(fr.get_chemical_symbols(), order=cfg["elements"]),
                       engine=f"import:{fmt}", units="metal", origin=f"{path}#{fr.info['source_index']}")
        if fr.get_velocities() is not None and fr.get_momenta().any():
            fr.info["T_inst"] = float(fr.get_temperature())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_frames(out, frames, format="extxyz")
    print(f"{path}: {len(frames)} frames imported into {out}")
    return 0


# ----------------------------------------------------------------------------- dataset
def cmd_dataset(args) -> int:
    """Validate all frames, then write the index, the per-state table and its plot."""
    import pandas as pd

    from .config import load_config
    from .data.index import build_index, state_summary
    from .data.io import read_frames
    from .data.validate import ValidationSettings, validate_frames
    from .plots import plot_states

    cfg = load_config(args.config)
    v = cfg["validation"]
    settings = ValidationSettings(elements=cfg["elements"], min_distance=v["min_distance"],
                                  min_cell_width=v["min_cell_width"], require_stress=v["require_stress"],
                                  max_force=v["max_force"])
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries, report = [], []
    for file in args.frames:
        frames = read_frames(file, format="extxyz")
        kept, rep = validate_frames(frames, settings, source=str(file), on_error=v["on_error"])
        report += rep
        entries += [(file, fr.info["source_index"], fr) for fr in kept]
    if not entries:
        raise MeltpotError("no valid frames: every frame was dropped (see the validation report)")
    index = build_index(entries, root=out, units=cfg["units"])
    index_path = out / "index.parquet"
    index.to_parquet(index_path, index=False)
    states = state_summary(index)
    states.to_csv(out / "states.csv", index=False)
    pd.DataFrame(report, columns=["source", "index", "reason"]).to_csv(out / "validation_report.csv", index=False)
    plot_states(index, out / "states.png", units=cfg["units"])
    if args.n2p2:
        from .data.io import write_n2p2

        write_n2p2(out / "input.data", [fr for _, _, fr in entries])
    print(f"{index_path}: {len(index)} frames from {len(args.frames)} file(s); "
          f"{len(report)} dropped; {index['state_id'].nunique()} states")
    return 0


# ----------------------------------------------------------------------------- split
def cmd_split(args) -> int:
    import pandas as pd

    from .config import load_config
    from .data.splits import make_splits
    from .seeds import derive_seed

    cfg = load_config(args.config)
    s = cfg["split"]
    seed = s["seed"] if s["seed"] is not None else derive_seed(cfg["seed"], "split")
    index = pd.read_parquet(args.index)
    table = make_splits(index, by=s["by"], train=s["train"], validation=s["validation"], test=s["test"],
                        holdout_states=s["holdout_states"], seed=seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(args.out, index=False)
    counts = table["split"].value_counts().reindex(["train", "validation", "test"]).to_dict()
    print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" (by {s['by']}, seed {seed})")
    return 0


# ----------------------------------------------------------------------------- frames
def cmd_frames_convert(args) -> int:
    from .data.io import read_frames, write_frames

    frames = read_frames(args.input, format=args.input_format, units=args.n2p2_units)
    write_frames(args.output, frames, format=args.output_format)
    print(f"{args.output}: {len(frames)} frames")
    return 0


def cmd_frames_check(args) -> int:
    from .data.io import read_frames
    from .data.validate import ValidationSettings, validate_frames

    settings = ValidationSettings(elements=args.elements, min_distance=args.min_distance,
                                  min_cell_width=args.min_cell_width, require_stress=args.require_stress)
    bad = 0
    for file in args.files:
        frames = read_frames(file, format=args.format)
        kept, report = validate_frames(frames, settings, source=str(file), on_error="drop")
        for r in report:
            print(f"{r['source']}, frame {r['index']}: {r['reason']}")
        bad += len(report)
        print(f"{file}: {len(kept)}/{len(frames)} frames valid")
    return 1 if bad else 0


# ----------------------------------------------------------------------------- descriptors
def cmd_descriptors_compute(args) -> int:
    from .config import load_config, load_run_featureset, resolve_featureset_spec
    from .descriptors.cache import build_cache

    cfg = load_config(args.config)
    d = cfg["descriptors"]
    if args.featureset is not None:
        # a path given on the command line is relative to the working directory
        fs = load_run_featureset(cfg, spec=resolve_featureset_spec(args.featureset, Path.cwd()))
    else:
        fs = load_run_featureset(cfg)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    res = build_cache(args.index, args.out, fs, splits=args.splits, dtype=args.dtype or d["dtype"],
                      device=args.device or d["device"], chunk_frames=args.chunk_frames or d["chunk_frames"],
                      progress=not args.no_progress)
    line = f"{res.path}: {res.action} ({res.reason}); {fs.name}, {res.n_frames} frames, {res.n_atoms} atoms"
    if res.rate is not None:
        line += f", {res.rate:.0f} atom environments/s"
    print(line + f", {res.seconds:.1f} s")
    return 0


def cmd_descriptors_info(args) -> int:
    from .descriptors.cache import DescriptorCache

    with DescriptorCache(args.file) as c:
        info = c.info()
        if args.json:
            info["stats"] = {el: {"labels": c.labels(el), **{k: (v.tolist() if hasattr(v, "tolist") else v)
                                                             for k, v in c.stats(el).items()}}
                             for el in c.elements}
            print(json.dumps(info, indent=2))
            return 0
        print(f"{info['path']}")
        print(f"  feature set  {info['featureset']} (sha256 {info['featureset_hash'][:12]}), "
              f"r_c {info['cutoff_radius']:g}, {info['dtype']}")
        print(f"  frames       {info['n_frames']} ({info['n_atoms']} atoms), frames key {info['frames_key'][:12]}")
        print(f"  key          {info['key']}")
        print(f"  computed     {info['created']} with meltpot {info['meltpot_version']} on {info['device']} "
              f"in {info['seconds']:.1f} s")
        print(f"  statistics   over {info['stats_over']} frames ({info['stats_frames']})")
        for el in c.elements:
            st = c.stats(el)
            print(f"  {el}: {info['n_rows'][el]} atoms × {info['n_features'][el]} features "
                  f"(statistics over {st['n_rows']} atoms)")
            width = max(len(lab) for lab in c.labels(el))
            print(f"    {'feature':{width}s} {'min':>11s} {'max':>11s} {'mean':>11s} {'std':>11s}")
            for k, lab in enumerate(c.labels(el)):
                print(f"    {lab:{width}s} " + " ".join(f"{st[q][k]:11.4g}" for q in ("min", "max", "mean", "std")))
    return 0


def cmd_descriptors_export(args) -> int:
    from .descriptors.cache import export_cache

    n = export_cache(args.file, args.out, element=args.element)
    print(f"{args.out}: {n} rows")
    return 0


def cmd_descriptors_featureset(args) -> int:
    from .descriptors.featureset import grid, load_featureset

    if args.grid:
        if not args.elements or args.rc is None:
            raise MeltpotError("descriptors featureset --grid needs --elements and --rc")
        fs = grid(args.elements, rc=args.rc, n_radial=args.n_radial, n_shifted=args.n_shifted, r_min=args.r_min,
                  zetas=tuple(args.zetas), lambdas=tuple(args.lambdas), angular_etas=args.angular_etas,
                  angular_type=args.angular_type, cutoff=args.cutoff, name=args.name or "grid")
    else:
        fs = load_featureset(args.preset, args.elements)
        if args.name:
            fs.name = args.name
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fs.save(out)
    counts = ", ".join(f"{el} {fs.n_features(el)}" for el in fs.elements)
    print(f"{out}: feature set {fs.name}: {counts} functions, r_c {fs.cutoff_radius:g}, {fs.cutoff} cutoff, "
          f"sha256 {fs.content_hash()[:12]}")
    return 0


def cmd_descriptors_presets(args) -> int:
    import yaml

    from .descriptors.featureset import PRESET_DIR, preset_names

    for name in preset_names():
        data = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())
        fns = data.get("functions") or []
        n_rad = sum(f.get("type") == "radial" for f in fns)
        rc = max((float(f["rc"]) for f in fns), default=float("nan"))
        ref = data.get("reference") or data.get("description") or ""
        print(f"{name:12s} {len(fns):3d} functions ({n_rad} radial, {len(fns) - n_rad} angular) per neighbour "
              f"element (pair), r_c {rc:g}, {data.get('cutoff', 'polynomial')} cutoff  {ref}")
    return 0


# ----------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    """Errors of a model file on the validation/test splits; report files and plots."""
    from .config import load_config
    from .descriptors.cache import DescriptorCache
    from .model.modelfile import ModelFileError, load_model
    from .train.evaluate import evaluate_model, write_report
    from .train.plots import plot_energy_parity, plot_force_parity, plot_learning_curve

    cfg = load_config(args.config)
    if args.history and not Path(args.history).is_file():
        raise MeltpotError(f"history file {args.history} does not exist")
    model = load_model(args.model)
    if getattr(model, "units", cfg["units"]) != cfg["units"]:
        raise ModelFileError(f"{args.model}: the model is in {model.units} units, but {args.config} uses "
                             f"{cfg['units']} units")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = model.to(args.device)
    with DescriptorCache(args.cache) as cache:
        try:
            results = evaluate_model(model, cache, args.index, args.splits, splits_to=tuple(args.split_names),
                                     forces=args.forces, batch_frames=args.batch_frames)
        except ModelFileError as exc:  # another feature set: name the model file too
            raise ModelFileError(f"{args.model}: {exc}") from exc
    out = Path(args.out_dir)
    paths = write_report(results, out)
    units = results["units"]
    if len(results["predictions"]):
        paths["parity_energy"] = out / "parity_energy.png"
        plot_energy_parity(results["predictions"], paths["parity_energy"], units, results["splits"])
    if results["forces"]:
        paths["parity_forces"] = out / "parity_forces.png"
        plot_force_parity(results["forces"], paths["parity_forces"], units, results["splits"])
    if args.history:
        paths["learning_curve"] = out / "learning_curve.png"
        plot_learning_curve(args.history, paths["learning_curve"], units, title=Path(args.model).name)
    for split, m in results["splits"].items():
        line = f"{split}: {m['n_frames']} frames"
        if m.get("energy_rmse") is not None:
            line += (f", energy RMSE {m['energy_rmse']:.4g} MAE {m['energy_mae']:.4g} {results['energy_unit']}")
        if m.get("force_rmse") is not None:
            line += f", force RMSE {m['force_rmse']:.4g} MAE {m['force_mae']:.4g} {results['force_unit']}"
        print(line)
    print(f"{out}: " + ", ".join(p.name for p in paths.values()))
    return 0


# ----------------------------------------------------------------------------- train
def energy_unit(units: str) -> tuple[float, str]:
    """Factor and name of the unit energies per atom are reported in."""
    return (1e3, "meV/atom") if units == "metal" else (1e3, "10⁻³ ε/atom")


def cmd_train(args) -> int:
    import time

    import numpy as np
    import torch

    from . import __version__
    from .config import load_config, load_run_featureset
    from .data.splits import read_splits
    from .descriptors.cache import DescriptorCache, _load_splits, frames_key, read_index, stats_key
    from .model.hdnnp import HDNNP
    from .model.modelfile import save_model
    from .train.data import EnergyDataset, ForceDataset
    from .train.settings import TrainSettings
    from .train.trainer import Trainer, prepare_model, write_history
    from .seeds import derive_seed

    t_start = time.perf_counter()
    cfg = load_config(args.config)
    fs = load_run_featureset(cfg)
    overrides = {"progress": not args.no_progress}
    if args.max_epochs is not None:
        overrides.update(max_epochs=args.max_epochs, restarts=None)
    if args.device:
        overrides["device"] = args.device
    tcfg = cfg["training"]
    if tcfg.get("seed") is None:
        overrides["seed"] = derive_seed(cfg["seed"], "train")
    settings = TrainSettings.from_config(tcfg, **overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    ckpt = Path(args.checkpoint) if args.checkpoint else out.with_suffix(".ckpt")
    history_path = Path(args.history) if args.history else out.with_suffix(".history.csv")

    index_path = Path(args.index)
    index = read_index(index_path)
    splits = read_splits(args.splits)
    with DescriptorCache(args.cache) as cache:
        info = cache.info()
        if info["featureset_hash"] != fs.content_hash():
            raise MeltpotError(
                f"descriptor cache {args.cache} was computed with feature set {info['featureset']} "
                f"({info['featureset_hash'][:12]}), but {args.config} trains on {fs.name} "
                f"({fs.content_hash()[:12]}, descriptors.featureset = {cfg['descriptors']['featureset']!r}): "
                "recompute the cache with `meltpot descriptors compute` for this config")
        if info["frames_key"] != frames_key(index, index_path.parent, str(index_path)):
            raise MeltpotError(f"descriptor cache {args.cache} was computed for other frames than {index_path} "
                               "(frames key differs): recompute the cache for this dataset")
        cached_skey = info.get("stats_key")
        if cached_skey is not None and cached_skey != stats_key(_load_splits(splits, index)):
            log.warning("%s: the feature statistics are not over the training split of %s; run "
                        "`meltpot descriptors compute --splits` to update them", args.cache, args.splits)
        missing = np.setdiff1d(splits["frame_id"].to_numpy(), index["frame_id"].to_numpy())
        if missing.size:
            raise MeltpotError(f"{args.splits} names frames {missing[:5].tolist()} that are not in {index_path}")
        ids = {name: splits.loc[splits["split"] == name, "frame_id"].to_numpy(np.int64)
               for name in ("train", "validation")}
        if ids["train"].size == 0:
            raise MeltpotError(f"{args.splits} has no training frames")
        if ids["validation"].size == 0:
            log.warning("%s has no validation frames: early stopping monitors the training data", args.splits)
        dtype = settings.torch_dtype

        def dataset(frame_ids):
            if frame_ids.size == 0:
                return None
            if settings.uses_forces and not args.derivatives:
                return ForceDataset.from_index(index, index_path.parent, frame_ids, list(fs.elements),
                                               fs.cutoff_radius, dtype=dtype, device=settings.device)
            data = EnergyDataset(cache, index, frame_ids, dtype=dtype, device=settings.device)
            if settings.uses_forces:
                data.attach_forces(args.derivatives, settings.force_element_weights)
            return data

        train_data, val_data = dataset(ids["train"]), dataset(ids["validation"])
        model = HDNNP(fs, hidden=cfg["model"]["hidden"], activation=cfg["model"]["activation"])
        prep = prepare_model(model, cache, train_data, seed=settings.seed)
        cache_meta = {"path": str(args.cache), "key": info["key"], "featureset": info["featureset"],
                      "featureset_hash": info["featureset_hash"], "stats_over": info["stats_over"]}

    if not settings.uses_forces:
        mode = "energies from cached features"
    elif args.derivatives:
        store = train_data.forces_store
        mode = (f"energies from cached features, forces of {len(store.frame_ids)} frames from the derivative store "
                f"{args.derivatives} ({store.nbytes / 1e9:.2f} GB in memory)")
    else:
        mode = "energies, forces and stress from positions"
    n_in = ", ".join(f"{el} {n}" for el, n in model.describe()["n_features"].items())
    print(f"training an HDNNP on {fs.name} ({n_in} features) → {list(model.hidden)} → 1 "
          f"({cfg['model']['activation']}) on {len(train_data)} frames ({mode}); validation "
          f"{0 if val_data is None else len(val_data)} frames; up to {settings.n_epochs} epochs", file=sys.stderr)
    trainer = Trainer(model, settings, train_data, val_data)
    try:
        trainer.fit(checkpoint_path=ckpt, resume=args.resume)
    finally:
        if trainer.history:
            write_history(trainer.history, history_path)
    model.eval()
    metrics = {"train": trainer.evaluate(train_data)}
    if val_data is not None:
        metrics["validation"] = trainer.evaluate(val_data)
    seconds = time.perf_counter() - t_start
    metadata = {
        "meltpot_version": __version__, "run_id": cfg["run_id"], "units": cfg["units"],
        "training": settings.to_dict(), "seed": settings.seed,
        "model": {"hidden": list(cfg["model"]["hidden"]), "activation": cfg["model"]["activation"]},
        "epochs": trainer.epoch, "stopped_early": trainer.stopped_early, "best_epoch": trainer.best_epoch,
        "best_monitor": trainer.best_monitor, "monitor": trainer.monitor_name,
        "cache": cache_meta,
        "data": {"index": str(index_path), "splits": str(args.splits), "n_train": len(train_data),
                 "n_validation": 0 if val_data is None else len(val_data),
                 "n_train_atoms": int(train_data.n_atoms.sum())},
        "reference_energies": prep["reference_energies"], "scaling": prep["scaling"],
        "metrics": metrics, "seconds": seconds, "train_seconds": float(sum(h["seconds"] for h in trainer.history)),
        "history": str(history_path), "checkpoint": str(ckpt),
    }
    save_model(model.cpu(), out, units=cfg["units"], metadata=metadata)
    factor, unit = energy_unit(cfg["units"])
    how = "early stopping" if trainer.stopped_early else "epoch limit"
    val = metrics.get("validation", metrics["train"])
    line = (f"{out}: {trainer.epoch} epochs ({how}; best epoch {trainer.best_epoch}), validation energy RMSE "
            f"{val['energy_rmse'] * factor:.4g} {unit} (train {metrics['train']['energy_rmse'] * factor:.4g})")
    if "force_rmse" in val:
        line += f", force RMSE {val['force_rmse']:.4g} {'eV/Å' if cfg['units'] == 'metal' else 'ε/σ'}"
    print(line + f", {seconds:.1f} s; learning curve {history_path}")
    return 0


# ----------------------------------------------------------------------------- manifest
def cmd_summary(args) -> int:
    from .run_summary import write_summary

    print(f"{write_summary(args.run_dir, args.out)}: written")
    return 0


def cmd_manifest(args) -> int:
    from .config import load_config
    from .manifest import build_manifest, write_json

    cfg = load_config(args.config)
    extra = {}
    for path in args.summaries or []:
        with open(path) as fh:
            extra.setdefault("sampling", []).append(json.load(fh))
    if args.benchmarks:
        from .manifest import rule_times

        extra["rule_times"] = rule_times(args.benchmarks)
    write_json(args.out, build_manifest(cfg, inputs=[args.config], outputs=args.outputs or [], extra=extra))
    print(f"{args.out}: written")
    return 0


# ----------------------------------------------------------------------------- select
def _split_datasets(cache, index_path, splits_path, names, noise: int = 0, noise_seed: int = 0,
                    derivatives=None, element_weights=None, force_frames=None):
    """EnergyDataset of each named split (frames of the dataset index, features from ``cache``),
    the feature set of their columns and its per-element statistics over the training split.

    ``noise`` > 0 appends that many confounding noise features per element
    (:mod:`meltpot.selection.noise`; needs "train" among ``names``). ``derivatives``: a
    derivative store whose frames' forces the datasets then carry (force training);
    ``force_frames``: at most that many of them in the training split's force term."""
    import numpy as np

    from .data.splits import read_splits
    from .descriptors.cache import read_index
    from .train.data import EnergyDataset

    index = read_index(index_path)
    splits = read_splits(splits_path)
    out = {}
    for name in names:
        ids = splits.loc[splits["split"] == name, "frame_id"].to_numpy(np.int64)
        if ids.size == 0:
            raise MeltpotError(f"{splits_path}: the {name} split is empty")
        out[name] = EnergyDataset(cache, index, ids)
        if derivatives and name != "test":
            if noise:
                raise MeltpotError("noise features exist only as cached features, with no derivatives: "
                                   "set selection.forces: false (or training.loss.forces: 0) with noise_features")
            out[name].attach_forces(derivatives, element_weights)
            if force_frames is not None and name == "train":
                out[name].forces_store = out[name].forces_store.thin(force_frames)
    fs = cache.featureset()
    stats = {el: cache.stats(el) for el in fs.elements}
    if noise:
        from .selection.noise import add_noise, column_stats, noise_featureset

        if "train" not in out:
            raise MeltpotError("noise features are matched to the training split's statistics: load 'train'")
        fs = noise_featureset(fs, stats, noise, noise_seed)
        out = {name: add_noise(d, fs) for name, d in out.items()}
        stats = column_stats(out["train"], fs)
    return out, fs, stats


def _selection_settings(cfg, args, **overrides):
    """TrainSettings of the selection commands: the training block, without its force and stress
    terms unless ``selection.forces`` and a derivative store (``--derivatives``) are given."""
    from .train.settings import TrainSettings

    settings = TrainSettings.from_config(cfg["training"], progress=False, log_every=10**9, **overrides)
    if settings.uses_forces and not (cfg["selection"]["forces"] and args.derivatives):
        if cfg["selection"]["forces"]:
            log.warning("training.loss has a force term but no --derivatives store was given: the selection "
                        "fits energies only")
        settings = settings.energy_only()
    return settings


def _finite(x) -> float | None:
    """A float, or None for NaN/inf (JSON has no NaN)."""
    import math

    x = float(x)
    return x if math.isfinite(x) else None


def _noise_options(cfg) -> tuple[int, int]:
    """(noise features per element, noise seed) of the selection config."""
    from .seeds import derive_seed

    sc = cfg["selection"]
    seed = sc["noise_seed"] if sc["noise_seed"] is not None else derive_seed(cfg["seed"], "noise-features")
    return int(sc["noise_features"]), int(seed)


def cmd_select_path(args) -> int:
    """λ path (GL → AGL → retrain) from a trained dense model; resumes in --out-dir."""
    import dataclasses

    import numpy as np
    import torch

    from .config import load_config
    from .descriptors.cache import DescriptorCache
    from .manifest import write_json
    from .model.modelfile import check_featureset, load_model
    from .seeds import derive_seed
    from .selection.path import SelectionSettings, choose, lambda_path
    from .selection.plots import plot_path
    from .train.settings import TrainSettings

    cfg = load_config(args.config)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    sc = cfg["selection"]
    names = {f.name for f in dataclasses.fields(SelectionSettings)}
    sel = SelectionSettings(**{k: v for k, v in sc.items() if k in names},
                            seed=derive_seed(cfg["seed"], "select-cold-init"))
    tcfg = cfg["training"]
    settings = _selection_settings(cfg, args, **({} if tcfg.get("seed") is not None
                                                 else {"seed": derive_seed(cfg["seed"], "select")}))
    n_noise, noise_seed = _noise_options(cfg)
    with DescriptorCache(args.cache) as cache:
        check_featureset(model, cache.info()["featureset_hash"], what=f"the descriptors in {args.cache}",
                         source=str(args.model))
        data, fs, stats = _split_datasets(cache, args.index, args.splits, ("train", "validation"),
                                          noise=n_noise, noise_seed=noise_seed,
                                          derivatives=args.derivatives if settings.uses_forces else None,
                                          element_weights=settings.force_element_weights,
                                          force_frames=sc["force_frames"])
    train, val = data["train"], data["validation"]
    out = Path(args.out_dir)
    if n_noise:
        from .selection.noise import noisy_dense_model

        model = noisy_dense_model(model, fs, stats, train, val, settings, epochs=sel.retrain_epochs,
                                  seed=noise_seed, path=out / "dense_noise.pt")
    units = getattr(model, "units", "metal")
    labels = {el: model.featureset.labels(el) for el in model.elements}
    unit, scale = ("meV/atom", 1000.0) if units == "metal" else ("10⁻³ ε/atom", 1000.0)
    if sc["lambda_per_element"] and len(model.elements) > 1:
        from .selection.path import per_element_search

        table, res = per_element_search(model, train, val, settings, sel, out_dir=out, units=units,
                                        tolerance=sc["tolerance"],
                                        n_features=None if not sc["choose_n_features"] else
                                        {el: sc["choose_n_features"] for el in model.elements})
        keep, lam = res["keep"], res["lambda"]
        chosen = {"rule": f"λ per element by line search (others at 0), each chosen by the tolerance rule "
                          f"({sc['tolerance']:.0%}); then one run at the combined λ",
                  "lambda": lam, "n_features": sum(map(len, keep.values())),
                  "val_rmse_dense": res["dense_val_rmse"], "val_rmse_retrained": res["val_rmse_retrained"],
                  "model": str(out / "combined" / "retrained.pt")}
    else:
        table = lambda_path(model, train, val, settings, sel, out_dir=out, units=units, stop_after=args.until_step)
        if args.until_step is not None:   # one λ of the workflow's per-λ rules: report it and stop
            last = table.iloc[-1]
            print(json.dumps({"step": int(last["step"]), "lambda": float(last["lambda"]),
                              "n_total": int(last["n_total"]),
                              "end": bool(last["end"]) or len(table) <= args.until_step}))
            return 0
        metric = sc["choose_by"]
        if metric == "auto":
            metric = "force_rmse" if settings.uses_forces else "energy_rmse"
        column = "val_rmse" if metric == "energy_rmse" else "val_force_rmse"
        if column == "val_force_rmse" and not np.isfinite(table["val_force_rmse_retrained"]).any():
            raise MeltpotError("selection.choose_by: force_rmse needs force errors: fit forces in the selection "
                               "(training.loss.forces > 0, selection.forces, --derivatives)")
        row = choose(table, tolerance=sc["tolerance"], lam=sc["choose_lambda"], n_features=sc["choose_n_features"],
                     metric=column)
        keep, lam = json.loads(row["kept"]), float(row["lambda"])
        chosen = {"rule": ("lambda" if sc["choose_lambda"] else "n_features" if sc["choose_n_features"]
                           else f"smallest set within {sc['tolerance']:.0%} of the better of the dense model and the "
                                f"retrained full set (validation {metric.replace('_', ' ')}); else the most accurate"),
                  "metric": metric,
                  "step": int(row["step"]), "lambda": lam, "n_features": int(row["n_total"]),
                  "val_rmse_dense": float(row["val_rmse_dense"]), "val_rmse_retrained": float(row["val_rmse_retrained"]),
                  "val_force_rmse_dense": _finite(row["val_force_rmse_dense"]),
                  "val_force_rmse_retrained": _finite(row["val_force_rmse_retrained"]),
                  "model": str(out / f"lambda_{int(row['step']):02d}" / "retrained.pt")}
    if not all(keep.values()):
        raise MeltpotError(f"{out}: the chosen λ {lam} leaves an element without features ({keep}); "
                           "set selection.choose_lambda or choose_n_features")
    n_total = sum(map(len, keep.values()))
    model.featureset.subset(keep, name=f"{model.featureset.name}-agl{n_total}").save(out / "selected_featureset.yaml")
    chosen.update(kept=keep, kept_labels={el: [labels[el][j] for j in idx] for el, idx in keep.items()},
                  noise_features=n_noise,
                  noise_kept={el: [labels[el][j] for j in idx if labels[el][j].startswith("noise")]
                              for el, idx in keep.items()})
    write_json(out / "chosen.json", chosen)
    plot_path(table, labels, out / "path.png", unit=unit, scale=scale, chosen=lam)
    print(f"{out}: {len(table)} λ values; chosen λ = {lam} with {n_total} features ({keep}), validation RMSE "
          f"{chosen['val_rmse_retrained'] * scale:.4g} {unit} (dense {chosen['val_rmse_dense'] * scale:.4g})"
          + (f"; noise features kept: {chosen['noise_kept']}" if n_noise else ""))
    return 0


def cmd_select_filter(args) -> int:
    """Unsupervised filter baseline (Pearson, CUR, FPS) on the training rows of the cache."""
    from .data.splits import read_splits
    from .descriptors.cache import DescriptorCache
    from .manifest import write_json
    from .selection.filters import filtered_featureset, select_per_element, select_per_element_arrays

    splits = read_splits(args.splits)
    train = splits.loc[splits["split"] == "train", "frame_id"].to_numpy()
    if (args.n_features is None) == (args.match is None):
        raise MeltpotError("give either --n-features or --match (a chosen.json of `meltpot select path`)")
    n_features = args.n_features
    if args.match:
        n_features = {el: len(v) for el, v in json.loads(Path(args.match).read_text())["kept"].items()}
    if args.config and args.noise is None:
        from .config import load_config

        args.noise, args.noise_seed = _noise_options(load_config(args.config))
    with DescriptorCache(args.cache) as cache:
        if args.noise:
            if not args.index:
                raise MeltpotError("--noise needs --index (the dataset index): noise is drawn per frame and atom")
            data, fs, _ = _split_datasets(cache, args.index, args.splits, ("train",), noise=args.noise,
                                          noise_seed=args.noise_seed)
            X = {el: g.cpu().numpy() for el, g in zip(data["train"].elements, data["train"].G)}
            sel = select_per_element_arrays(X, args.method, n_features, max_rows=args.max_rows, seed=args.seed,
                                            source=f"training features of {args.cache} with {args.noise} noise")
        else:
            fs = cache.featureset()
            sel = select_per_element(cache, args.method, n_features, frame_ids=train, max_rows=args.max_rows,
                                     seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n_total = sum(len(v) for v in sel.values())
    filtered_featureset(fs, sel, name=f"{fs.name}-{args.method}{n_total}").save(out)
    write_json(out.with_suffix(".json"), {"method": args.method, "n_features": n_features, "selected": sel,
                                          "labels": {el: [fs.labels(el)[j] for j in idx] for el, idx in sel.items()}})
    print(f"{out}: {args.method} kept {sel}")
    return 0


def cmd_select_compare(args) -> int:
    """N seeds per feature set (full, AGL, filters): test RMSE mean ± std, kept-feature matrix."""
    import torch

    from .config import load_config
    from .descriptors.cache import DescriptorCache
    from .descriptors.featureset import load_featureset
    from .manifest import write_json
    from .selection.compare import compare_sets, plot_kept_matrix, subset_indices
    from .train.settings import TrainSettings

    cfg = load_config(args.config)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = _selection_settings(cfg, args)
    if args.max_epochs:
        settings = settings.replace(max_epochs=args.max_epochs, restarts=None)
    n_noise, noise_seed = _noise_options(cfg)
    with DescriptorCache(args.cache) as cache:
        data, full, stats = _split_datasets(cache, args.index, args.splits, ("train", "validation", "test"),
                                            noise=n_noise, noise_seed=noise_seed,
                                            derivatives=args.derivatives if settings.uses_forces else None,
                                            element_weights=settings.force_element_weights,
                                            force_frames=cfg["selection"]["force_frames"])
    sets = {} if args.without_full else {"full": {el: list(range(full.n_features(el))) for el in full.elements}}
    for spec in args.sets or []:
        name, _, path = spec.partition("=")
        if not path:
            raise MeltpotError(f"--sets takes NAME=featureset.yaml, got {spec!r}")
        sets[name] = subset_indices(full, load_featureset(path), f"{path}")
    if not sets:
        raise MeltpotError("nothing to compare: give --sets or drop --without-full")
    table = compare_sets(sets, full, stats, data["train"], data["validation"], data["test"], settings,
                         seeds=range(args.seeds), hidden=cfg["model"]["hidden"], activation=cfg["model"]["activation"])
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.drop(columns=["kept", "test_rmse_all"]).to_csv(out / "comparison.csv", index=False)
    write_json(out / "comparison.json", {"seeds": args.seeds, "rows": table.to_dict(orient="records")})
    plot_kept_matrix(sets, full, out / "kept_features.png")
    scale, unit = 1000.0, ("meV/atom" if cfg["units"] == "metal" else "10⁻³ ε/atom")
    for r in table.itertuples():
        print(f"{r.set:>12s}: {r.n_features:3d} features ({r.n_angular} angular" + (f", {r.n_noise} noise" if r.n_noise else "") + "), test RMSE "
              f"{r.test_rmse_mean * scale:.4g} ± {r.test_rmse_std * scale:.2g} {unit} over {r.seeds} seeds")
    return 0


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meltpot", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(dest="config_command", required=True)
    cc = csub.add_parser("check", help="validate a config and list what it samples")
    cc.add_argument("config")
    cc.set_defaults(func=cmd_config_check)

    u = sub.add_parser("units", help="list sampling unit ids and import ids of a config")
    u.add_argument("config")
    u.set_defaults(func=cmd_units)

    s = sub.add_parser("sample", help="run the MD of one sampling unit (state or branch) with the reference engine")
    s.add_argument("config")
    s.add_argument("--unit", required=True, help="unit id (see `meltpot units`)")
    s.add_argument("--out", required=True, help="extxyz file of labelled frames")
    s.add_argument("--summary", help="JSON summary (frames, mean T per state, wall time)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_sample)

    i = sub.add_parser("import", help="import an existing trajectory named in the config's imports")
    i.add_argument("config")
    i.add_argument("--id", required=True)
    i.add_argument("--out", required=True, help="extxyz file")
    i.set_defaults(func=cmd_import)

    d = sub.add_parser("dataset", help="validate frames; write index.parquet, states.csv/png, validation report")
    d.add_argument("config")
    d.add_argument("--frames", nargs="+", required=True, help="extxyz files (sampled or imported)")
    d.add_argument("--out-dir", required=True)
    d.add_argument("--n2p2", action="store_true", help="also write the dataset as n2p2 input.data")
    d.set_defaults(func=cmd_dataset)

    sp = sub.add_parser("split", help="train/validation/test split of a dataset index")
    sp.add_argument("config")
    sp.add_argument("--index", required=True)
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=cmd_split)

    f = sub.add_parser("frames", help="frame file tools")
    fsub = f.add_subparsers(dest="frames_command", required=True)
    fc = fsub.add_parser("convert", help="convert between extxyz, VASP OUTCAR/vasprun.xml and n2p2 input.data")
    fc.add_argument("input")
    fc.add_argument("output")
    fc.add_argument("--input-format", choices=["extxyz", "vasp-out", "vasp-xml", "n2p2"])
    fc.add_argument("--output-format", choices=["extxyz", "n2p2"])
    fc.add_argument("--n2p2-units", choices=["metal", "atomic"], default="metal")
    fc.set_defaults(func=cmd_frames_convert)
    fk = fsub.add_parser("check", help="validate frame files and list every bad frame")
    fk.add_argument("files", nargs="+")
    fk.add_argument("--format", choices=["extxyz", "vasp-out", "vasp-xml", "n2p2"])
    fk.add_argument("--elements", nargs="+")
    fk.add_argument("--min-distance", type=float, default=0.5)
    fk.add_argument("--min-cell-width", type=float)
    fk.add_argument("--require-stress", action="store_true")
    fk.set_defaults(func=cmd_frames_check)

    ds = sub.add_parser("descriptors", help="symmetry-function descriptors: compute, inspect and export the cache")
    dsub = ds.add_subparsers(dest="descriptors_command", required=True)
    dc = dsub.add_parser("compute", help="compute (or reuse) the HDF5 descriptor cache of a dataset")
    dc.add_argument("config")
    dc.add_argument("--index", required=True, help="dataset index.parquet")
    dc.add_argument("--splits", help="splits.parquet: statistics over its train frames (default: all frames)")
    dc.add_argument("--out", required=True, help="HDF5 cache file")
    dc.add_argument("--featureset", help="preset name or YAML file (default: the config's descriptors.featureset)")
    dc.add_argument("--dtype", choices=["float64", "float32"], help="default: the config's descriptors.dtype")
    dc.add_argument("--device", choices=["cpu", "cuda"], help="default: the config's descriptors.device")
    dc.add_argument("--chunk-frames", type=int, help="default: the config's descriptors.chunk_frames")
    dc.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    dc.add_argument("--no-progress", action="store_true")
    dc.set_defaults(func=cmd_descriptors_compute)
    di = dsub.add_parser("info", help="print a cache's feature set, frames, key and feature statistics")
    di.add_argument("file")
    di.add_argument("--json", action="store_true", help="everything as JSON")
    di.set_defaults(func=cmd_descriptors_info)
    de = dsub.add_parser("export", help="export the features to .npz, .csv or .parquet")
    de.add_argument("file")
    de.add_argument("--out", required=True, help="FILE.npz, FILE.csv or FILE.parquet")
    de.add_argument("--element", help="only this element (default: all)")
    de.set_defaults(func=cmd_descriptors_export)
    dfs = dsub.add_parser("featureset", help="write a resolved feature-set YAML from a preset or a grid")
    src = dfs.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="preset name or feature-set YAML")
    src.add_argument("--grid", action="store_true", help="generate a grid (needs --elements and --rc)")
    dfs.add_argument("--elements", nargs="+", help="elements to resolve the functions for")
    dfs.add_argument("--out", required=True)
    dfs.add_argument("--name", help="name of the feature set (default: the preset's, or 'grid')")
    dfs.add_argument("--rc", type=float, help="grid: cutoff radius")
    dfs.add_argument("--n-radial", type=int, default=8, help="grid: centred radial functions")
    dfs.add_argument("--n-shifted", type=int, default=8, help="grid: shifted radial functions")
    dfs.add_argument("--r-min", type=float, help="grid: smallest radial width / first shift (default r_c/8)")
    dfs.add_argument("--zetas", type=float, nargs="+", default=[1, 2, 4, 16], help="grid: angular ζ values")
    dfs.add_argument("--lambdas", type=float, nargs="+", default=[-1, 1], help="grid: angular λ values")
    dfs.add_argument("--angular-etas", type=float, nargs="+", help="grid: angular η values (default one, 1/(2(r_c/2)²))")
    dfs.add_argument("--angular-type", choices=["angular_narrow", "angular_wide"], default="angular_narrow")
    dfs.add_argument("--cutoff", choices=["polynomial", "cosine"], default="polynomial")
    dfs.set_defaults(func=cmd_descriptors_featureset)
    from .descriptors import cli as cli_descriptors

    cli_descriptors.add_commands(dsub)
    dp = dsub.add_parser("presets", help="list the feature-set presets")
    dp.set_defaults(func=cmd_descriptors_presets)

    ev = sub.add_parser("evaluate", help="energy/force errors of a model per split, state and phase; "
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
                    choices=["train", "validation", "test"], help="splits to evaluate (default: validation test)")
    ev.add_argument("--batch-frames", type=int, default=16, help="frames per force evaluation")
    ev.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ev.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ev.set_defaults(func=cmd_evaluate)

    t = sub.add_parser("train", help="train an HDNNP (the config's model and training blocks) on a descriptor cache")
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
    t.add_argument("--max-epochs", type=int, help="override training.max_epochs (and schedule.restarts)")
    t.add_argument("--device", choices=["cpu", "cuda"], help="override training.device")
    t.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)

    se = sub.add_parser("select", help="feature selection")
    ssub = se.add_subparsers(dest="select_command", required=True)
    sp_ = ssub.add_parser("path", help="λ path: Group Lasso → Adaptive Group Lasso → retraining (resumes)")
    sp_.add_argument("config")
    sp_.add_argument("--model", required=True, help="the trained dense model (meltpot train)")
    sp_.add_argument("--cache", required=True)
    sp_.add_argument("--index", required=True)
    sp_.add_argument("--splits", required=True)
    sp_.add_argument("--out-dir", required=True, help="per-λ models and metrics, path.csv, chosen.json, path.png")
    sp_.add_argument("--derivatives", help="derivative store: the λ path fits the training loss's force term "
                                           "(with selection.forces)")
    sp_.add_argument("--threads", type=int)
    sp_.add_argument("--until-step", type=int, help="compute the path only up to this λ step (0-based; earlier "
                                                    "steps are reused) and stop: one λ per workflow job")
    sp_.set_defaults(func=cmd_select_path)
    sf = ssub.add_parser("filter", help="unsupervised filter baseline: pearson, cur or fps at a feature count")
    sf.add_argument("--cache", required=True)
    sf.add_argument("--splits", required=True, help="the filter runs on the training rows")
    sf.add_argument("--method", required=True, help="pearson, cur or fps")
    sf.add_argument("--n-features", type=int, help="features kept per element")
    sf.add_argument("--match", help="chosen.json of `meltpot select path`: keep as many features per element")
    sf.add_argument("--max-rows", type=int, default=20000, help="row subsample (atoms) per element")
    sf.add_argument("--seed", type=int, default=0)
    sf.add_argument("--index", help="dataset index (needed with noise features)")
    sf.add_argument("--config", help="run config: noise features as in selection.noise_features/noise_seed")
    sf.add_argument("--noise", type=int, help="confounding noise features per element (overrides --config)")
    sf.add_argument("--noise-seed", type=int, default=0, help="seed of the noise features (with --noise)")
    sf.add_argument("--out", required=True, help="the filtered feature set (YAML); selections in .json beside it")
    sf.set_defaults(func=cmd_select_filter)
    sc = ssub.add_parser("compare", help="train N seeds per feature set; test RMSE mean ± std (thesis tables C.4-C.6)")
    sc.add_argument("config")
    sc.add_argument("--cache", required=True)
    sc.add_argument("--index", required=True)
    sc.add_argument("--splits", required=True)
    sc.add_argument("--sets", nargs="*", help="NAME=featureset.yaml (subsets of the cached set); 'full' is always included")
    sc.add_argument("--seeds", type=int, default=4, help="initialisations per set (thesis: 4)")
    sc.add_argument("--without-full", action="store_true",
                    help="do not train the full set (e.g. to split the comparison over several processes)")
    sc.add_argument("--max-epochs", type=int, help="override training.max_epochs")
    sc.add_argument("--threads", type=int)
    sc.add_argument("--out-dir", required=True)
    sc.add_argument("--derivatives", help="derivative store: the models fit the training loss's force term "
                                          "(with selection.forces); validation force errors are reported")
    sc.set_defaults(func=cmd_select_compare)

    an = sub.add_parser("analyze", help="structure, dynamics, local order and nucleation of trajectories")
    asub = an.add_subparsers(dest="analyze_command", required=True)
    from .analysis import cli_dynamics, cli_order, cli_structure

    for module in (cli_structure, cli_dynamics, cli_order):
        module.add_commands(asub)

    md = sub.add_parser("md", help="MD protocols (NVT/NPT/NPH, quench, ramp, two-phase, nucleation, minimise) with LAMMPS")
    mdsub = md.add_subparsers(dest="md_command", required=True)
    from .md import cli_md

    cli_md.add_commands(mdsub)

    ex = sub.add_parser("export", help="export a trained model for LAMMPS (TorchScript plugin, ML-IAP) or n2p2")
    esub = ex.add_subparsers(dest="export_command", required=True)
    from .export import EXPORT_CLI_MODULES

    for module in EXPORT_CLI_MODULES():
        module.add_commands(esub)

    from .plugin import cli as plugin_cli

    plugin_cli.add_commands(sub)

    sm = sub.add_parser("summary", help="write summary.md of a run folder (the numbers of every stage that ran)")
    sm.add_argument("run_dir", help="results/<run_id>")
    sm.add_argument("--out", help="default: <run_dir>/summary.md")
    sm.set_defaults(func=cmd_summary)

    m = sub.add_parser("manifest", help="write a run manifest (config, commit, versions, checksums)")
    m.add_argument("config")
    m.add_argument("--out", required=True)
    m.add_argument("--outputs", nargs="*")
    m.add_argument("--summaries", nargs="*", help="sampling summary JSON files to include")
    m.add_argument("--benchmarks", help="folder of Snakemake benchmark files: per-rule wall/CPU times and memory")
    m.set_defaults(func=cmd_manifest)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except MeltpotError as exc:
        print(f"meltpot: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
