"""The λ path: for each λ, Group Lasso → Adaptive Group Lasso → unpenalised retraining.

For each λ (a user list, or a geometric sequence from ``lambda_start`` multiplied by
``lambda_factor`` until no feature survives — LassoNet-style):

1. GL training with proximal steps, early-stopped on the penalised validation objective;
2. adaptive strengths 1/‖ŵ‖^γ from the GL solution (zeroed groups masked), AGL training from
   the GL weights, same early stopping; features with non-zero group norm are kept;
3. the model is shrunk to the kept features and retrained without penalty (the penalty
   biases the kept weights); validation RMSE is recorded before and after retraining.

Refinement (``refine_steps`` > 0): once the path has reached an empty set (or its λ list is
used up), the largest drop of the kept count between two neighbouring λ (more than
``refine_drop`` of the full set's features) gets one more λ at their geometric mean, warm-started
from the lower one's AGL solution; repeated ``refine_steps`` times. With forces in the loss the
kept count tends to fall from all to a few features within one factor of λ: without refinement
the choice would see only those two sizes.

Warm starts: λ_{i+1} starts from the AGL solution at λ_i with its masks (a monotone path);
``warm_start=False`` restarts every λ from the dense model (``cold_init="dense"``) or from
fresh random weights (``cold_init="random"``, the thesis's cold initialisation). With
``out_dir`` every λ's models and metrics are written, and a rerun resumes after the last
completed λ — only if that λ was computed from the same dense model, data, settings and
preceding λ (a fingerprint chain in each ``result.json``); otherwise it is recomputed.
``stop_after`` ends the path after that step (one λ per workflow job).

Several elements: one λ shared by all element networks (strength λ/M_k), or, with
:func:`per_element_search`, one λ per element found by a line search per element with the
other elements' λ at 0 (thesis §6.5; linear in the number of elements, assumes the
elements' λ are independent), followed by one GL → AGL → retraining run at the combined λ.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..manifest import write_json
from ..model.modelfile import load_model, save_model
from ..train.settings import TrainSettings
from ..train.trainer import Trainer
from .group_lasso import GroupPenalty, group_norms, selected, shrink_model

log = logging.getLogger("meltpot.select")


@dataclass
class SelectionSettings:
    """Settings of the λ path (epochs are caps; early stopping usually ends sooner)."""

    lambdas: list[float] | None = None
    lambda_start: float | None = None       # None: start_ratio × M·√H (see default_lambda_start)
    start_ratio: float = 1e-3
    lambda_factor: float = 2.0
    max_lambdas: int = 30
    gamma: float = 1.0
    gl_epochs: int = 1000                   # thesis caps: 1000 (GL), 10 000 (AGL)
    agl_epochs: int = 10000
    retrain_epochs: int | None = None       # None: the training settings' max_epochs
    warm_start: bool = True
    cold_init: str = "dense"                # warm_start False: restart from "dense" or "random" weights
    seed: int = 0                           # of the random restarts
    tol: float = 0.0                        # group norms ≤ tol count as removed
    prox_metric: str = "euclidean"          # "euclidean" (the paper's) or "adam" (see GroupPenalty)
    refine_steps: int = 0                   # extra λ inside the largest drops of the kept count (module doc)
    refine_drop: float = 0.25               # … drops of more than this fraction of the full set's features

    def __post_init__(self):
        if self.cold_init not in ("dense", "random"):
            raise ValueError(f"cold_init must be 'dense' or 'random', got {self.cold_init!r}")
        if self.refine_steps < 0 or not 0 < self.refine_drop < 1:
            raise ValueError(f"refine_steps must be >= 0 and 0 < refine_drop < 1, got {self.refine_steps}, "
                             f"{self.refine_drop}")


def next_lambda(steps: list[dict], base: list[float], sel: SelectionSettings, n_full: int):
    """The next step of the path after ``steps`` (each ``{"lambda", "n_total", "empty", "refined"}``
    in computation order): ``(λ, start, refined)`` with ``start`` the index of the step to
    warm-start from (None: the dense model), or None when the path is complete. The base list first (until a step keeps no feature for
    some element), then up to ``sel.refine_steps`` refinements (see the module docstring)."""
    n_base = sum(1 for s in steps if not s["refined"])
    if n_base < len(base) and not any(s["empty"] for s in steps) and len(steps) < sel.max_lambdas:
        return base[n_base], (len(steps) - 1 if steps else None), False
    if sum(1 for s in steps if s["refined"]) >= sel.refine_steps or len(steps) >= sel.max_lambdas + sel.refine_steps:
        return None
    order = sorted(range(len(steps)), key=lambda k: steps[k]["lambda"])
    best = None
    for a, b in zip(order[:-1], order[1:]):
        drop = steps[a]["n_total"] - steps[b]["n_total"]
        if drop > sel.refine_drop * n_full and steps[b]["lambda"] / steps[a]["lambda"] > 1.05 \
                and (best is None or drop > best[0]):
            best = (drop, a, b)
    if best is None:
        return None
    _, a, b = best
    return float(np.sqrt(steps[a]["lambda"] * steps[b]["lambda"])), a, True


def _evaluate(model, data, settings: TrainSettings) -> dict:
    return Trainer(model, settings, data, data).evaluate(data)


def default_lambda_start(model, ratio: float) -> float:
    """``ratio`` × M·√H, the λ scale at which groups are removed (M features, H first-layer
    neurons; largest over elements).

    With proximal steps after Adam(W), Adam's update moves each weight by about lr per step
    whatever the loss scale, so a group of H weights is held up by about lr·√H·ρ (ρ ≤ 1: how
    consistently the loss pulls on it) against the shrinkage lr·λ/M. Groups therefore die for
    λ ≈ M√H·ρ: the path from ratio·M√H up to about M√H spans the selection, independently of
    the units of the energies.
    """
    return ratio * max(w.shape[1] * w.shape[0] ** 0.5 for w in (net.input_layer.weight for net in model.nets))


def lambda_scale(model, train, settings: TrainSettings) -> float:
    """λ scale of the ``"adam"`` prox metric: max over elements k and features j of
    M_k·‖∂L/∂w_kj‖ with column w_kj set to zero (the other weights as in ``model``; L the
    energy loss on ``train``). By the group-lasso optimality condition a feature that is off
    stays off while M_k·‖∂L/∂w_kj‖ < λ, so above this λ no feature would be switched on."""
    worst = 0.0
    for k, net in enumerate(model.nets):
        n_feat = net.input_layer.weight.shape[1]
        for j in range(n_feat):
            m = copy.deepcopy(model)
            w = m.nets[k].input_layer.weight
            with torch.no_grad():
                w[:, j] = 0.0
            de = (train.predict(m) - train.energy) / train.n_atoms.to(train.energy.dtype)
            loss = settings.energy_weight * (de * de).mean()
            grad = torch.autograd.grad(loss, w)[0][:, j]
            worst = max(worst, n_feat * float(grad.norm()))
    return worst


def run_lambda(model, lam, train, val, train_settings: TrainSettings, sel: SelectionSettings,
               masks=None) -> dict:
    """GL → AGL → retraining at one λ (a number, or ``{element: λ}``; see module docstring).
    Returns models and metrics."""
    gl = copy.deepcopy(model)
    pen = GroupPenalty.group_lasso(gl, lam, masks=masks, metric=sel.prox_metric)
    pen.prox(gl, 0.0)  # apply the masks before training
    trainer = Trainer(gl, train_settings.replace(max_epochs=sel.gl_epochs), train, val,
                      monitor=pen.monitor, after_step=pen)
    pen.bind(trainer.optimizer)
    trainer.fit()
    ref = group_norms(gl)
    agl = copy.deepcopy(gl)
    apen = GroupPenalty.adaptive(agl, lam, [torch.where(r > sel.tol, r, torch.zeros_like(r)) for r in ref],
                                 gamma=sel.gamma, masks=pen.masks, metric=sel.prox_metric)
    apen.prox(agl, 0.0)
    trainer = Trainer(agl, train_settings.replace(max_epochs=sel.agl_epochs), train, val,
                      monitor=apen.monitor, after_step=apen)
    apen.bind(trainer.optimizer)
    trainer.fit()
    keep = selected(agl, apen.masks, tol=sel.tol)
    penalised = _evaluate(agl, val, train_settings)
    result = {"lambda": lam, "keep": keep, "n_kept": {el: len(v) for el, v in keep.items()},
              "gl_norms": {el: n.tolist() for el, n in zip(gl.elements, ref)},
              "agl_norms": {el: n.tolist() for el, n in zip(agl.elements, group_norms(agl))},
              "val_rmse_penalised": float(penalised["energy_rmse"]), "gl_model": gl, "agl_model": agl,
              "masks": [m & (n > sel.tol) for m, n in zip(apen.masks, group_norms(agl))]}
    if all(keep.values()):
        small = shrink_model(agl, keep)
        tr, va = train.select_features(keep), val.select_features(keep)
        epochs = sel.retrain_epochs or train_settings.max_epochs
        Trainer(small, train_settings.replace(max_epochs=epochs), tr, va).fit()
        result["retrained_model"] = small
        metrics = _evaluate(small, va, train_settings)
        result["val_rmse_retrained"] = float(metrics["energy_rmse"])
        result["val_force_rmse_retrained"] = float(metrics.get("force_rmse", float("nan")))
    else:
        result["retrained_model"] = None
        result["val_rmse_retrained"] = float("nan")
        result["val_force_rmse_retrained"] = float("nan")
    return result


#: numbers of a λ step's result.json that are NaN when undefined (written as null: strict JSON)
RESULT_NUMBERS = ("val_rmse_penalised", "val_rmse_retrained", "val_force_rmse_retrained", "dense_val_rmse")


def read_result(path) -> dict:
    """A λ step's ``result.json`` with its undefined numbers (null) back as NaN."""
    summary = json.loads(Path(path).read_text())
    for key in RESULT_NUMBERS:
        if key in summary and summary[key] is None:
            summary[key] = float("nan")
    return summary


def _summary(res: dict) -> dict:
    return {k: v for k, v in res.items() if not k.endswith("_model") and k != "masks"}


def _start_model(model, sel: SelectionSettings, step: int):
    if sel.cold_init == "dense":
        return model
    from ..seeds import derive_seed
    from ..train.trainer import init_weights

    fresh = copy.deepcopy(model)
    init_weights(fresh, derive_seed(sel.seed, f"cold-{step}"))
    return fresh


def _fingerprint(model, train, val, train_settings: TrainSettings, sel: SelectionSettings, element) -> str:
    """What a λ step's result depends on besides λ and the previous step: the dense model's
    weights, the data sizes and targets, and every setting (sha256 hex)."""
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    for data in (train, val):
        h.update(str(len(data)).encode())
        for attr in ("frame_ids", "energy"):       # which frames, and their targets
            value = getattr(data, attr, None)
            if value is not None:
                value = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
                h.update(np.ascontiguousarray(value, dtype=float).tobytes())
        store = getattr(data, "forces_store", None)
        if store is not None:                      # the frames with forces, and their labels
            h.update(np.ascontiguousarray(store.frame_ids, dtype=float).tobytes())
            h.update(store.forces.detach().cpu().numpy().tobytes())
    h.update(json.dumps([asdict(sel), asdict(train_settings), element], sort_keys=True, default=str).encode())
    return h.hexdigest()


def lambda_path(model, train, val, train_settings: TrainSettings, sel: SelectionSettings,
                out_dir: str | Path | None = None, units: str = "metal", element: str | None = None,
                stop_after: int | None = None) -> pd.DataFrame:
    """Run the λ path from a trained dense ``model``; one row per λ (see module docstring).

    ``element``: penalise only that element's network (the others' λ is 0), for the
    per-element line search; the rows then carry an ``element`` column. ``stop_after``: end
    after that step (path.csv and settings.json are then not written)."""
    if element is not None and element not in model.elements:
        raise ValueError(f"element {element!r} is not one of the model's {model.elements}")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    dense_metrics = _evaluate(model, val, train_settings)
    dense_val = float(dense_metrics["energy_rmse"])
    dense_force = float(dense_metrics.get("force_rmse", float("nan")))
    if sel.lambdas:
        base = list(sel.lambdas)
    else:
        if sel.lambda_start:
            lam0 = sel.lambda_start
        elif sel.prox_metric == "adam":
            lam0 = sel.start_ratio * lambda_scale(model, train, train_settings)
        else:
            lam0 = default_lambda_start(model, sel.start_ratio)
        base = [lam0 * sel.lambda_factor ** i for i in range(sel.max_lambdas)]
    n_full = sum(model.n_features)
    rows, steps, agls, chains = [], [], [], []
    chain0 = _fingerprint(model, train, val, train_settings, sel, element)
    nxt = next_lambda(steps, base, sel, n_full)
    while nxt is not None:
        i, (lam, start_step, refined) = len(steps), nxt
        previous = chains[-1] if chains else chain0
        chain = hashlib.sha256(f"{previous}|{i}|{lam!r}|{start_step}".encode()).hexdigest()
        step_dir = out / f"lambda_{i:02d}" if out is not None else None
        done = step_dir is not None and (step_dir / "result.json").exists()
        if done and json.loads((step_dir / "result.json").read_text()).get("fingerprint") != chain:
            log.warning("λ %d: %s was computed from another model, data, settings or earlier λ; recomputing",
                        i, step_dir)
            done = False
        if done:  # resume: reuse the finished λ
            summary = read_result(step_dir / "result.json")
            agl = load_model(step_dir / "agl.pt")
            masks = [torch.tensor(np.asarray(m, dtype=bool)) for m in summary["masks"]]
            log.info("λ %d = %.4g: reused %s", i, lam, step_dir)
        else:
            if sel.warm_start and start_step is not None:
                start, start_masks = agls[start_step]
            else:
                start, start_masks = (model if sel.warm_start else _start_model(model, sel, i)), None
            lam_arg = lam if element is None else {el: (lam if el == element else 0.0) for el in model.elements}
            res = run_lambda(start, lam_arg, train, val, train_settings, sel, masks=start_masks)
            agl, masks = res["agl_model"], res["masks"]
            summary = _summary(res)
            summary["masks"] = [m.tolist() for m in masks]
            summary["fingerprint"] = chain
        n_total = sum(summary["n_kept"].values())
        steps.append({"lambda": lam, "n_total": n_total, "empty": any(n == 0 for n in summary["n_kept"].values()),
                      "refined": bool(refined)})
        agls.append((agl, masks))
        chains.append(chain)
        nxt = next_lambda(steps, base, sel, n_full)
        summary.update({"start_step": -1 if start_step is None else int(start_step), "refined": bool(refined),
                        "end": nxt is None})
        if step_dir is not None and not done:
            step_dir.mkdir(parents=True, exist_ok=True)
            save_model(res["gl_model"], step_dir / "gl.pt", units=units)
            save_model(agl, step_dir / "agl.pt", units=units)
            if res["retrained_model"] is not None:
                save_model(res["retrained_model"], step_dir / "retrained.pt", units=units)
            write_json(step_dir / "result.json", summary, indent=1)
        if not done:
            log.info("λ %d = %.4g%s: kept %s, val RMSE penalised %.4g, retrained %.4g", i, lam,
                     f" (refining, from step {start_step})" if refined else "", summary["n_kept"],
                     summary["val_rmse_penalised"], summary["val_rmse_retrained"])
        row = {**({"element": element} if element is not None else {}),
               "step": i, "lambda": lam, **{f"n_{el}": n for el, n in summary["n_kept"].items()},
               "n_total": n_total, "n_full": n_full, "val_rmse_dense": dense_val,
               "val_rmse_penalised": summary["val_rmse_penalised"],
               "val_rmse_retrained": summary["val_rmse_retrained"],
               "val_force_rmse_dense": dense_force,
               "val_force_rmse_retrained": summary.get("val_force_rmse_retrained", float("nan")),
               "start_step": summary["start_step"], "refined": bool(refined), "end": nxt is None,
               "kept": json.dumps(summary["keep"])}
        for el, norms in summary["agl_norms"].items():
            row.update({f"norm_{el}_{j}": v for j, v in enumerate(norms)})
        rows.append(row)
        if stop_after is not None and i >= stop_after:
            return pd.DataFrame(rows)
    # in order of λ (the refinement steps sit between the steps they refine; `step` keeps the order
    # of computation)
    table = pd.DataFrame(rows).sort_values("lambda", kind="stable").reset_index(drop=True)
    if out is not None and stop_after is None:
        table.to_csv(out / "path.csv", index=False)
        write_json(out / "settings.json", asdict(sel), indent=1)
    return table


def choose(table: pd.DataFrame, tolerance: float = 0.05, lam: float | None = None,
           n_features: int | None = None, metric: str = "val_rmse") -> pd.Series:
    """The chosen λ: by default the smallest feature set whose retrained validation RMSE is
    within ``tolerance`` (relative) of the retrained full-size set's (the dense model's when the
    path has no retrained full-size set); or the row of a given λ, or the largest set with at
    most ``n_features``.
    ``metric``: ``val_rmse`` (energy per atom) or ``val_force_rmse`` (force components); the
    returned row is the table's own (all its columns as they are)."""
    if metric != "val_rmse":
        scored = table.copy()
        scored["val_rmse_retrained"], scored["val_rmse_dense"] = table[f"{metric}_retrained"], table[f"{metric}_dense"]
        return table.loc[choose(scored, tolerance, lam, n_features).name]
    ok = table[np.isfinite(table["val_rmse_retrained"])]
    if lam is not None:
        return table.iloc[int(np.argmin(np.abs(np.log(table["lambda"] / lam))))]
    if n_features is not None:
        cand = ok[ok["n_total"] <= n_features]
        return cand.sort_values(["n_total", "val_rmse_retrained"], ascending=[False, True]).iloc[0]
    # reference: the full-size set after the same retraining as every candidate (like for like:
    # the dense model had another training budget, longer or shorter than the retraining, which
    # would favour the full or the small sets); the dense model only when no λ kept every feature
    n_full = int(table["n_full"].iloc[0]) if "n_full" in table else int(ok["n_total"].max())
    full = ok[ok["n_total"] == n_full]
    reference = float(full["val_rmse_retrained"].min()) if len(full) else float(table["val_rmse_dense"].iloc[0])
    within = ok[ok["val_rmse_retrained"] <= (1 + tolerance) * reference]
    if len(within):
        return within.sort_values(["n_total", "val_rmse_retrained"]).iloc[0]
    # nothing within the tolerance (e.g. short retraining): the most accurate set, then the smaller
    log.warning("no feature set is within %.0f%% of the reference validation RMSE; choosing the most accurate",
                100 * tolerance)
    return ok.sort_values(["val_rmse_retrained", "n_total"]).iloc[0]


def choice_margins(table: pd.DataFrame, metric: str = "val_rmse") -> list[dict]:
    """Every feature count of the path with its best retrained validation error relative to the
    tolerance rule's reference (see :func:`choose`), smallest count first: how far each size is
    from the tolerance, i.e. how easily the choice would flip (round-off, a seed, a machine)."""
    col, dense = f"{metric}_retrained", f"{metric}_dense"
    ok = table[np.isfinite(table[col])]
    if not len(ok):
        return []
    n_full = int(table["n_full"].iloc[0]) if "n_full" in table else int(ok["n_total"].max())
    full = ok[ok["n_total"] == n_full]
    reference = float(full[col].min()) if len(full) else float(table[dense].iloc[0])
    best = ok.sort_values(col).groupby("n_total", sort=True).head(1).sort_values("n_total")
    return [{"n_features": int(r["n_total"]), "lambda": float(r["lambda"]), "error": float(r[col]),
             "ratio": float(r[col]) / reference} for _, r in best.iterrows()]


def per_element_search(model, train, val, train_settings: TrainSettings, sel: SelectionSettings,
                       out_dir: str | Path | None = None, units: str = "metal", tolerance: float = 0.05,
                       n_features: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """One λ per element (thesis §6.5): a λ path per element with the other elements' λ at 0
    (in ``out_dir/element_<el>``), λ_el chosen on it by :func:`choose` (``tolerance``, or at
    most ``n_features[el]`` features), then GL → AGL → retraining from the dense model at the
    combined ``{el: λ_el}`` (in ``out_dir/combined``; reused when complete).

    Returns the element paths as one table (an ``element`` column) and the combined result
    (summary dict with ``lambda`` = ``{el: λ_el}``, ``keep``, ``val_rmse_retrained``, …)."""
    out = Path(out_dir) if out_dir is not None else None
    tables, lams = [], {}
    for el in model.elements:
        t = lambda_path(model, train, val, train_settings, sel, out_dir=None if out is None else out / f"element_{el}",
                        units=units, element=el)
        row = choose(t, tolerance=tolerance, n_features=None if n_features is None else
                     int(n_features[el]) + sum(int(t[f"n_{e}"].iloc[0]) for e in model.elements if e != el))
        lams[el] = float(row["lambda"])
        log.info("element %s: λ = %.4g keeps %d of its features", el, lams[el], int(row[f"n_{el}"]))
        tables.append(t)
    table = pd.concat(tables, ignore_index=True)
    step_dir = out / "combined" if out is not None else None
    if step_dir is not None and (step_dir / "result.json").exists() and \
            json.loads((step_dir / "result.json").read_text())["lambda"] == lams:
        summary = read_result(step_dir / "result.json")
        log.info("combined λ %s: reused %s", lams, step_dir)
    else:
        res = run_lambda(model, lams, train, val, train_settings, sel)
        summary = _summary(res)
        summary["masks"] = [m.tolist() for m in res["masks"]]
        summary["dense_val_rmse"] = float(_evaluate(model, val, train_settings)["energy_rmse"])
        if step_dir is not None:
            step_dir.mkdir(parents=True, exist_ok=True)
            save_model(res["gl_model"], step_dir / "gl.pt", units=units)
            save_model(res["agl_model"], step_dir / "agl.pt", units=units)
            if res["retrained_model"] is not None:
                save_model(res["retrained_model"], step_dir / "retrained.pt", units=units)
            write_json(step_dir / "result.json", summary, indent=1)
    log.info("combined λ %s: kept %s, validation RMSE retrained %.4g", lams, summary["n_kept"],
             summary["val_rmse_retrained"])
    if out is not None:
        table.to_csv(out / "path.csv", index=False)
        write_json(out / "settings.json", {**asdict(sel), "lambda_per_element": True}, indent=1)
    return table, summary
