"""Training settings: the config's ``training`` block as a flat, validated dataclass.

The config nests related keys (``schedule``, ``early_stopping``, ``loss``); :class:`TrainSettings`
flattens them (``schedule.factor`` → ``plateau_factor``, ``loss.forces`` → ``force_weight`` …)
so that library users can write ``TrainSettings(max_epochs=50, schedule="cosine_restarts")``.
Defaults follow the thesis (§3.2.3, §5.3.1) and design.md §3: AdamW at lr 10⁻², weight decay
10⁻⁶ on internal weights only, batches of 256 configurations, loss on the energy per atom,
early stopping with patience 45.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from ..errors import ConfigError

SCHEDULES = ("constant", "plateau", "step", "cosine_restarts")
DTYPES = ("float64", "float32")
MONITORS = ("auto", "loss", "energy_rmse", "energy_mae", "force_rmse", "force_mae", "stress_rmse")

# config key path (within ``training``) → dataclass field
_CONFIG_KEYS = {
    ("max_epochs",): "max_epochs",
    ("batch_size",): "batch_size",
    ("lr",): "lr",
    ("weight_decay",): "weight_decay",
    ("schedule", "kind"): "schedule",
    ("schedule", "factor"): "plateau_factor",
    ("schedule", "patience"): "plateau_patience",
    ("schedule", "min_lr"): "min_lr",
    ("schedule", "step_size"): "step_size",
    ("schedule", "gamma"): "step_gamma",
    ("schedule", "t0"): "t0",
    ("schedule", "restarts"): "restarts",
    ("early_stopping", "patience"): "patience",
    ("early_stopping", "min_delta"): "min_delta",
    ("early_stopping", "restore_best"): "restore_best",
    ("loss", "energy"): "energy_weight",
    ("loss", "forces"): "force_weight",
    ("loss", "stress"): "stress_weight",
    ("loss", "energy_limit"): "energy_weight_limit",
    ("loss", "forces_limit"): "force_weight_limit",
    ("loss", "stress_limit"): "stress_weight_limit",
    ("loss", "force_fraction"): "force_fraction",
    ("loss", "element_weights"): "force_element_weights",
    ("monitor",): "monitor",
    ("seed",): "seed",
    ("device",): "device",
    ("dtype",): "dtype",
    ("checkpoint_every",): "checkpoint_every",
    ("log_every",): "log_every",
    ("eval_batch_size",): "eval_batch_size",
    ("deterministic",): "deterministic",
}


@dataclass
class TrainSettings:
    """Settings of one training run (see the ``training`` block of ``config/schema.yaml``).

    Optimiser: AdamW(``lr``, betas (0.9, 0.999), eps 10⁻⁸) with ``weight_decay`` on the
    internal weights (layers after the input layer) only.

    Schedules (``schedule``): ``constant``; ``plateau`` (ReduceLROnPlateau on the monitor:
    ×``plateau_factor`` after ``plateau_patience`` epochs without an improvement larger
    than ``min_delta``, not below ``min_lr``); ``step`` (×``step_gamma`` every ``step_size``
    epochs); ``cosine_restarts`` (CosineAnnealingWarmRestarts from ``lr`` down to ``min_lr``,
    first cycle ``t0`` epochs, each next cycle twice as long, stepped after every batch
    with fractional epochs; with ``restarts`` set the run lasts exactly ``restarts`` cycles,
    t0·(2^restarts − 1) epochs, instead of ``max_epochs``).

    Early stopping: stop after ``patience`` epochs (None: never) without the monitor
    improving by more than ``min_delta`` (absolute); ``restore_best`` loads the weights of
    the best epoch at the end.

    Loss: ``energy_weight``·MSE(energy per atom) + ``force_weight``·MSE(force components)
    + ``stress_weight``·MSE(stress components, Voigt). With a ``*_limit`` set, that weight
    moves from its start value to the limit as the learning rate falls (DeePMD's prefactors:
    w = limit + (start − limit)·lr/lr₀); validation losses and the monitor use the limits.
    ``force_fraction`` < 1: each step fits the forces of that random fraction of the atoms
    (n2p2's fraction of force updates; cheaper with cached derivatives).
    ``force_element_weights``: factor per element on its atoms' force errors (default 1).
    ``monitor``: the validation metric for the schedule, early stopping and the best state;
    ``auto`` = ``loss`` when forces or stress are fitted, else ``energy_rmse``.
    """

    max_epochs: int = 2000
    batch_size: int = 256
    lr: float = 1e-2
    weight_decay: float = 1e-6
    schedule: str = "plateau"
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    min_lr: float = 1e-4
    step_size: int = 100
    step_gamma: float = 0.5
    t0: int = 1
    restarts: int | None = None
    patience: int | None = 45
    min_delta: float = 0.0
    restore_best: bool = True
    energy_weight: float = 1.0
    force_weight: float = 0.0
    stress_weight: float = 0.0
    energy_weight_limit: float | None = None
    force_weight_limit: float | None = None
    stress_weight_limit: float | None = None
    force_fraction: float = 1.0
    force_element_weights: dict | None = None
    monitor: str = "auto"
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float64"
    checkpoint_every: int = 10
    log_every: int = 100
    eval_batch_size: int = 4096
    deterministic: bool = True
    progress: bool = True

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        def need(cond, msg):
            if not cond:
                raise ConfigError(f"training: {msg}")

        need(self.schedule in SCHEDULES, f"schedule {self.schedule!r} unknown; allowed: {', '.join(SCHEDULES)}")
        need(self.dtype in DTYPES, f"dtype {self.dtype!r} unknown; allowed: {', '.join(DTYPES)}")
        need(str(self.device).split(":")[0] in ("cpu", "cuda"), f"device {self.device!r} unknown; allowed: cpu, cuda")
        for name in ("max_epochs", "batch_size", "plateau_patience", "step_size", "t0", "checkpoint_every",
                     "log_every", "eval_batch_size"):
            need(int(getattr(self, name)) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.min_lr >= 0, f"min_lr must be >= 0, got {self.min_lr}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(0 < self.plateau_factor < 1, f"schedule factor must be in (0, 1), got {self.plateau_factor}")
        need(0 < self.step_gamma <= 1, f"schedule gamma must be in (0, 1], got {self.step_gamma}")
        need(self.restarts is None or int(self.restarts) >= 1, f"restarts must be >= 1 or null, got {self.restarts}")
        need(self.patience is None or int(self.patience) >= 1, f"early-stopping patience must be >= 1 or null, "
                                                                f"got {self.patience}")
        need(self.min_delta >= 0, f"min_delta must be >= 0, got {self.min_delta}")
        for name in ("energy_weight", "force_weight", "stress_weight"):
            need(getattr(self, name) >= 0, f"loss weight {name} must be >= 0, got {getattr(self, name)}")
        need(self.energy_weight + self.force_weight + self.stress_weight > 0, "all loss weights are zero")
        for name in ("energy_weight_limit", "force_weight_limit", "stress_weight_limit"):
            v = getattr(self, name)
            need(v is None or v >= 0, f"loss weight limit {name} must be >= 0 or null, got {v}")
        need(0 < self.force_fraction <= 1, f"loss force_fraction must be in (0, 1], got {self.force_fraction}")
        for el, w in (self.force_element_weights or {}).items():
            need(float(w) >= 0, f"loss element_weights[{el}] must be >= 0, got {w}")
        need(self.monitor in MONITORS, f"monitor {self.monitor!r} unknown; allowed: {', '.join(MONITORS)}")

    # ------------------------------------------------------------------ derived
    @property
    def n_epochs(self) -> int:
        """Epochs the run lasts at most: ``max_epochs``, or t0·(2^restarts − 1) for
        ``cosine_restarts`` with ``restarts`` set."""
        if self.schedule == "cosine_restarts" and self.restarts is not None:
            return int(self.t0) * (2 ** int(self.restarts) - 1)
        return int(self.max_epochs)

    @property
    def uses_forces(self) -> bool:
        """Force or stress terms in the loss (at the start or the limit of a ramp)."""
        return any((w or 0) > 0 for w in (self.force_weight, self.stress_weight, self.force_weight_limit,
                                           self.stress_weight_limit))

    def weights(self, lr: float | None = None) -> tuple[float, float, float]:
        """(energy, force, stress) weights at learning rate ``lr``; None: the limits (the final
        weights, used for validation losses and the monitor)."""
        out = []
        for start, limit in ((self.energy_weight, self.energy_weight_limit),
                             (self.force_weight, self.force_weight_limit),
                             (self.stress_weight, self.stress_weight_limit)):
            if limit is None:
                out.append(float(start))
            elif lr is None:
                out.append(float(limit))
            else:
                out.append(float(limit + (start - limit) * lr / self.lr))
        return out[0], out[1], out[2]

    def energy_only(self) -> "TrainSettings":
        """The same settings without force and stress terms (energy weight kept, 1 if it was 0)."""
        return self.replace(force_weight=0.0, stress_weight=0.0, force_weight_limit=None, stress_weight_limit=None,
                            energy_weight=self.energy_weight or 1.0,
                            energy_weight_limit=None if not self.energy_weight else self.energy_weight_limit)

    @property
    def monitor_metric(self) -> str:
        if self.monitor != "auto":
            return self.monitor
        return "loss" if self.uses_forces else "energy_rmse"

    @property
    def torch_dtype(self):
        import torch

        return torch.float64 if self.dtype == "float64" else torch.float32

    # ------------------------------------------------------------------ conversion
    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> "TrainSettings":
        d = self.to_dict()
        unknown = sorted(set(changes) - set(d))
        if unknown:
            raise ConfigError(f"training: unknown setting(s) {', '.join(unknown)}")
        d.update(changes)
        return TrainSettings(**d)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainSettings":
        """From the flat field names (as :meth:`to_dict` writes them)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"training: unknown setting(s) {', '.join(unknown)}")
        return cls(**dict(data))

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None, **overrides) -> "TrainSettings":
        """From the config's nested ``training`` block (defaults filled or not); ``overrides``
        are flat field names (e.g. ``max_epochs=10``)."""
        block = dict(block or {})
        kw: dict[str, Any] = {}
        for path, name in _CONFIG_KEYS.items():
            node: Any = block
            for part in path:
                if not isinstance(node, Mapping) or part not in node:
                    break
                node = node[part]
            else:
                kw[name] = node
        known_top = {p[0] for p in _CONFIG_KEYS}
        unknown = sorted(set(block) - known_top)
        if unknown:
            raise ConfigError(f"training: unknown key(s) {', '.join(unknown)}")
        if kw.get("seed") is None:
            kw.pop("seed", None)
        kw.update(overrides)
        return cls(**kw)
