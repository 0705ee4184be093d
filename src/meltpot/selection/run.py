"""The selection stage of a run config (``meltpot select path|filter|compare``): the datasets
and training settings the selection trains with, the λ path with the choice of a feature set
(``chosen.json``, ``selected_featureset.yaml``, ``path.png``), the filter baselines and the
multi-seed comparison with their output files."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from ..errors import MeltpotError
from ..units import ENERGY_SCALE, unit_labels

log = logging.getLogger("meltpot")


def split_datasets(cache, index_path, splits_path, names, noise: int = 0, noise_seed: int = 0,
                   derivatives=None, element_weights=None, force_frames=None):
    """EnergyDataset of each named split (frames of the dataset index, features from ``cache``),
    the feature set of their columns and its per-element statistics over the training split.

    ``noise`` > 0 appends that many confounding noise features per element
    (:mod:`meltpot.selection.noise`; needs "train" among ``names``). ``derivatives``: a
    derivative store whose frames' forces the datasets then carry (force training);
    ``force_frames``: at most that many of them in the training split's force term."""
    import numpy as np

    from ..data.splits import read_splits
    from ..descriptors.cache import read_index
    from ..train.data import EnergyDataset

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
        from .noise import add_noise, column_stats, noise_featureset

        if "train" not in out:
            raise MeltpotError("noise features are matched to the training split's statistics: load 'train'")
        fs = noise_featureset(fs, stats, noise, noise_seed)
        out = {name: add_noise(d, fs) for name, d in out.items()}
        stats = column_stats(out["train"], fs)
    return out, fs, stats


def selection_settings(cfg: dict, derivatives=None, **overrides):
    """TrainSettings of the selection commands: the training block, without its force and stress
    terms unless ``selection.forces`` and a derivative store (``derivatives``) are given."""
    from ..train.settings import TrainSettings

    settings = TrainSettings.from_config(cfg["training"], progress=False, log_every=10**9, **overrides)
    if settings.uses_forces and not (cfg["selection"]["forces"] and derivatives):
        if cfg["selection"]["forces"]:
            log.warning("training.loss has a force term but no --derivatives store was given: the selection "
                        "fits energies only")
        settings = settings.energy_only()
    return settings


def noise_options(cfg: dict) -> tuple[int, int]:
    """(noise features per element, noise seed) of the selection config."""
    from ..seeds import derive_seed

    sc = cfg["selection"]
    seed = sc["noise_seed"] if sc["noise_seed"] is not None else derive_seed(cfg["seed"], "noise-features")
    return int(sc["noise_features"]), int(seed)


def _finite(x) -> float | None:
    """A float, or None for NaN/inf (JSON has no NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


def select_path(cfg: dict, model_path, cache_path, index_path, splits_path, out_dir, *, derivatives=None,
                until_step: int | None = None, path_seed: int = 0) -> dict:
    """λ path (GL → AGL → retrain) from a trained dense model, resuming in ``out_dir``, and the
    choice of a feature set by the config's ``selection`` rule (``chosen.json``,
    ``selected_featureset.yaml``, ``path.png``).

    With ``until_step`` only the path up to that λ step is computed (one λ per workflow job);
    returns ``{"step", "lambda", "n_total", "end"}`` of the last step then. Otherwise returns
    ``{"table", "chosen", "keep", "lambda", "n_total", "n_noise", "out"}``.

    ``path_seed`` K > 0 derives the path's seeds (minibatch order, cold initialisations) from K as
    well: the same path with other random parts, to see how stable the choice is
    (:mod:`meltpot.selection.stability`); 0 is the run's own path."""
    import dataclasses

    import numpy as np

    from ..descriptors.cache import DescriptorCache
    from ..manifest import write_json
    from ..model.modelfile import check_featureset, load_model
    from ..seeds import derive_seed
    from .path import SelectionSettings, choice_margins, choose, lambda_path
    from .plots import plot_path

    model = load_model(model_path)
    sc = cfg["selection"]
    names = {f.name for f in dataclasses.fields(SelectionSettings)}
    if path_seed < 0:
        raise MeltpotError(f"path_seed {path_seed}: need 0 (the run's path) or a positive integer")
    extra = (f"path{path_seed}",) if path_seed else ()
    sel = SelectionSettings(**{k: v for k, v in sc.items() if k in names},
                            seed=derive_seed(cfg["seed"], "select-cold-init", *extra))
    tcfg = cfg["training"]
    if path_seed:
        base = tcfg["seed"] if tcfg.get("seed") is not None else cfg["seed"]
        settings = selection_settings(cfg, derivatives, seed=derive_seed(base, "select", *extra))
    else:
        settings = selection_settings(cfg, derivatives, **({} if tcfg.get("seed") is not None
                                                           else {"seed": derive_seed(cfg["seed"], "select")}))
    n_noise, noise_seed = noise_options(cfg)
    with DescriptorCache(cache_path) as cache:
        check_featureset(model, cache.info()["featureset_hash"], what=f"the descriptors in {cache_path}",
                         source=str(model_path))
        data, fs, stats = split_datasets(cache, index_path, splits_path, ("train", "validation"),
                                         noise=n_noise, noise_seed=noise_seed,
                                         derivatives=derivatives if settings.uses_forces else None,
                                         element_weights=settings.force_element_weights,
                                         force_frames=sc["force_frames"])
    train, val = data["train"], data["validation"]
    out = Path(out_dir)
    if n_noise:
        from .noise import noisy_dense_model

        model = noisy_dense_model(model, fs, stats, train, val, settings, epochs=sel.retrain_epochs,
                                  seed=noise_seed, path=out / "dense_noise.pt")
    units = getattr(model, "units", "metal")
    labels = {el: model.featureset.labels(el) for el in model.elements}
    unit, scale = unit_labels(units)["energy"], ENERGY_SCALE
    if sc["lambda_per_element"] and len(model.elements) > 1:
        from .path import per_element_search

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
        table = lambda_path(model, train, val, settings, sel, out_dir=out, units=units, stop_after=until_step)
        if until_step is not None:   # one λ of the workflow's per-λ rules: report it and stop
            last = table.iloc[-1]
            return {"step": int(last["step"]), "lambda": float(last["lambda"]), "n_total": int(last["n_total"]),
                    "end": bool(last["end"]) or len(table) <= until_step}
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
                           else f"smallest set within {sc['tolerance']:.0%} of the retrained full set (the same "
                                f"retraining as every candidate; validation {metric.replace('_', ' ')}); else the most "
                                f"accurate"),
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
    chosen.update(path_seed=int(path_seed),
                  kept=keep, kept_labels={el: [labels[el][j] for j in idx] for el, idx in keep.items()},
                  noise_features=n_noise,
                  noise_kept={el: [labels[el][j] for j in idx if labels[el][j].startswith("noise")]
                              for el, idx in keep.items()})
    if "n_full" in table and "element" not in table:   # the tolerance rule's view of every size (one λ path)
        chosen["margins"] = choice_margins(table, column)
        chosen["tolerance"] = float(sc["tolerance"])
    write_json(out / "chosen.json", chosen)
    plot_path(table, labels, out / "path.png", unit=unit, scale=scale, chosen=lam)
    return {"table": table, "chosen": chosen, "keep": keep, "lambda": lam, "n_total": n_total, "n_noise": n_noise,
            "out": out, "unit": unit, "scale": scale}


def select_filter(cache_path, splits_path, method: str, out, *, n_features=None, match=None, max_rows: int = 20000,
                  seed: int = 0, index_path=None, noise: int = 0, noise_seed: int = 0) -> dict:
    """Unsupervised filter baseline (Pearson, CUR, FPS) on the training rows of the cache, at
    ``n_features`` per element or as many as a ``chosen.json`` (``match``) keeps; writes the
    filtered feature set to ``out`` (YAML) and the selection beside it (.json). Returns the
    selected column indices per element."""
    from ..data.splits import read_splits
    from ..descriptors.cache import DescriptorCache
    from ..manifest import write_json
    from .filters import filtered_featureset, select_per_element, select_per_element_arrays

    splits = read_splits(splits_path)
    train = splits.loc[splits["split"] == "train", "frame_id"].to_numpy()
    if (n_features is None) == (match is None):
        raise MeltpotError("give either --n-features or --match (a chosen.json of `meltpot select path`)")
    if match:
        n_features = {el: len(v) for el, v in json.loads(Path(match).read_text())["kept"].items()}
    with DescriptorCache(cache_path) as cache:
        if noise:
            if not index_path:
                raise MeltpotError("--noise needs --index (the dataset index): noise is drawn per frame and atom")
            data, fs, _ = split_datasets(cache, index_path, splits_path, ("train",), noise=noise, noise_seed=noise_seed)
            X = {el: g.cpu().numpy() for el, g in zip(data["train"].elements, data["train"].G)}
            sel = select_per_element_arrays(X, method, n_features, max_rows=max_rows, seed=seed,
                                            source=f"training features of {cache_path} with {noise} noise")
        else:
            fs = cache.featureset()
            sel = select_per_element(cache, method, n_features, frame_ids=train, max_rows=max_rows, seed=seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n_total = sum(len(v) for v in sel.values())
    filtered_featureset(fs, sel, name=f"{fs.name}-{method}{n_total}").save(out)
    write_json(out.with_suffix(".json"), {"method": method, "n_features": n_features, "selected": sel,
                                          "labels": {el: [fs.labels(el)[j] for j in idx] for el, idx in sel.items()}})
    return sel


def _compare_group(cfg: dict, cache_path, index_path, splits_path, chosen: dict, seeds: int, max_epochs,
                   derivatives):
    """Train and test the feature sets ``chosen`` (name → kept indices): one worker's share of
    :func:`compare_feature_sets` (it loads the data itself)."""
    import torch

    from ..descriptors.cache import DescriptorCache
    from .compare import compare_sets

    torch.set_num_threads(1)
    settings = selection_settings(cfg, derivatives)
    if max_epochs:
        settings = settings.replace(max_epochs=max_epochs, restarts=None)
    n_noise, noise_seed = noise_options(cfg)
    with DescriptorCache(cache_path) as cache:
        data, full, stats = split_datasets(cache, index_path, splits_path, ("train", "validation", "test"),
                                           noise=n_noise, noise_seed=noise_seed,
                                           derivatives=derivatives if settings.uses_forces else None,
                                           element_weights=settings.force_element_weights,
                                           force_frames=cfg["selection"]["force_frames"])
    return compare_sets(chosen, full, stats, data["train"], data["validation"], data["test"], settings,
                        seeds=range(seeds), hidden=cfg["model"]["hidden"], activation=cfg["model"]["activation"])


def _groups(chosen: dict, workers: int) -> list[dict]:
    """``chosen`` split into at most ``workers`` groups of about equal cost (features × sets); sets
    with the same features stay together (they are trained once)."""
    by_key: dict[tuple, dict] = {}
    for name, keep in chosen.items():
        key = tuple(sorted((el, tuple(sorted(map(int, v)))) for el, v in keep.items()))
        by_key.setdefault(key, {})[name] = keep
    loads = [0] * max(1, min(workers, len(by_key)))
    groups: list[dict] = [{} for _ in loads]
    for members in sorted(by_key.values(), key=lambda m: -sum(len(v) for v in next(iter(m.values())).values())):
        k = loads.index(min(loads))
        groups[k].update(members)
        loads[k] += sum(len(v) for v in next(iter(members.values())).values()) + 10   # + a fixed cost per set
    return [g for g in groups if g]


def compare_feature_sets(cfg: dict, cache_path, index_path, splits_path, out_dir, *, sets=(), seeds: int = 4,
                         without_full: bool = False, max_epochs=None, derivatives=None, workers: int = 1):
    """N seeds per feature set (full, AGL, filters: ``sets`` of (name, featureset.yaml)): test
    RMSE mean ± std → ``comparison.csv``, ``comparison.json``, ``kept_features.png`` in ``out_dir``.
    ``workers`` > 1 trains the sets in that many processes (each model on one thread and with its
    own seed, so the numbers do not depend on ``workers``). Returns the comparison table."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    import pandas as pd

    from ..descriptors.cache import DescriptorCache
    from ..descriptors.featureset import load_featureset
    from ..manifest import write_json
    from .compare import plot_kept_matrix, subset_indices

    n_noise, noise_seed = noise_options(cfg)
    with DescriptorCache(cache_path) as cache:   # the full set's columns, as split_datasets makes them
        full = cache.featureset()
        if n_noise:
            from .noise import noise_featureset

            full = noise_featureset(full, {el: cache.stats(el) for el in full.elements}, n_noise, noise_seed)
    chosen = {} if without_full else {"full": {el: list(range(full.n_features(el))) for el in full.elements}}
    for name, path in sets:
        chosen[name] = subset_indices(full, load_featureset(path), f"{path}")
    if not chosen:
        raise MeltpotError("nothing to compare: give --sets or drop --without-full")
    args = (cfg, cache_path, index_path, splits_path)
    groups = _groups(chosen, workers)
    if len(groups) == 1:
        parts = [_compare_group(*args, chosen, seeds, max_epochs, derivatives)]
    else:
        log.info("comparison: %d sets in %d worker processes", len(chosen), len(groups))
        with ProcessPoolExecutor(len(groups), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_compare_group, *args, g, seeds, max_epochs, derivatives) for g in groups]
            parts = [f.result() for f in futures]
    table = pd.concat(parts, ignore_index=True).set_index("set").loc[list(chosen)].reset_index()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.drop(columns=["kept", "test_rmse_all"]).to_csv(out / "comparison.csv", index=False)
    write_json(out / "comparison.json", {"seeds": seeds, "rows": table.to_dict(orient="records")})
    plot_kept_matrix(chosen, full, out / "kept_features.png")
    return table
