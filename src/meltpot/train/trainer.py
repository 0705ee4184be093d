"""Training of an HDNNP: mini-batches of configurations, AdamW, schedules, early stopping,
checkpoints that resume exactly.

* Data: an :class:`~meltpot.train.data.EnergyDataset` (cached features: fast energy-only
  training) or a :class:`~meltpot.train.data.ForceDataset` (neighbour graphs: energies,
  forces and stress by autograd through positions, with ``create_graph`` so that force and
  stress terms of the loss are differentiable). Force or stress weights > 0 need the latter.
* Loss of a batch: ``w_E·MSE(E/N) + w_F·MSE(F components) + w_S·MSE(stress, Voigt)``, plus an
  optional ``penalty(model)``.
* AdamW with weight decay on the internal weights only (weights of the layers after the
  input layer: the input layer's columns are the group-lasso groups; biases are never
  decayed). ``after_step(model, lr)`` is called after every optimiser step (proximal steps).
* Every epoch: full evaluation on the validation data, a ``monitor`` value (pluggable:
  default the validation energy RMSE per atom) driving the plateau schedule, early stopping
  and the best state, which is restored at the end.
* Reproducible: weights initialised from a seeded generator (:func:`init_weights`), batches
  shuffled by a generator seeded from (seed, epoch), deterministic algorithms. A checkpoint
  holds model, optimiser, scheduler, early-stopping state, best state, history and epoch:
  an interrupted run resumed from it ends with the same weights as an uninterrupted one.
* A non-finite loss stops the run with :class:`TrainingError` naming the epoch, batch and
  frames, after saving the last finite (epoch-start) state as the checkpoint.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import MeltpotError
from ..model.batch import predict
from ..model.modelfile import load_torch_file
from ..seeds import derive_seed
from .settings import TrainSettings

log = logging.getLogger("meltpot.train")

CHECKPOINT_FORMAT = "meltpot-checkpoint"
CHECKPOINT_VERSION = 1
#: settings that may differ between a checkpoint and the run resuming it
_RESUMABLE_CHANGES = {"max_epochs", "restarts", "checkpoint_every", "log_every", "progress", "eval_batch_size"}


class TrainingError(MeltpotError):
    """Training cannot go on (non-finite loss, unusable data or checkpoint)."""


def require_device(device: str) -> None:
    """Fail with the reason when ``device`` is a GPU that torch cannot see (a CPU-only torch, a
    node without a GPU, or a Slurm job whose GPU request gave it none)."""
    if str(device).split(":")[0] != "cuda" or torch.cuda.is_available():
        return
    import os

    built = torch.version.cuda or "no"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
    raise TrainingError(f"training.device = {device}, but torch sees no CUDA device (torch {torch.__version__}, "
                        f"built with CUDA: {built}; CUDA_VISIBLE_DEVICES={visible}): run on a GPU node with a "
                        "CUDA torch, or set training.device: cpu")


# ----------------------------------------------------------------------------- model set-up
def init_weights(model, seed: int) -> None:
    """Glorot-uniform weights and zero biases for every element network, drawn from a
    ``torch.Generator`` seeded from ``seed`` (on the CPU in float64, then copied: the same
    numbers on every device and dtype)."""
    gen = torch.Generator(device="cpu").manual_seed(derive_seed(seed, "init-weights"))
    with torch.no_grad():
        for net in model.nets:
            for layer in net.layers:
                w = torch.empty(layer.weight.shape, dtype=torch.float64)
                torch.nn.init.xavier_uniform_(w, generator=gen)
                layer.weight.copy_(w)
                layer.bias.zero_()


def _is_graph_data(data) -> bool:
    return hasattr(data, "graphs")


def _store(data):
    """The derivative store attached to cached-feature data (None: none, or graph data)."""
    return getattr(data, "forces_store", None) if data is not None else None


def _element_counts(data, n_elements: int) -> np.ndarray:
    if hasattr(data, "counts"):
        return data.counts.detach().cpu().numpy()
    return np.stack([np.bincount(g.species.cpu().numpy(), minlength=n_elements) for g in data.graphs])


def feature_statistics(model, data) -> tuple[dict, dict]:
    """Per-element feature mean and standard deviation (population) over ``data``'s atoms:
    the cached rows of an EnergyDataset, or features computed from a ForceDataset's graphs."""
    rows = {el: [] for el in model.elements}
    if _is_graph_data(data):
        dev, dtype = model.feature_mean.device, model.feature_mean.dtype
        with torch.no_grad():
            for g in data.graphs:
                pos, cell = g.positions.to(dev, dtype), g.cell.to(dev, dtype)
                species, center, neighbor = g.species.to(dev), g.center.to(dev), g.neighbor.to(dev)
                rij = pos[neighbor] - pos[center] + g.shift.to(dev, dtype) @ cell
                G = model.descriptor(species, center, neighbor, rij, g.n_atoms)
                for k, el in enumerate(model.elements):
                    rows[el].append(G[species == k][:, : model.n_features[k]].double().cpu())
    else:
        for k, el in enumerate(model.elements):
            rows[el].append(data.G[k].double().cpu())
    mean, std = {}, {}
    for k, el in enumerate(model.elements):
        G = torch.cat(rows[el]) if rows[el] else torch.zeros(0, model.n_features[k], dtype=torch.float64)
        if G.shape[0] == 0:
            log.warning("element %s has no atoms in the training data: its features are not scaled", el)
            mean[el], std[el] = np.zeros(model.n_features[k]), np.ones(model.n_features[k])
        else:
            mean[el] = G.mean(0).numpy()
            std[el] = G.std(0, unbiased=False).numpy()
    return mean, std


def prepare_model(model, cache, train_data, seed: int | None = None) -> dict:
    """Set up ``model`` for training on ``train_data``.

    * feature scaling: the descriptor cache's statistics (``cache``, a
      :class:`~meltpot.descriptors.cache.DescriptorCache`; computed over the training split
      when the cache was built with the splits), or — ``cache=None`` — statistics over the
      atoms of ``train_data``; the cache's feature set must be the model's;
    * reference energies: least squares of the training energies on composition;
    * weights: :func:`init_weights` with ``seed`` (None: left as they are).

    Returns a summary (``scaling``, ``reference_energies``).
    """
    from ..model.hdnnp import fit_reference_energies

    if cache is not None:
        from ..model.modelfile import check_featureset

        check_featureset(model, cache.info()["featureset_hash"], what=f"the descriptors in {cache.path}")
        mean, std = {}, {}
        over = None
        for k, el in enumerate(model.elements):
            st = cache.stats(el)
            over = st["over"]
            if st["n_rows"] == 0 or not np.all(np.isfinite(st["mean"])):
                log.warning("element %s has no atoms in the cache's statistics: its features are not scaled", el)
                mean[el], std[el] = np.zeros(model.n_features[k]), np.ones(model.n_features[k])
            else:
                mean[el], std[el] = st["mean"], st["std"]
        if over != "train":
            log.warning("%s: feature statistics are over all frames, not the training split (the cache was "
                        "built without --splits)", cache.path)
        scaling = f"descriptor cache ({over} frames)"
    else:
        mean, std = feature_statistics(model, train_data)
        scaling = f"training data ({len(train_data)} frames)"
    model.set_scaling(mean, std)
    counts = _element_counts(train_data, len(model.elements))
    energies = train_data.energy.detach().cpu().numpy()
    if not np.all(np.isfinite(energies)):
        bad = np.flatnonzero(~np.isfinite(energies))
        raise TrainingError(f"training energies are not finite for frames {_frame_names(train_data, bad)}")
    ref = fit_reference_energies(energies, counts, model.elements)
    model.set_reference_energies(ref)
    if seed is not None:
        init_weights(model, seed)
    return {"scaling": scaling, "reference_energies": ref}


# ----------------------------------------------------------------------------- optimiser
def param_groups(model, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: ``internal_weights`` (decayed), ``input_weights`` and
    ``biases`` (not decayed); parameters outside the element networks (none in an HDNNP)
    go to ``other`` (not decayed). Frozen parameters are left out."""
    internal, inputs, biases = [], [], []
    for net in model.nets:
        for i, layer in enumerate(net.layers):
            (inputs if i == 0 else internal).append(layer.weight)
            biases.append(layer.bias)
    seen = {id(p) for p in internal + inputs + biases}
    other = [p for p in model.parameters() if id(p) not in seen]
    groups = [{"name": "internal_weights", "params": internal, "weight_decay": float(weight_decay)},
              {"name": "input_weights", "params": inputs, "weight_decay": 0.0},
              {"name": "biases", "params": biases, "weight_decay": 0.0},
              {"name": "other", "params": other, "weight_decay": 0.0}]
    for g in groups:
        g["params"] = [p for p in g["params"] if p.requires_grad]
    return [g for g in groups if g["params"]]


def build_optimizer(model, settings: TrainSettings) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, settings.weight_decay), lr=settings.lr, betas=(0.9, 0.999),
                             eps=1e-8)


def build_scheduler(optimizer, settings: TrainSettings):
    """The learning-rate scheduler of ``settings.schedule`` (None for ``constant``)."""
    s = settings
    if s.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=s.plateau_factor,
                                                          patience=s.plateau_patience, threshold=s.min_delta,
                                                          threshold_mode="abs", min_lr=s.min_lr)
    if s.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.step_gamma)
    if s.schedule == "cosine_restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=int(s.t0), T_mult=2,
                                                                    eta_min=s.min_lr)
    return None


# ----------------------------------------------------------------------------- helpers
def _frame_names(data, positions) -> str:
    positions = np.asarray(positions).reshape(-1)
    ids = getattr(data, "frame_ids", None)
    shown = positions[:8]
    text = ", ".join(str(int(ids[p])) if ids is not None else f"#{int(p)}" for p in shown)
    return text + (f" … ({len(positions)} in all)" if len(positions) > len(shown) else "")


def _voigt(stress: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) → (n, 6), ASE order xx, yy, zz, yz, xz, xy (differentiable)."""
    return torch.stack([stress[:, 0, 0], stress[:, 1, 1], stress[:, 2, 2], stress[:, 1, 2], stress[:, 0, 2],
                        stress[:, 0, 1]], -1)


def _clone_state(state: dict) -> dict:
    return {k: v.detach().clone() for k, v in state.items()}


@contextmanager
def _nothing():
    yield


@contextmanager
def _deterministic(on: bool):
    if not on:
        yield
        return
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


class _Errors:
    """Running sums of squared/absolute errors."""

    def __init__(self):
        self.e_se = self.e_ae = self.f_se = self.f_ae = self.s_se = 0.0
        self.n_frames = self.n_f = self.n_s = 0
        self.loss_sum = self.penalty_sum = 0.0
        self.n_batches = 0

    def add(self, terms: dict) -> None:
        self.e_se += float(terms["e_se"])
        self.e_ae += float(terms["e_ae"])
        self.n_frames += int(terms["n_frames"])
        if "f_se" in terms:
            self.f_se += float(terms["f_se"])
            self.f_ae += float(terms["f_ae"])
            self.n_f += int(terms["n_f"])
        if "s_se" in terms:
            self.s_se += float(terms["s_se"])
            self.n_s += int(terms["n_s"])

    def metrics(self, settings: TrainSettings) -> dict:
        w_e, w_f, w_s = settings.weights(None)
        out = {"energy_rmse": math.sqrt(self.e_se / max(self.n_frames, 1)),
               "energy_mae": self.e_ae / max(self.n_frames, 1), "n_frames": self.n_frames}
        loss = w_e * self.e_se / max(self.n_frames, 1)
        if self.n_f:
            out["force_rmse"] = math.sqrt(self.f_se / self.n_f)
            out["force_mae"] = self.f_ae / self.n_f
            loss += w_f * self.f_se / self.n_f
        if self.n_s:
            out["stress_rmse"] = math.sqrt(self.s_se / self.n_s)
            loss += w_s * self.s_se / self.n_s
        out["loss"] = loss
        return out


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """Train ``model`` on ``train_data``, monitoring ``val_data`` (see module docstring).

    ``monitor``: callable ``(model, val_metrics) -> float`` (lower is better) or the name of
    a validation metric; default ``"energy_rmse"`` (validation energy RMSE per atom).
    Validation metrics: ``energy_rmse``, ``energy_mae`` (per atom), ``force_rmse``,
    ``force_mae``, ``stress_rmse`` (where the data have them), ``loss`` (the weighted loss
    without penalty) and ``n_frames``. ``val_data=None`` monitors the training data.

    ``after_step(model, lr)``: called after every optimiser step with the step's learning
    rate. ``penalty(model)``: a tensor (or 0) added to every batch's loss.

    After :meth:`fit`: ``history``, ``epoch`` (epochs run), ``best_epoch``,
    ``best_monitor``, ``stopped_early``.
    """

    def __init__(self, model, settings: TrainSettings, train_data, val_data=None,
                 monitor: Callable | str | None = None, after_step: Callable | None = None,
                 penalty: Callable | None = None):
        self.settings = settings
        require_device(settings.device)
        self.device = torch.device(settings.device)
        self.dtype = settings.torch_dtype
        self.model = model.to(device=self.device, dtype=self.dtype)
        self.train_data = train_data
        self.val_data = val_data
        for name, data in (("training", train_data), ("validation", val_data)):
            if data is not None:
                self._check_data(name, data)
        if len(train_data) == 0:
            raise TrainingError("no training frames")
        store = _store(train_data)
        if settings.uses_forces and not _is_graph_data(train_data) and store is None:
            raise TrainingError("force or stress terms in the loss need force labels: training data with "
                                "positions (a ForceDataset) or cached features with a derivative store "
                                "(EnergyDataset.attach_forces)")
        if settings.stress_weight > 0 and _is_graph_data(train_data) and any(s is None for s in train_data.stress):
            bad = [i for i, s in enumerate(train_data.stress) if s is None]
            raise TrainingError(f"loss.stress > 0 but training frames {_frame_names(train_data, bad)} have no stress")
        if settings.stress_weight > 0 and store is not None and not store.has_stress:
            bad = torch.nonzero(~torch.isfinite(store.stress).all(1)).squeeze(-1).cpu().numpy()
            raise TrainingError(f"loss.stress > 0 but training frames {', '.join(map(str, store.frame_ids[bad][:8]))} "
                                f"of {store.path} have no stress")
        if monitor is None:
            monitor = settings.monitor_metric
        if isinstance(monitor, str):
            key = monitor
            self.monitor_name = key

            def monitor(_model, metrics, key=key):
                if key not in metrics:
                    raise TrainingError(f"monitor {key!r} is not a validation metric; available: "
                                        f"{', '.join(sorted(metrics))}")
                return metrics[key]
        else:
            self.monitor_name = getattr(monitor, "__name__", "custom")
        self.monitor = monitor
        self.after_step = after_step
        self.penalty = penalty
        self.optimizer = build_optimizer(self.model, settings)
        self.scheduler = build_scheduler(self.optimizer, settings)
        self.epoch = 0
        self.history: list[dict] = []
        self.best_monitor = math.inf
        self.best_epoch = 0
        self.patience_ref = math.inf
        self.bad_epochs = 0
        self.stopped_early = False
        self.best_state: dict | None = None
        self._arch = self._architecture()

    # ------------------------------------------------------------------ data
    def _check_data(self, name: str, data) -> None:
        dtype = data.energy.dtype
        if dtype != self.dtype:
            raise TrainingError(f"the {name} data are {str(dtype).replace('torch.', '')} but training.dtype is "
                                f"{self.settings.dtype}: build the datasets with dtype=torch.{self.settings.dtype}")
        if data.energy.device.type != self.device.type:
            raise TrainingError(f"the {name} data are on {data.energy.device} but training.device is "
                                f"{self.settings.device}")
        e = data.energy.detach().cpu().numpy()
        if not np.all(np.isfinite(e)):
            raise TrainingError(f"{name} energies are not finite for frames "
                                f"{_frame_names(data, np.flatnonzero(~np.isfinite(e)))}")
        if _is_graph_data(data):
            bad = [i for i, f in enumerate(data.forces) if not bool(torch.isfinite(f).all())]
            if bad:
                raise TrainingError(f"{name} forces are not finite in frames {_frame_names(data, bad)}")

    def _terms(self, data, idx: torch.Tensor, forces: bool, stress: bool, create_graph: bool,
               weights: tuple | None = None, generator: torch.Generator | None = None) -> dict:
        """Predictions of the frames ``idx`` of ``data`` and their loss terms (``weights``:
        (energy, force, stress) weights; default the final ones)."""
        s = self.settings
        w_e, w_f, w_s = weights if weights is not None else s.weights(None)
        store = _store(data)
        if _is_graph_data(data):
            sel = idx.tolist()
            out = predict(self.model, [data.graphs[i] for i in sel], forces=forces, stress=stress,
                          create_graph=create_graph)
        else:
            out = {"energy": data.predict(self.model, idx)}
        n = data.n_atoms[idx].to(out["energy"].dtype)
        de = (out["energy"] - data.energy[idx]) / n
        se = (de * de).sum()
        terms = {"e_se": se.detach(), "e_ae": de.detach().abs().sum(), "n_frames": int(idx.numel())}
        loss = w_e * se / idx.numel()
        if "forces" in out:
            df = out["forces"] - torch.cat([data.forces[i] for i in sel])
            fse = (df * df).sum()
            terms.update(f_se=fse.detach(), f_ae=df.detach().abs().sum(), n_f=df.numel())
            loss = loss + w_f * fse / df.numel()
        if "stress" in out:
            ds = _voigt(out["stress"]) - torch.stack([data.stress[i] for i in sel])
            sse = (ds * ds).sum()
            terms.update(s_se=sse.detach(), n_s=ds.numel())
            loss = loss + w_s * sse / ds.numel()
        if store is not None and (forces or stress):
            fidx = store.frame_of[idx]
            fidx = fidx[fidx >= 0]
            if fidx.numel():
                fraction = s.force_fraction if generator is not None else 1.0
                res = store.predict(self.model, fidx, create_graph=create_graph, stress=stress,
                                    atom_fraction=fraction, generator=generator)
                df = res["forces"] - res["reference"]
                wdf = df * res["weight"][:, None].sqrt()
                if res["mask"] is not None:
                    df, wdf = df[res["mask"]], wdf[res["mask"]]
                if df.numel():
                    fse = (wdf * wdf).sum()
                    terms.update(f_se=(df.detach() ** 2).sum(), f_ae=df.detach().abs().sum(), n_f=df.numel())
                    loss = loss + w_f * fse / df.numel()
                if stress:
                    ds = _voigt(res["stress"]) - res["stress_reference"]
                    sse = (ds * ds).sum()
                    terms.update(s_se=sse.detach(), n_s=ds.numel())
                    loss = loss + w_s * sse / ds.numel()
        terms["loss"] = loss
        return terms

    def evaluate(self, data=None) -> dict:
        """Metrics of the current model on ``data`` (default: the validation data): energy
        errors per atom, force/stress errors where the data have them, weighted loss."""
        data = data if data is not None else (self.val_data if self.val_data is not None else self.train_data)
        graph = _is_graph_data(data)
        store = _store(data)
        forces = graph or store is not None
        stress = (graph and all(st is not None for st in data.stress)) or (store is not None and store.has_stress)
        bs = self.settings.batch_size if forces else self.settings.eval_batch_size
        acc = _Errors()
        with torch.set_grad_enabled(forces):
            for a in range(0, len(data), bs):
                idx = torch.arange(a, min(a + bs, len(data)), device=self.device)
                acc.add(self._terms(data, idx, forces=forces, stress=stress, create_graph=False))
        return acc.metrics(self.settings)

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "epoch": self.epoch,
            "model": _clone_state(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "scheduler": None if self.scheduler is None else copy.deepcopy(self.scheduler.state_dict()),
            "early_stopping": {"best_monitor": self.best_monitor, "best_epoch": self.best_epoch,
                               "patience_ref": self.patience_ref, "bad_epochs": self.bad_epochs,
                               "stopped_early": self.stopped_early},
            "best_state": self.best_state,
            "history": list(self.history),  # rows are never changed once appended
            "settings": self.settings.to_dict(),
            "architecture": self._arch,
            "data": {"n_train": len(self.train_data),
                     "n_validation": 0 if self.val_data is None else len(self.val_data)},
        }

    def _architecture(self) -> dict:
        arch = {"parameters": {k: list(v.shape) for k, v in self.model.named_parameters()}}
        if hasattr(self.model, "featureset"):
            arch["featureset_hash"] = self.model.featureset.content_hash()
        return arch

    @staticmethod
    def _write(state: dict, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        torch.save(state, tmp)
        tmp.replace(path)

    def save_checkpoint(self, path) -> None:
        """Write the current state (at an epoch boundary) to ``path`` atomically."""
        self._write(self._state(), Path(path))

    @staticmethod
    def read_checkpoint(path) -> dict:
        path = Path(path)
        return load_torch_file(path, "meltpot training checkpoint", TrainingError,
                               fmt=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION)

    def load_checkpoint(self, path) -> None:
        """Restore the state of ``path`` (written by this trainer's kind of run)."""
        state = self.read_checkpoint(path)
        if state["architecture"] != self._arch:
            raise TrainingError(f"{path}: the checkpoint is of another model (architecture or feature set differ)")
        mine = self.settings.to_dict()
        changed = sorted(k for k, v in state["settings"].items()
                         if k not in _RESUMABLE_CHANGES and mine.get(k) != v)
        if changed:
            log.warning("%s: settings changed since the checkpoint (%s): the resumed run is not the "
                        "continuation of the interrupted one", path,
                        ", ".join(f"{k}: {state['settings'][k]!r} → {mine.get(k)!r}" for k in changed))
        data = {"n_train": len(self.train_data), "n_validation": 0 if self.val_data is None else len(self.val_data)}
        if state["data"] != data:
            log.warning("%s: the data differ from the checkpoint's (%s now, %s then)", path, data, state["data"])
        if "failure" in state:
            f = state["failure"]
            log.warning("%s was written when the loss became non-finite (epoch %s, batch %s); resuming from "
                        "the state before that epoch", path, f["epoch"], f["batch"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        es = state["early_stopping"]
        self.best_monitor, self.best_epoch = float(es["best_monitor"]), int(es["best_epoch"])
        self.patience_ref = float(es["patience_ref"])
        self.bad_epochs, self.stopped_early = int(es["bad_epochs"]), bool(es["stopped_early"])
        self.best_state = state["best_state"]
        self.history = list(state["history"])
        self.epoch = int(state["epoch"])

    # ------------------------------------------------------------------ training
    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _fail(self, epoch: int, batch: int, n_batches: int, idx, loss, ckpt: Path | None, snapshot) -> None:
        where = f"epoch {epoch + 1}, batch {batch + 1} of {n_batches}"
        frames = _frame_names(self.train_data, idx.cpu().numpy())
        msg = f"non-finite training loss ({float(loss)}) at {where} (frames {frames}, lr {self.lr:.3g})"
        if ckpt is not None:
            snapshot["failure"] = {"epoch": epoch + 1, "batch": batch + 1, "loss": float(loss),
                                   "lr": self.lr, "frames": frames}
            snapshot["failed_model"] = _clone_state(self.model.state_dict())
            self._write(snapshot, ckpt)
            msg += f"; the state before epoch {epoch + 1} was saved to the checkpoint {ckpt}"
        else:
            msg += "; no checkpoint path was given, nothing saved"
        raise TrainingError(msg)

    def _train_epoch(self, epoch: int, ckpt: Path | None, snapshot) -> dict:
        s = self.settings
        n = len(self.train_data)
        gen = torch.Generator(device="cpu").manual_seed(derive_seed(s.seed, "shuffle", epoch))
        perm = torch.randperm(n, generator=gen).to(self.device)
        n_batches = math.ceil(n / s.batch_size)
        labels = _is_graph_data(self.train_data) or _store(self.train_data) is not None
        force_gen = torch.Generator(device="cpu").manual_seed(derive_seed(s.seed, "force-fraction", epoch))
        acc = _Errors()
        for b in range(n_batches):
            idx = perm[b * s.batch_size:(b + 1) * s.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            weights = s.weights(self.lr)
            terms = self._terms(self.train_data, idx, forces=labels and weights[1] > 0,
                                stress=labels and weights[2] > 0, create_graph=True, weights=weights,
                                generator=force_gen)
            loss = terms["loss"]
            if self.penalty is not None:
                pen = self.penalty(self.model)
                loss = loss + pen
                acc.penalty_sum += float(pen) * idx.numel()
            if not bool(torch.isfinite(loss)):
                self._fail(epoch, b, n_batches, idx, loss.detach(), ckpt, snapshot)
            loss.backward()
            lr = self.lr
            self.optimizer.step()
            if self.after_step is not None:
                self.after_step(self.model, lr)
            if s.schedule == "cosine_restarts":
                self.scheduler.step(epoch + (b + 1) / n_batches)
            acc.add(terms)
            acc.loss_sum += float(loss.detach()) * idx.numel()
        return {"acc": acc, "n_batches": n_batches}

    def fit(self, checkpoint_path=None, resume: bool = False) -> list[dict]:
        """Train until ``settings.n_epochs`` or early stopping; returns the history (one dict
        per epoch: ``epoch``, ``lr`` (after the epoch's schedule update), ``train_loss``,
        ``train_energy_rmse`` (running over the epoch's batches), ``val_energy_rmse``,
        ``val_energy_mae``, ``val_force_rmse`` (if any), ``val_loss``, ``monitor``,
        ``seconds``, ``configs_per_s``).

        ``checkpoint_path``: written every ``checkpoint_every`` epochs and at the end (the
        last epoch's state, before the best state is restored). ``resume``: continue from
        it if it exists. With ``restore_best`` the model ends with the best epoch's weights.
        """
        s = self.settings
        ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
        if resume and ckpt is not None and ckpt.exists():
            self.load_checkpoint(ckpt)
            log.info("%s: resuming after epoch %d", ckpt, self.epoch)
        elif resume and ckpt is not None:
            log.info("%s: no checkpoint yet; starting from scratch", ckpt)
        n_epochs = s.n_epochs
        n_train = len(self.train_data)
        from tqdm import tqdm

        bar = tqdm(total=n_epochs, initial=min(self.epoch, n_epochs), desc="train", unit="epoch",
                   disable=not s.progress, file=sys.stderr, mininterval=0.5, dynamic_ncols=True)
        saved_at = None
        from tqdm.contrib.logging import logging_redirect_tqdm

        try:
            with _deterministic(s.deterministic), (logging_redirect_tqdm() if s.progress else _nothing()):
                while self.epoch < n_epochs and not self.stopped_early:
                    e = self.epoch
                    snapshot = self._state() if ckpt is not None else None
                    t0 = time.perf_counter()
                    self.model.train()
                    res = self._train_epoch(e, ckpt, snapshot)
                    t_train = time.perf_counter() - t0
                    self.model.eval()
                    val = self.evaluate()
                    monitor = float(self.monitor(self.model, val))
                    if not math.isfinite(monitor):
                        if ckpt is not None:
                            snapshot["failure"] = {"epoch": e + 1, "batch": 0, "loss": monitor, "lr": self.lr,
                                                   "frames": "validation"}
                            self._write(snapshot, ckpt)
                        raise TrainingError(f"the monitor ({self.monitor_name}) is {monitor} after epoch {e + 1}"
                                            + (f"; the state before that epoch was saved to {ckpt}" if ckpt else ""))
                    if s.schedule == "plateau":
                        self.scheduler.step(monitor)
                    elif s.schedule == "step":
                        self.scheduler.step()
                    self.epoch = e + 1
                    if monitor < self.best_monitor:  # the best state: the lowest monitor
                        self.best_monitor, self.best_epoch = monitor, self.epoch
                        self.best_state = _clone_state(self.model.state_dict())
                    if monitor < self.patience_ref - s.min_delta:  # patience: improvements > min_delta
                        self.patience_ref, self.bad_epochs = monitor, 0
                    else:
                        self.bad_epochs += 1
                    if s.patience is not None and self.bad_epochs >= s.patience:
                        self.stopped_early = True
                    row = self._history_row(res, val, monitor, t_train, time.perf_counter() - t0, n_train)
                    self.history.append(row)
                    if ckpt is not None and (self.epoch % s.checkpoint_every == 0):
                        self.save_checkpoint(ckpt)
                        saved_at = self.epoch
                    bar.update(1)
                    bar.set_postfix({self.monitor_name: f"{monitor:.4g}", "best": f"{self.best_monitor:.4g}",
                                     "lr": f"{self.lr:.2e}"}, refresh=False)
                    if self.epoch % s.log_every == 0 or self.epoch == n_epochs or self.stopped_early:
                        self._log(row, n_epochs)
            if ckpt is not None and saved_at != self.epoch and self.epoch > 0:
                self.save_checkpoint(ckpt)
        finally:
            bar.close()
        if self.stopped_early:
            log.info("early stopping after epoch %d: no improvement of %s by more than %g for %d epochs "
                     "(lowest %.6g at epoch %d)", self.epoch, self.monitor_name, s.min_delta, s.patience,
                     self.best_monitor, self.best_epoch)
        if s.restore_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.history

    def _history_row(self, res: dict, val: dict, monitor: float, t_train: float, t_epoch: float,
                     n_train: int) -> dict:
        acc: _Errors = res["acc"]
        tm = acc.metrics(self.settings)
        row = {"epoch": self.epoch, "lr": self.lr, "train_loss": acc.loss_sum / max(acc.n_frames, 1),
               "train_energy_rmse": tm["energy_rmse"]}
        if "force_rmse" in tm:
            row["train_force_rmse"] = tm["force_rmse"]
        if self.penalty is not None:
            row["train_penalty"] = acc.penalty_sum / max(acc.n_frames, 1)
        row["val_energy_rmse"] = val["energy_rmse"]
        row["val_energy_mae"] = val["energy_mae"]
        for key in ("force_rmse", "stress_rmse"):
            if key in val:
                row[f"val_{key}"] = val[key]
        row["val_loss"] = val["loss"]
        row["monitor"] = monitor
        row["seconds"] = t_epoch
        row["configs_per_s"] = n_train / t_train if t_train > 0 else math.nan
        return row

    def _log(self, row: dict, n_epochs: int) -> None:
        extra = f", val force RMSE {row['val_force_rmse']:.4g}" if "val_force_rmse" in row else ""
        log.info("epoch %d/%d: train loss %.4g, val energy RMSE %.4g%s, monitor %s = %.6g (best %.6g at epoch %d), "
                 "lr %.3g, %.0f configs/s", row["epoch"], n_epochs, row["train_loss"], row["val_energy_rmse"], extra,
                 self.monitor_name, row["monitor"], self.best_monitor, self.best_epoch, row["lr"],
                 row["configs_per_s"])


def write_history(history: list[dict], path) -> None:
    """The learning curve (one row per epoch) as CSV."""
    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(history).to_csv(path, index=False)
