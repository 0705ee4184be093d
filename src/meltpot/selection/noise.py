"""Confounding noise features (thesis §5.3.5): does a selection method discard inputs that
carry no information?

``k`` pseudo-features per element are appended to the real symmetry functions. Noise column
j mimics real feature j mod F: it is |μ_j + σ_j·z| with μ_j, σ_j the real feature's mean and
standard deviation over the training split and z ~ N(0, 1) drawn once per atom and frame
(the same numbers in every epoch and every command). The draw of a frame depends only on
the seed, the element and the frame id, so ``select path``, ``select filter`` and ``select
compare`` see identical columns whatever split a frame is in.

The noise parameters live in the feature set as :class:`NoiseFeature` entries, so a model
trained with them records them, and a selected set that kept one can be rebuilt.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..descriptors.featureset import FeatureSet, NoiseFeature, is_noise
from ..errors import ConfigError
from ..model.hdnnp import HDNNP
from ..seeds import derive_seed


def noise_featureset(featureset: FeatureSet, stats: dict, k: int, seed: int) -> FeatureSet:
    """``featureset`` with ``k`` noise features appended per element, matched to the real
    features' statistics ``stats[el]`` (``mean``/``std`` arrays, as from the descriptor cache)."""
    if k < 1:
        raise ConfigError(f"noise features: k must be >= 1, got {k}")
    if featureset.has_noise:
        raise ConfigError(f"feature set {featureset.name} already holds noise features")
    per = {}
    for el, fns in featureset.per_element.items():
        mean = np.asarray(stats[el]["mean"], dtype=float)
        std = np.asarray(stats[el]["std"], dtype=float)
        if mean.size != len(fns) or not np.all(np.isfinite(mean)) or not np.all(np.isfinite(std)):
            raise ConfigError(f"noise features: no valid training statistics for element {el}")
        per[el] = list(fns) + [NoiseFeature(index=j, mean=float(mean[j % len(fns)]), std=float(std[j % len(fns)]),
                                            seed=int(seed)) for j in range(k)]
    return FeatureSet(per, cutoff=featureset.cutoff, cutoff_alpha=featureset.cutoff_alpha,
                      name=f"{featureset.name}+noise{k}", meta=dict(featureset.meta))


def _noise_of(featureset: FeatureSet, el: str) -> tuple[list[int], list[NoiseFeature]]:
    fns = featureset.per_element[el]
    cols = [j for j, f in enumerate(fns) if is_noise(f)]
    return cols, [fns[j] for j in cols]


def draw_noise(functions: list[NoiseFeature], element: str, frame_ids, rows_per_frame) -> np.ndarray:
    """Noise values (Σ rows, len(functions)) for frames ``frame_ids`` with ``rows_per_frame``
    atoms of ``element`` each (rows grouped by frame, in that order)."""
    if not functions:
        return np.zeros((int(np.sum(rows_per_frame)), 0))
    seeds = {f.seed for f in functions}
    if len(seeds) != 1:
        raise ConfigError(f"noise features of {element} have different seeds {sorted(seeds)}")
    seed = derive_seed(seeds.pop(), f"noise-{element}")
    width = max(f.index for f in functions) + 1
    mean = np.array([f.mean for f in functions])
    std = np.array([f.std for f in functions])
    cols = np.array([f.index for f in functions])
    blocks = []
    for fid, n in zip(np.asarray(frame_ids, dtype=np.int64), np.asarray(rows_per_frame, dtype=np.int64)):
        z = np.random.default_rng([seed, int(fid)]).standard_normal((int(n), width))
        blocks.append(np.abs(mean + std * z[:, cols]))
    return np.concatenate(blocks) if blocks else np.zeros((0, len(functions)))


def add_noise(dataset, featureset: FeatureSet):
    """A copy of an :class:`~meltpot.train.data.EnergyDataset` whose feature columns are those
    of ``featureset``: the dataset's real columns in order, then the drawn noise columns (the
    noise features must come after the real ones of each element)."""
    out = copy.copy(dataset)
    out.G = []
    for k, el in enumerate(dataset.elements):
        cols, fns = _noise_of(featureset, el)
        n_real = featureset.n_features(el) - len(cols)
        if cols != list(range(n_real, featureset.n_features(el))):
            raise ConfigError(f"feature set {featureset.name}: the noise features of {el} must follow its real ones")
        G = dataset.G[k]
        if G.shape[1] != n_real:
            raise ConfigError(f"dataset has {G.shape[1]} feature columns for {el}, feature set "
                              f"{featureset.name} has {n_real} real ones")
        noise = draw_noise(fns, el, dataset.frame_ids, dataset.row_count[k].cpu().numpy())
        out.G.append(torch.cat([G, torch.as_tensor(noise, dtype=G.dtype, device=G.device)], dim=1))
    return out


def column_stats(dataset, featureset: FeatureSet) -> dict:
    """Per-element ``{"mean", "std"}`` of every column of ``dataset`` (population std), the
    scaling of a model on ``featureset`` trained on it."""
    out = {}
    for k, el in enumerate(dataset.elements):
        G = dataset.G[k]
        out[el] = {"mean": G.mean(0).cpu().numpy(), "std": G.std(0, unbiased=False).cpu().numpy()}
        if G.shape[1] != featureset.n_features(el):
            raise ConfigError(f"dataset and feature set {featureset.name} disagree on {el}'s feature count")
    return out


def widen_model(model: HDNNP, featureset: FeatureSet, stats: dict, seed: int) -> HDNNP:
    """A copy of ``model`` on ``featureset`` (the model's features plus noise features): the
    old weights kept, the new input columns drawn Glorot-uniform like a fresh network's, the
    new columns standardised with ``stats`` (e.g. :func:`column_stats` of the training set)."""
    wide = HDNNP(featureset, hidden=model.hidden, activation=model.activation)
    wide.units = getattr(model, "units", "metal")
    wide.metadata = copy.deepcopy(getattr(model, "metadata", {}))
    gen = torch.Generator().manual_seed(derive_seed(seed, "noise-columns"))
    with torch.no_grad():
        wide.reference_energy.copy_(model.reference_energy)
        for k, el in enumerate(model.elements):
            f_old, f_new = model.n_features[k], wide.n_features[k]
            if featureset.per_element[el][:f_old] != model.featureset.per_element[el]:
                raise ConfigError(f"feature set {featureset.name} does not extend the model's {el} features")
            wide.feature_mean[k, :f_old] = model.feature_mean[k, :f_old]
            wide.feature_std[k, :f_old] = model.feature_std[k, :f_old]
            m = torch.as_tensor(stats[el]["mean"][f_old:f_new], dtype=torch.float64)
            s = torch.as_tensor(stats[el]["std"][f_old:f_new], dtype=torch.float64)
            wide.feature_mean[k, f_old:f_new] = m
            wide.feature_std[k, f_old:f_new] = torch.where(s > 1e-8, s, torch.ones_like(s))
            src, dst = model.nets[k], wide.nets[k]
            w = src.layers[0].weight
            bound = (6.0 / (f_new + w.shape[0])) ** 0.5  # Glorot-uniform bound of the wide layer
            new = (torch.rand((w.shape[0], f_new - f_old), generator=gen, dtype=torch.float64) * 2 - 1) * bound
            dst.layers[0].weight.copy_(torch.cat([w, new.to(w)], dim=1))
            dst.layers[0].bias.copy_(src.layers[0].bias)
            for a, b in zip(src.layers[1:], dst.layers[1:]):
                b.weight.copy_(a.weight)
                b.bias.copy_(a.bias)
    return wide


def noisy_dense_model(model: HDNNP, featureset: FeatureSet, stats: dict, train, val, settings, epochs: int | None,
                      seed: int, path=None) -> HDNNP:
    """The dense reference of a noise experiment: ``model`` widened to ``featureset``
    (:func:`widen_model`) and trained without penalty for up to ``epochs`` (None: the
    settings' max_epochs), so the noise columns take part in the fit before selection.
    With ``path`` the result is saved there, and reused when it already exists."""
    from pathlib import Path

    from ..model.modelfile import load_model, save_model
    from ..train.trainer import Trainer

    if path is not None and Path(path).exists():
        wide = load_model(path)
        if wide.featureset.content_hash() != featureset.content_hash():
            raise ConfigError(f"{path} was trained on another noise feature set; move it away to retrain")
        return wide
    wide = widen_model(model, featureset, stats, seed)
    Trainer(wide, settings.replace(max_epochs=epochs or settings.max_epochs), train, val).fit()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_model(wide, path, units=getattr(wide, "units", "metal"))
    return wide
