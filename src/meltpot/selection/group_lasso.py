"""Group-lasso feature selection for HDNNPs (thesis §2.4.2, §5.2.3; Dinh & Ho 2020).

Groups: for each element network, the column of first-layer weights that belongs to one
input feature, w_kj ∈ R^H (k: element, j: feature). Objectives (per element, M_k features):

* Group Lasso (GL):            L(W) + (λ / M_k) Σ_j ‖w_kj‖
* Adaptive Group Lasso (AGL):  L(W) + (λ / M_k) Σ_j ‖w_kj‖ / ‖ŵ_kj‖^γ,  ŵ: the GL solution at λ

The non-smooth penalty is handled by a proximal step after every optimiser step — group
soft-thresholding ``w_j ← w_j · max(0, 1 − lr·s_j / ‖w_j‖)`` with strength s_j (the exact
proximal operator of lr·s_j‖·‖; exact proximal gradient for SGD, the paper's heuristic after
AdamW). Removed features are tracked by explicit boolean masks (a feature zeroed by GL has
an infinite adaptive weight; we mask it rather than divide by zero) and their columns are
held at exact zeros. :func:`shrink_model` then drops them from the input layer, so the
retrained model (and LAMMPS) computes only the kept features.
"""

from __future__ import annotations

import copy

import torch

from ..model.hdnnp import HDNNP


def input_weights(model: HDNNP) -> list[torch.Tensor]:
    """First-layer weight matrices (H, F_k) per element (the parameters themselves)."""
    return [net.input_layer.weight for net in model.nets]


def group_norms(model: HDNNP) -> list[torch.Tensor]:
    """‖w_kj‖ per element k: tensors (F_k,) of the Euclidean norms of the input columns."""
    return [w.detach().norm(dim=0) for w in input_weights(model)]


def element_lambdas(model: HDNNP, lam) -> list[float]:
    """λ per element network: one λ for all (a number), or ``{element: λ}`` naming each
    element (per-element strengths, thesis §6.5; 0 leaves an element unpenalised)."""
    if isinstance(lam, dict):
        unknown = sorted(set(lam) - set(model.elements))
        missing = [el for el in model.elements if el not in lam]
        if unknown or missing:
            raise ValueError(f"per-element λ must name exactly the elements {model.elements}"
                             + (f"; unknown: {unknown}" if unknown else "") + (f"; missing: {missing}" if missing else ""))
        out = [float(lam[el]) for el in model.elements]
    else:
        out = [float(lam)] * len(model.elements)
    if any(not (x >= 0) for x in out):
        raise ValueError(f"λ must be >= 0, got {lam}")
    return out


def prox_group(weight: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Group soft-thresholding of the columns of ``weight`` (H, F) by ``threshold`` (F,):
    argmin_v ½‖v − w_j‖² + t_j‖v‖ = w_j · max(0, 1 − t_j/‖w_j‖)."""
    norms = weight.norm(dim=0)
    scale = torch.clamp(1.0 - threshold / torch.clamp(norms, min=torch.finfo(weight.dtype).tiny), min=0.0)
    return weight * scale


class GroupPenalty:
    """Per-group strengths s_kj and masks; the penalty value and the proximal step.

    ``strengths``: per element, tensors (F_k,) of s_kj = λ/M_k (GL) or λ/(M_k ‖ŵ_kj‖^γ) (AGL).
    ``masks``: per element, boolean tensors (F_k,), False = removed (held at zero).

    ``metric`` of the proximal step after an Adam(W) step:

    * ``"euclidean"`` (the paper's code): threshold lr·s_j. Adam's step moves every weight by
      about lr whatever its gradient's size, so a group survives when its gradient is merely
      *consistent* (λ scale ≈ M√H, independent of the loss units), and an input that only
      helps to fit noise is not at a clear disadvantage.
    * ``"adam"``: the prox in Adam's own metric, threshold lr·s_j·mean_i 1/(√v̂_ij + ε) over the
      group (v̂: Adam's bias-corrected second moments; :meth:`bind` the optimiser). Gradient
      step and shrinkage are then scaled alike, so the fixed points satisfy the group-lasso
      optimality condition ‖∇_j L‖ ≤ s_j for removed groups (in the diagonal approximation):
      a group survives by the *size* of the loss decrease it brings, as with plain proximal
      gradient descent. λ is then in loss-gradient units (see ``lambda_scale`` in path.py).
    """

    def __init__(self, strengths: list[torch.Tensor], masks: list[torch.Tensor], metric: str = "euclidean"):
        if metric not in ("euclidean", "adam"):
            raise ValueError(f"prox metric must be 'euclidean' or 'adam', got {metric!r}")
        self.strengths = [s.detach().clone() for s in strengths]
        self.masks = [m.detach().clone().bool() for m in masks]
        self.metric = metric
        self.optimizer = None

    def bind(self, optimizer) -> "GroupPenalty":
        """The optimiser whose second moments set the ``"adam"`` metric."""
        self.optimizer = optimizer
        return self

    def _scale(self, w: torch.Tensor) -> torch.Tensor | float:
        """Per-group factor of the threshold: 1, or mean_i 1/(√v̂_ij + ε) in the Adam metric."""
        if self.metric == "euclidean" or self.optimizer is None:
            return 1.0
        state = self.optimizer.state.get(w)
        if not state or "exp_avg_sq" not in state:
            return 1.0
        group = next(g for g in self.optimizer.param_groups if any(p is w for p in g["params"]))
        beta2, eps = group["betas"][1], group["eps"]
        step = float(state["step"])
        v_hat = state["exp_avg_sq"] / (1.0 - beta2 ** step)
        return (1.0 / (v_hat.sqrt() + eps)).mean(dim=0)

    @classmethod
    def group_lasso(cls, model: HDNNP, lam, masks=None, metric: str = "euclidean") -> "GroupPenalty":
        """GL strengths λ_k/M_k for every group (``lam``: see :func:`element_lambdas`)."""
        ws = input_weights(model)
        lams = element_lambdas(model, lam)
        masks = masks if masks is not None else [torch.ones(w.shape[1], dtype=torch.bool) for w in ws]
        return cls([torch.full((w.shape[1],), lk / w.shape[1], dtype=w.dtype) for w, lk in zip(ws, lams)], masks,
                   metric=metric)

    @classmethod
    def adaptive(cls, model: HDNNP, lam, reference_norms: list[torch.Tensor], gamma: float = 1.0,
                 masks=None, metric: str = "euclidean") -> "GroupPenalty":
        """AGL strengths λ_k/(M_k ‖ŵ_kj‖^γ); groups with ‖ŵ_kj‖ = 0 (or already masked) are masked."""
        ws = input_weights(model)
        lams = element_lambdas(model, lam)
        strengths, new_masks = [], []
        for k, (w, ref, lam) in enumerate(zip(ws, reference_norms, lams)):
            alive = ref > 0
            if masks is not None:
                alive = alive & masks[k].to(alive.device)
            safe = torch.where(alive, ref, torch.ones_like(ref))
            strengths.append(torch.where(alive, lam / w.shape[1] / safe ** gamma, torch.zeros_like(ref)))
            new_masks.append(alive)
        return cls(strengths, new_masks, metric=metric)

    def value(self, model: HDNNP) -> torch.Tensor:
        """Σ_k Σ_j s_kj ‖w_kj‖ (masked groups are zero)."""
        total = 0.0
        for w, s, m in zip(input_weights(model), self.strengths, self.masks):
            norms = w.norm(dim=0)
            total = total + (s.to(w) * norms * m.to(w)).sum()
        return torch.as_tensor(total)

    @torch.no_grad()
    def prox(self, model: HDNNP, lr: float) -> None:
        """The proximal step after an optimiser step with learning rate ``lr`` (in place)."""
        for w, s, m in zip(input_weights(model), self.strengths, self.masks):
            w.copy_(prox_group(w, lr * s.to(w) * self._scale(w)) * m.to(w))

    def __call__(self, model: HDNNP, lr: float) -> None:  # the Trainer's after_step hook
        self.prox(model, lr)

    def monitor(self, model: HDNNP, val_metrics: dict) -> float:
        """Penalised validation objective: validation loss + penalty (early stopping)."""
        with torch.no_grad():
            return float(val_metrics["loss"]) + float(self.value(model))


def selected(model: HDNNP, masks=None, tol: float = 0.0) -> dict[str, list[int]]:
    """Indices of the features whose group norm is above ``tol`` (and not masked), per element."""
    out = {}
    for k, (el, norms) in enumerate(zip(model.elements, group_norms(model))):
        alive = norms > tol
        if masks is not None:
            alive = alive & masks[k].to(alive.device)
        out[el] = torch.nonzero(alive).squeeze(-1).tolist()
    return out


def shrink_model(model: HDNNP, keep: dict[str, list[int]]) -> HDNNP:
    """A copy of ``model`` whose input layers take only the features ``keep[el]`` (in order).

    Feature set, scaling and first-layer weights are sliced; every other weight is copied.
    Predictions are unchanged when the dropped columns are zero.
    """
    fs = model.featureset.subset(keep, name=f"{model.featureset.name}-{sum(map(len, keep.values()))}f")
    for el in model.elements:
        if not keep[el]:
            raise ValueError(f"cannot shrink: no feature left for element {el}")
    small = HDNNP(fs, hidden=model.hidden, activation=model.activation)
    small.units = getattr(model, "units", "metal")
    small.metadata = copy.deepcopy(getattr(model, "metadata", {}))
    with torch.no_grad():
        small.reference_energy.copy_(model.reference_energy)
        for k, el in enumerate(model.elements):
            idx = torch.as_tensor(sorted(keep[el]), dtype=torch.long)
            f = len(idx)
            small.feature_mean[k, :f] = model.feature_mean[k, idx]
            small.feature_std[k, :f] = model.feature_std[k, idx]
            src, dst = model.nets[k], small.nets[k]
            dst.layers[0].weight.copy_(src.layers[0].weight[:, idx])
            dst.layers[0].bias.copy_(src.layers[0].bias)
            for a, b in zip(src.layers[1:], dst.layers[1:]):
                b.weight.copy_(a.weight)
                b.bias.copy_(a.bias)
    return small
