"""Final comparison of feature sets (thesis tables C.4–C.6): N models per set from different
initialisations, test RMSE mean ± std, feature counts, and which features each set keeps.

Every compared set must be a subset of the cached feature set (the full set, the AGL choice,
filter selections); models read the cached columns of their features, so no descriptor is
recomputed.
"""

from __future__ import annotations

import json
import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..descriptors.featureset import FeatureSet, is_noise  # noqa: E402
from ..errors import MeltpotError  # noqa: E402
from ..model.hdnnp import HDNNP, fit_reference_energies  # noqa: E402
from ..train.settings import TrainSettings  # noqa: E402
from ..train.trainer import Trainer, init_weights  # noqa: E402

log = logging.getLogger("meltpot.select")


def subset_indices(full: FeatureSet, subset: FeatureSet, name: str = "feature set") -> dict[str, list[int]]:
    """Indices of ``subset``'s functions in ``full`` per element (error if one is missing)."""
    out = {}
    for el in full.elements:
        fns = full.per_element[el]
        if el not in subset.per_element:
            raise MeltpotError(f"{name} has no functions for element {el}")
        idx = []
        for f in subset.per_element[el]:
            if f not in fns:
                raise MeltpotError(f"{name}: {el} function {f.label()} is not in the cached feature set {full.name}")
            idx.append(fns.index(f))
        out[el] = sorted(idx)
    return out


def train_subset(keep: dict, full: FeatureSet, stats: dict, train, val, settings: TrainSettings, seed: int,
                 hidden=(10, 10), activation: str = "tanh") -> tuple[HDNNP, dict]:
    """A model on the features ``keep`` (scaled with the cached statistics), trained from seed,
    and its validation metrics (energy and, where the data carry them, force errors)."""
    model = HDNNP(full.subset(keep), hidden=hidden, activation=activation)
    model.set_scaling({el: stats[el]["mean"][keep[el]] for el in full.elements},
                      {el: stats[el]["std"][keep[el]] for el in full.elements})
    tr, va = train.select_features(keep), val.select_features(keep)
    counts = tr.counts.cpu().numpy()
    model.set_reference_energies(fit_reference_energies(tr.energy.cpu().numpy(), counts, full.elements))
    init_weights(model, seed)
    trainer = Trainer(model, settings.replace(seed=seed), tr, va)
    trainer.fit()
    return model, trainer.evaluate(va)


def compare_sets(sets: dict[str, dict], full: FeatureSet, stats: dict, train, val, test,
                 settings: TrainSettings, seeds=(0, 1, 2, 3), hidden=(10, 10), activation="tanh") -> pd.DataFrame:
    """Train ``len(seeds)`` models per set and evaluate them on ``test`` (see module docstring)."""
    rows, done = [], {}
    for name, keep in sets.items():
        key = json.dumps({el: sorted(map(int, v)) for el, v in keep.items()}, sort_keys=True)
        if key in done:  # the same features as an earlier set: same models, no need to train again
            rows.append(dict(done[key], set=name, same_as=done[key]["set"]))
            log.info("%s keeps the same features as %s: reusing its results", name, done[key]["set"])
            continue
        rmses, force_rmses = [], []
        for seed in seeds:
            model, val_metrics = train_subset(keep, full, stats, train, val, settings, seed, hidden, activation)
            force_rmses.append(float(val_metrics.get("force_rmse", float("nan"))))
            te = test.select_features(keep)
            test_settings = settings if te.forces_store is not None else settings.energy_only()
            with_no_grad = Trainer(model, test_settings, te, te).evaluate(te)
            rmses.append(float(with_no_grad["energy_rmse"]))
            log.info("%s seed %d: test energy RMSE %.4g", name, seed, rmses[-1])
        n_ang = sum(full.per_element[el][j].is_angular for el in full.elements for j in keep[el])
        n_noise = sum(is_noise(full.per_element[el][j]) for el in full.elements for j in keep[el])
        rows.append({"set": name, "n_features": sum(len(v) for v in keep.values()), "n_angular": n_ang,
                     "n_noise": n_noise,
                     "test_rmse_mean": float(np.mean(rmses)), "test_rmse_std": float(np.std(rmses, ddof=1))
                     if len(rmses) > 1 else 0.0, "seeds": len(rmses), "test_rmse_all": rmses,
                     "val_force_rmse_mean": float(np.mean(force_rmses)),
                     "val_force_rmse_std": float(np.std(force_rmses, ddof=1)) if len(force_rmses) > 1 else 0.0,
                     "kept": {el: list(map(int, v)) for el, v in keep.items()}, "same_as": ""})
        done[key] = rows[-1]
    return pd.DataFrame(rows)


def plot_kept_matrix(sets: dict[str, dict], full: FeatureSet, path) -> None:
    """Which features each set keeps (thesis figs 5.3c/5.5c): sets × features, per element."""
    cols = [(el, j) for el in full.elements for j in range(full.n_features(el))]
    mat = np.array([[j in keep[el] for el, j in cols] for keep in sets.values()], dtype=float)
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(cols)), 0.5 * len(sets) + 2.2))
    ax.imshow(mat, aspect="auto", cmap="Blues", vmin=0, vmax=1.3, interpolation="nearest")
    ax.set_yticks(range(len(sets)))
    ax.set_yticklabels(list(sets))
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([f"{el}:{full.labels(el)[j]}" for el, j in cols], rotation=90, fontsize=6)
    for c, (el, j) in enumerate(cols):
        if full.per_element[el][j].is_angular:
            ax.axvspan(c - 0.5, c + 0.5, color="orange", alpha=0.08, lw=0)
        elif is_noise(full.per_element[el][j]):
            ax.axvspan(c - 0.5, c + 0.5, color="red", alpha=0.08, lw=0)
    ax.set_title("kept features (shaded columns: orange angular, red noise)" if full.has_noise
                 else "kept features (shaded columns: angular)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
