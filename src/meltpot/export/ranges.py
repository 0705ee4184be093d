"""Training-split feature statistics of a model's functions, read from a descriptor cache.

Exports need them: the TorchScript potential checks extrapolation against [min, max], n2p2's
``scaling.data`` stores min, max, mean and σ. The model's functions are looked up in the cache's
feature set by definition, so a model trained on a selected subset exports from the full cache.
"""

from __future__ import annotations

import numpy as np

from ..descriptors.featureset import FeatureSet
from ..errors import MeltpotError


def model_columns(cache_fs: FeatureSet, model_fs: FeatureSet, cache_path) -> dict[str, np.ndarray]:
    """Column of each model function in the cache, per element (MeltpotError if one is missing)."""
    out = {}
    for el, fns in model_fs.per_element.items():
        have = cache_fs.per_element.get(el)
        if have is None:
            raise MeltpotError(f"descriptor cache {cache_path} has no element {el}")
        cols = []
        for f in fns:
            if f not in have:
                raise MeltpotError(f"descriptor cache {cache_path}: {el} function {f.label()} of the model is not in "
                                   f"its feature set {cache_fs.name}")
            cols.append(have.index(f))
        out[el] = np.array(cols, dtype=np.int64)
    return out


def training_stats(model, cache_path) -> dict[str, dict[str, np.ndarray]]:
    """Per element of ``model``: ``min``, ``max``, ``mean``, ``std`` of its functions over the
    cache's statistics split (the training split when the cache was built with splits)."""
    from ..descriptors.cache import DescriptorCache

    with DescriptorCache(cache_path) as cache:
        cols = model_columns(cache.featureset(), model.featureset, cache_path)
        out = {}
        for el in model.elements:
            st = cache.stats(el)
            out[el] = {k: np.asarray(st[k])[cols[el]] for k in ("min", "max", "mean", "std")}
    return out
