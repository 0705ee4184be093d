"""One training run of a config (``meltpot train``): check that the descriptor cache belongs to
the config's feature set and the dataset, build the training and validation data (cached
features; forces from the derivative store or through positions), fit the HDNNP of the
config's ``model`` block with the ``training`` settings, save the model with its metadata.

:func:`prepare_training` does the checks and builds everything (its :attr:`TrainingRun.mode`
says how energies and forces are obtained), :func:`run_training` fits and saves.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MeltpotError

log = logging.getLogger("meltpot")


@dataclass
class TrainingRun:
    """Everything a fit needs, built by :func:`prepare_training`."""

    cfg: dict
    featureset: object
    settings: object
    model: object
    train_data: object
    val_data: object
    cache_meta: dict
    prep: dict
    index_path: Path
    splits_path: str
    derivatives: str | None
    t_start: float = field(default_factory=time.perf_counter)

    @property
    def mode(self) -> str:
        """How energies, forces and stress enter the loss."""
        if not self.settings.uses_forces:
            return "energies from cached features"
        if self.derivatives:
            store = self.train_data.forces_store
            return (f"energies from cached features, forces of {len(store.frame_ids)} frames from the derivative "
                    f"store {self.derivatives} ({store.nbytes / 1e9:.2f} GB in memory)")
        return "energies, forces and stress from positions"

    def describe(self) -> str:
        """One line: feature set, architecture, data and epochs."""
        model, cfg = self.model, self.cfg
        n_in = ", ".join(f"{el} {n}" for el, n in model.describe()["n_features"].items())
        return (f"training an HDNNP on {self.featureset.name} ({n_in} features; hidden {model.architecture_text()}) "
                f"on {len(self.train_data)} frames ({self.mode}); validation "
                f"{0 if self.val_data is None else len(self.val_data)} frames; up to {self.settings.n_epochs} epochs")


def prepare_training(cfg: dict, cache_path, index_path, splits_path, *, derivatives=None, max_epochs=None,
                     device=None, seed=None, init=None, progress: bool = True,
                     config_name: str = "the config") -> TrainingRun:
    """Check the cache against the config's feature set and the dataset, and build the settings
    (``max_epochs``/``device``/``seed`` override the training block), data and initialised model.
    ``init``: a model file (same feature set and architecture) whose weights, feature scaling and
    reference energies the fit starts from (a warm start, e.g. the previous active-learning
    iteration's member)."""
    from ..config import load_run_featureset
    from ..data.splits import read_splits
    from ..descriptors.cache import DescriptorCache, _load_splits, frames_key, read_index, stats_key
    from ..model.hdnnp import HDNNP
    from ..seeds import derive_seed
    from .data import EnergyDataset, ForceDataset
    from .settings import TrainSettings
    from .trainer import prepare_model, require_device

    t_start = time.perf_counter()
    fs = load_run_featureset(cfg)
    overrides = {"progress": progress}
    if max_epochs is not None:
        overrides.update(max_epochs=max_epochs, restarts=None)
    if device:
        overrides["device"] = device
    tcfg = cfg["training"]
    if seed is not None:
        overrides["seed"] = int(seed)
    elif tcfg.get("seed") is None:
        overrides["seed"] = derive_seed(cfg["seed"], "train")
    settings = TrainSettings.from_config(tcfg, **overrides)
    require_device(settings.device)

    index_path = Path(index_path)
    index = read_index(index_path)
    splits = read_splits(splits_path)
    with DescriptorCache(cache_path) as cache:
        info = cache.info()
        if info["featureset_hash"] != fs.content_hash():
            raise MeltpotError(
                f"descriptor cache {cache_path} was computed with feature set {info['featureset']} "
                f"({info['featureset_hash'][:12]}), but {config_name} trains on {fs.name} "
                f"({fs.content_hash()[:12]}, descriptors.featureset = {cfg['descriptors']['featureset']!r}): "
                "recompute the cache with `meltpot descriptors compute` for this config")
        if info["frames_key"] != frames_key(index, index_path.parent, str(index_path)):
            raise MeltpotError(f"descriptor cache {cache_path} was computed for other frames than {index_path} "
                               "(frames key differs): recompute the cache for this dataset")
        cached_skey = info.get("stats_key")
        if cached_skey is not None and cached_skey != stats_key(_load_splits(splits, index)):
            log.warning("%s: the feature statistics are not over the training split of %s; run "
                        "`meltpot descriptors compute --splits` to update them", cache_path, splits_path)
        missing = np.setdiff1d(splits["frame_id"].to_numpy(), index["frame_id"].to_numpy())
        if missing.size:
            raise MeltpotError(f"{splits_path} names frames {missing[:5].tolist()} that are not in {index_path}")
        ids = {name: splits.loc[splits["split"] == name, "frame_id"].to_numpy(np.int64)
               for name in ("train", "validation")}
        if ids["train"].size == 0:
            raise MeltpotError(f"{splits_path} has no training frames")
        if ids["validation"].size == 0:
            log.warning("%s has no validation frames: early stopping monitors the training data", splits_path)
        dtype = settings.torch_dtype

        def dataset(frame_ids):
            if frame_ids.size == 0:
                return None
            if settings.uses_forces and not derivatives:
                return ForceDataset.from_index(index, index_path.parent, frame_ids, list(fs.elements),
                                               fs.cutoff_radius, dtype=dtype, device=settings.device)
            data = EnergyDataset(cache, index, frame_ids, dtype=dtype, device=settings.device)
            if settings.uses_forces:
                data.attach_forces(derivatives, settings.force_element_weights)
            return data

        train_data, val_data = dataset(ids["train"]), dataset(ids["validation"])
        model = HDNNP(fs, hidden=cfg["model"]["hidden"], activation=cfg["model"]["activation"])
        prep = prepare_model(model, cache, train_data, seed=settings.seed)
        if init is not None:
            prep = warm_start(model, init, prep)
        cache_meta = {"path": str(cache_path), "key": info["key"], "featureset": info["featureset"],
                      "featureset_hash": info["featureset_hash"], "stats_over": info["stats_over"]}
    return TrainingRun(cfg=cfg, featureset=fs, settings=settings, model=model, train_data=train_data,
                       val_data=val_data, cache_meta=cache_meta, prep=prep, index_path=index_path,
                       splits_path=str(splits_path), derivatives=derivatives, t_start=t_start)


def warm_start(model, init, prep: dict) -> dict:
    """Copy weights, scaling and reference energies of the model file ``init`` into ``model``
    (checked: same feature set and hidden layers); returns ``prep`` updated."""
    from ..model.modelfile import check_featureset, load_model

    start = load_model(init)
    check_featureset(model, start.featureset.content_hash(), what=f"the warm-start model {init}")
    if start.describe()["hidden"] != model.describe()["hidden"] or \
            start.describe()["activation"] != model.describe()["activation"]:
        raise MeltpotError(f"warm-start model {init} has hidden layers {start.architecture_text()}, the config "
                           f"{model.architecture_text()}: it cannot start this fit")
    model.load_state_dict(start.state_dict())
    ref = {el: float(e) for el, e in zip(model.elements, model.reference_energy.tolist())}
    return {**prep, "reference_energies": ref, "scaling": f"{prep['scaling']}, then the warm-start model's",
            "warm_start": str(init)}


def run_training(run: TrainingRun, out, checkpoint=None, history=None, resume: bool = False) -> dict:
    """Fit, write the learning curve (also when the fit fails), save the model with its metadata
    to ``out``. Returns ``out``, ``history``, ``epochs``, ``stopped_early``, ``best_epoch``,
    ``metrics`` (train and validation errors) and ``seconds``."""
    from .. import __version__
    from ..model.modelfile import save_model
    from .trainer import Trainer, write_history

    cfg, settings, model = run.cfg, run.settings, run.model
    out = Path(out)
    ckpt = Path(checkpoint) if checkpoint else out.with_suffix(".ckpt")
    history_path = Path(history) if history else out.with_suffix(".history.csv")
    train_data, val_data = run.train_data, run.val_data
    trainer = Trainer(model, settings, train_data, val_data)
    try:
        trainer.fit(checkpoint_path=ckpt, resume=resume)
    finally:
        if trainer.history:
            write_history(trainer.history, history_path)
    model.eval()
    metrics = {"train": trainer.evaluate(train_data)}
    if val_data is not None:
        metrics["validation"] = trainer.evaluate(val_data)
    seconds = time.perf_counter() - run.t_start
    metadata = {
        "meltpot_version": __version__, "run_id": cfg["run_id"], "units": cfg["units"],
        "training": settings.to_dict(), "seed": settings.seed,
        "model": {k: model.describe()[k] for k in ("hidden", "activation")},
        "epochs": trainer.epoch, "stopped_early": trainer.stopped_early, "best_epoch": trainer.best_epoch,
        "best_monitor": trainer.best_monitor, "monitor": trainer.monitor_name,
        "cache": run.cache_meta,
        "data": {"index": str(run.index_path), "splits": run.splits_path, "n_train": len(train_data),
                 "n_validation": 0 if val_data is None else len(val_data),
                 "n_train_atoms": int(train_data.n_atoms.sum())},
        "reference_energies": run.prep["reference_energies"], "scaling": run.prep["scaling"],
        "metrics": metrics, "seconds": seconds, "train_seconds": float(sum(h["seconds"] for h in trainer.history)),
        "history": str(history_path), "checkpoint": str(ckpt),
    }
    save_model(model.cpu(), out, units=cfg["units"], metadata=metadata)
    return {"out": out, "history": history_path, "epochs": trainer.epoch, "stopped_early": trainer.stopped_early,
            "best_epoch": trainer.best_epoch, "metrics": metrics, "seconds": seconds}
