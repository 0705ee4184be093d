"""Unsupervised filter baselines for symmetry-function selection (thesis §2.4.1).

Three selectors with one scikit-learn interface, all run on an *atoms × features* matrix
(the rows of one element, over the training frames):

- :class:`PearsonSelector` — the Pearson-correlation ("PC") greedy filter of Imbalzano
  et al. (J. Chem. Phys. 148, 241730, 2018) as the thesis describes it: each unselected
  feature is scored by its average (absolute) Pearson correlation with the features already
  selected, and the lowest score is added next (written here; skmatter has no such filter).
- :class:`CURSelector` — :class:`skmatter.feature_selection.CUR` (column CUR with
  orthogonalisation of the remaining columns after each pick).
- :class:`FPSSelector` — :class:`skmatter.feature_selection.FPS` (farthest-point sampling
  of the feature columns).

Common behaviour (:class:`FilterSelector`)
------------------------------------------
``fit(X)``:

1. **Rows.** With ``max_rows`` set and more rows than that, ``max_rows`` rows are drawn
   without replacement by ``numpy.random.default_rng(seed)`` (kept in dataset order). The
   same ``(X, max_rows, seed)`` always gives the same rows and the same selection.
2. **Standardisation.** Every column is centred and divided by its standard deviation
   (population, ``ddof=0``) over those rows; ``mean_`` and ``scale_`` keep them.
3. **Zero-variance columns.** A column is *constant* when its values are all equal
   (``max == min``) or its standard deviation is at most ``1e-12 × max(|mean|, 1e-300)``
   (rounding noise). Constant columns carry no information and have no Pearson
   correlation, so the selector runs on the informative columns only; the constant ones
   (``constant_idx_``) are appended after all informative columns, in index order, only
   when ``n_features`` exceeds the number of informative columns (and never after the
   Pearson ``threshold`` stopped the selection early).
4. ``selected_idx_``: the chosen column indices of ``X`` **in selection order**.
   ``get_support(indices=False)`` is the boolean mask (``indices=True``: the indices in
   increasing order) and ``transform(X)`` returns those columns **in their original
   order** (scikit-learn's convention, and the order :func:`filtered_featureset` keeps).

Per element
-----------
:func:`select_per_element` runs one selector per element of a descriptor cache on the
rows of the given frames (pass the training split's frame ids: the cache itself does not
record the split; ``frame_ids=None`` uses every row) and :func:`filtered_featureset` turns
the result into a :class:`~meltpot.descriptors.featureset.FeatureSet`. :data:`FILTERS`
maps the names ``pearson``, ``cur`` and ``fps`` to the classes; :func:`make_filter`
builds one by name.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..errors import ConfigError, MeltpotError

#: relative standard deviation at or below which a column counts as constant
CONSTANT_RTOL = 1e-12
#: Pearson scores closer than this count as tied (then: larger raw variance, lower index)
TIE_ATOL = 1e-12

__all__ = ["FILTERS", "CURSelector", "FPSSelector", "FilterSelector", "PearsonSelector",
           "filtered_featureset", "make_filter", "select_per_element", "standardise"]


# ----------------------------------------------------------------------------------------
# shared pieces


def subsample_rows(n_rows: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Sorted row indices to keep (``None``: all rows), drawn by ``default_rng(seed)``."""
    if max_rows is None or n_rows <= max_rows:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=int(max_rows), replace=False))


def standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(Z, mean, std, constant)``: ``Z`` holds the standardised *informative* columns of
    ``X`` (column order kept), ``constant`` is the boolean mask of the zero-variance columns
    (see the module docstring for the rule)."""
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    ptp = X.max(axis=0) - X.min(axis=0) if len(X) else np.zeros(X.shape[1])
    constant = (ptp == 0) | (std <= CONSTANT_RTOL * np.maximum(np.abs(mean), 1e-300))
    keep = ~constant
    Z = (X[:, keep] - mean[keep]) / std[keep]
    return Z, mean, std, constant


def _check_count(n_features, what: str = "n_features") -> int:
    if isinstance(n_features, bool) or not isinstance(n_features, numbers.Integral) or n_features < 1:
        raise ConfigError(f"{what} must be a positive integer, got {n_features!r}")
    return int(n_features)


class FilterSelector(SelectorMixin, BaseEstimator):
    """Base class of the filters (see the module docstring for the shared behaviour).

    Subclasses implement ``_select(Z, n, variance) -> indices into Z's columns`` (selection
    order; fewer than ``n`` only if the method stops early) and list their parameters in
    ``__init__`` (scikit-learn's ``get_params`` reads them from there).

    Fitted attributes: ``selected_idx_`` (selection order), ``n_features_in_``,
    ``n_rows_used_``, ``mean_``, ``scale_`` (per column, over the rows used),
    ``constant_idx_`` (zero-variance columns), ``stopped_early_``.
    """

    def __init__(self, n_features: int, *, max_rows: int | None = None, seed: int = 0):
        self.n_features = n_features
        self.max_rows = max_rows
        self.seed = seed

    # subclasses override
    def _select(self, Z: np.ndarray, n: int, variance: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def fit(self, X, y=None):
        """Select ``n_features`` columns of ``X`` (rows: atoms; columns: features). ``y`` is ignored."""
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2, ensure_min_features=1)
        n_rows, n_cols = X.shape
        n = _check_count(self.n_features)
        if n > n_cols:
            raise ConfigError(f"{type(self).__name__}: n_features = {n} but X has only {n_cols} columns")
        if self.max_rows is not None and (_check_count(self.max_rows, "max_rows") < 2):
            raise ConfigError(f"max_rows must be at least 2, got {self.max_rows}")
        rows = subsample_rows(n_rows, self.max_rows, self.seed)
        Xs = X if rows is None else X[rows]
        Z, mean, std, constant = standardise(Xs)
        informative = np.flatnonzero(~constant)
        constant_idx = np.flatnonzero(constant)
        n_inf = min(n, informative.size)
        self.constant_idx_ = constant_idx
        self.informative_idx_ = informative
        self.stopped_early_ = False
        picked = np.zeros(0, dtype=np.int64)
        if n_inf > 0:
            picked = np.asarray(self._select(Z, n_inf, Xs.var(axis=0)[informative]), dtype=np.int64)
            if picked.size < n_inf:
                self.stopped_early_ = True
        selected = informative[picked]
        if not self.stopped_early_ and n > informative.size:
            selected = np.concatenate([selected, constant_idx[: n - informative.size]])
        self.selected_idx_ = selected.astype(np.int64)
        self.n_rows_used_ = int(Xs.shape[0])
        self.mean_, self.scale_ = mean, std
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "selected_idx_")
        mask = np.zeros(self.n_features_in_, dtype=bool)
        mask[self.selected_idx_] = True
        return mask

    # informative columns ↔ original columns
    def _to_informative(self, col: int, what: str) -> int:
        pos = np.searchsorted(self.informative_idx_, col)
        if pos >= self.informative_idx_.size or self.informative_idx_[pos] != col:
            raise ConfigError(f"{type(self).__name__}: {what} = {col} is a constant (zero-variance) column")
        return int(pos)


# ----------------------------------------------------------------------------------------
# Pearson


class PearsonSelector(FilterSelector):
    """Greedy Pearson-correlation filter (Imbalzano et al. 2018; thesis eq. 2.42).

    On the standardised informative columns, ρ_ij is the Pearson correlation over all rows
    (atoms of one element, all frames used). The rule:

    1. **First feature** (``start``): ``"decorrelated"`` (default) — the feature with the
       lowest mean |ρ| to all other informative features; ``"variance"`` — the largest
       variance of the raw (unstandardised) column; or an int, a column index of ``X``.
    2. **Next features**: every unselected feature gets the score
       ``aggregate_{s ∈ selected} |ρ_js|`` — ``aggregate="mean"`` (default: the thesis's
       "average Pearson coefficient with respect to all the previously selected features")
       or ``"max"`` (the largest correlation with any selected feature); the lowest score
       is added. Scores within ``1e-12`` are tied; ties go to the larger raw variance, then
       the lower column index.
    3. Stop at ``n_features`` features, or earlier when ``threshold`` is set and the best
       remaining score exceeds it (then ``stopped_early_`` is True and fewer features are
       returned).

    The absolute value is used because a feature that is strongly *anti*-correlated with a
    selected one is just as redundant (the thesis writes "Pearson coefficient"; without
    |·| a mirrored copy −x would score −1 and be picked first). With ``"mean"``, an exact
    copy of one selected feature s scores (1 + Σ_{t≠s}|ρ_st|)/k after k picks, so it beats a
    candidate that is moderately correlated with *every* selected feature (e.g. 0.5 with
    each of four independent ones scores 0.5 > 1/4); ``"max"`` scores the copy 1 and picks
    the candidate first. Both pick a copy only after every feature uncorrelated with the
    selected set.

    Extra fitted attributes: ``scores_`` (score of each selected feature when it was
    picked, selection order; the first is its mean |ρ| to all others) and ``correlation_``
    (signed ρ between all columns of ``X``; NaN for constant columns).
    """

    AGGREGATES = ("mean", "max")
    STARTS = ("decorrelated", "variance")

    def __init__(self, n_features: int, threshold: float | None = None, *, aggregate: str = "mean",
                 start: str | int = "decorrelated", max_rows: int | None = None, seed: int = 0):
        super().__init__(n_features, max_rows=max_rows, seed=seed)
        self.threshold = threshold
        self.aggregate = aggregate
        self.start = start

    def fit(self, X, y=None):
        if self.aggregate not in self.AGGREGATES:
            raise ConfigError(f"PearsonSelector: aggregate {self.aggregate!r} unknown; allowed: "
                              f"{', '.join(self.AGGREGATES)}")
        if not (isinstance(self.start, numbers.Integral) and not isinstance(self.start, bool)) \
                and self.start not in self.STARTS:
            raise ConfigError(f"PearsonSelector: start {self.start!r} unknown; allowed: "
                              f"{', '.join(self.STARTS)} or a column index")
        if self.threshold is not None and not (0 <= float(self.threshold) <= 1):
            raise ConfigError(f"PearsonSelector: threshold must lie in [0, 1], got {self.threshold}")
        if not isinstance(self.start, str):
            n_cols = np.shape(X)[1] if np.ndim(X) == 2 else 0
            if not 0 <= int(self.start) < n_cols:
                raise ConfigError(f"PearsonSelector: start = {self.start} is not a column index "
                                  f"(X has {n_cols} columns)")
        self._corr, self.scores_ = np.zeros((0, 0)), np.zeros(0)  # kept if every column is constant
        super().fit(X, y)
        # the full signed correlation matrix, NaN for constant columns
        F = self.n_features_in_
        corr = np.full((F, F), np.nan)
        inf = self.informative_idx_
        corr[np.ix_(inf, inf)] = self._corr
        self.correlation_ = corr
        del self._corr
        return self

    def _select(self, Z: np.ndarray, n: int, variance: np.ndarray) -> np.ndarray:
        m = Z.shape[1]
        corr = np.clip(Z.T @ Z / Z.shape[0], -1.0, 1.0)
        np.fill_diagonal(corr, 1.0)
        self._corr = corr
        C = np.abs(corr)
        mean_all = (C.sum(axis=1) - 1.0) / (m - 1) if m > 1 else np.zeros(m)

        def best(score: np.ndarray, cand: np.ndarray) -> int:
            """Candidate with the lowest score; ties (1e-12) → larger variance → lower index."""
            s = score[cand]
            tied = cand[s <= s.min() + TIE_ATOL]
            v = variance[tied]
            return int(tied[v >= v.max()][0]) if tied.size > 1 else int(tied[0])

        everyone = np.arange(m)
        if isinstance(self.start, str) and self.start == "decorrelated":
            first = best(mean_all, everyone)
        elif isinstance(self.start, str):  # "variance"
            first = best(-variance, everyone)
        else:
            first = self._to_informative(int(self.start), "start")
        selected = [first]
        scores = [float(mean_all[first])]
        remaining = np.ones(m, dtype=bool)
        remaining[first] = False
        acc = C[:, first].copy()  # running sum (mean) or max of |ρ| with the selected set
        while len(selected) < n:
            score = acc / len(selected) if self.aggregate == "mean" else acc
            cand = np.flatnonzero(remaining)
            j = best(score, cand)
            if self.threshold is not None and score[j] > float(self.threshold):
                break
            selected.append(j)
            scores.append(float(score[j]))
            remaining[j] = False
            acc = acc + C[:, j] if self.aggregate == "mean" else np.maximum(acc, C[:, j])
        self.scores_ = np.asarray(scores)
        return np.asarray(selected, dtype=np.int64)


# ----------------------------------------------------------------------------------------
# skmatter wrappers


class CURSelector(FilterSelector):
    """Column CUR selection by :class:`skmatter.feature_selection.CUR` on standardised columns.

    ``recompute_every``, ``k`` and ``tolerance`` are passed to skmatter (k: number of
    singular vectors in the importance score π_i, thesis eq. 2.45); its ``random_state`` is
    ``seed``. Once the remaining columns are exhausted (exact linear dependence), skmatter
    warns and its further picks are arbitrary. The fitted skmatter object is ``selector_``.
    """

    def __init__(self, n_features: int, *, recompute_every: int = 1, k: int = 1, tolerance: float = 1e-12,
                 max_rows: int | None = None, seed: int = 0):
        super().__init__(n_features, max_rows=max_rows, seed=seed)
        self.recompute_every = recompute_every
        self.k = k
        self.tolerance = tolerance

    def _select(self, Z: np.ndarray, n: int, variance: np.ndarray) -> np.ndarray:
        from skmatter.feature_selection import CUR

        self.selector_ = CUR(n_to_select=n, recompute_every=self.recompute_every, k=self.k,
                             tolerance=self.tolerance, random_state=self.seed).fit(Z)
        return np.asarray(self.selector_.selected_idx_)


class FPSSelector(FilterSelector):
    """Farthest-point sampling of the standardised columns by :class:`skmatter.feature_selection.FPS`.

    Each pick is the column farthest (Euclidean, over the rows used) from its nearest
    already-selected column. For standardised columns ‖z_i − z_j‖² = 2·n_rows·(1 − ρ_ij), so
    FPS favours weakly correlated — and also anti-correlated — features.

    ``initialize``: the first column — ``None`` (default) the first informative column
    (column 0 unless it is constant, matching skmatter's default), a column index of ``X``
    (must not be constant), or ``"random"`` (skmatter's, with ``random_state=seed``). The
    fitted skmatter object is ``selector_``.
    """

    def __init__(self, n_features: int, *, initialize: int | str | None = None, max_rows: int | None = None,
                 seed: int = 0):
        super().__init__(n_features, max_rows=max_rows, seed=seed)
        self.initialize = initialize

    def fit(self, X, y=None):
        init = self.initialize
        if init is not None and init != "random" and not (isinstance(init, numbers.Integral)
                                                           and not isinstance(init, bool)):
            raise ConfigError(f"FPSSelector: initialize must be None, 'random' or a column index, got {init!r}")
        return super().fit(X, y)

    def _select(self, Z: np.ndarray, n: int, variance: np.ndarray) -> np.ndarray:
        from skmatter.feature_selection import FPS

        init = self.initialize
        if init is None:
            init = 0
        elif init != "random":
            if not 0 <= int(init) < self.n_features_in_:
                raise ConfigError(f"FPSSelector: initialize = {init} is not a column index "
                                  f"(X has {self.n_features_in_} columns)")
            init = self._to_informative(int(init), "initialize")
        self.selector_ = FPS(n_to_select=n, initialize=init, random_state=self.seed).fit(Z)
        return np.asarray(self.selector_.selected_idx_)


#: filter name → selector class
FILTERS: dict[str, type[FilterSelector]] = {"pearson": PearsonSelector, "cur": CURSelector, "fps": FPSSelector}


def make_filter(name: str, n_features: int, **kw) -> FilterSelector:
    """A selector by name (``pearson``, ``cur``, ``fps``; case-insensitive) with ``n_features``
    and the class's keyword options (e.g. ``max_rows``, ``seed``, ``threshold``)."""
    key = str(name).strip().lower()
    if key not in FILTERS:
        raise ConfigError(f"filter method {name!r} unknown; allowed: {', '.join(sorted(FILTERS))}")
    cls = FILTERS[key]
    allowed = sorted(set(cls._get_param_names()) - {"n_features"})
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ConfigError(f"filter {key}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return cls(n_features, **kw)


# ----------------------------------------------------------------------------------------
# per element


def _counts(n_features, elements: list[str], sizes: dict[str, int]) -> dict[str, int]:
    if isinstance(n_features, Mapping):
        unknown = sorted(set(n_features) - set(elements))
        missing = [e for e in elements if e not in n_features]
        if unknown or missing:
            raise ConfigError("n_features per element must name exactly the elements "
                              f"{', '.join(elements)}"
                              + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else "")
                              + (f"; missing: {', '.join(missing)}" if missing else ""))
        counts = {el: _check_count(n_features[el], f"n_features[{el}]") for el in elements}
    else:
        n = _check_count(n_features)
        counts = {el: n for el in elements}
    for el in elements:
        if counts[el] > sizes[el]:
            raise ConfigError(f"n_features for {el} is {counts[el]}, but the feature set has only "
                              f"{sizes[el]} functions for {el}")
    return counts


def select_per_element(cache, method: str, n_features: int | Mapping[str, int], frame_ids: Iterable[int] | None = None,
                       max_rows: int | None = 20000, seed: int = 0, **kw) -> dict[str, list[int]]:
    """Run the filter ``method`` once per element of the descriptor cache.

    ``cache``: a :class:`~meltpot.descriptors.cache.DescriptorCache` or its path.
    ``n_features``: one count for every element or ``{element: count}`` naming each element.
    ``frame_ids``: the frames whose atoms form the rows (the training split's frames; None:
    all rows). ``max_rows``/``seed``: row subsampling per element (the same seed for each).
    Further keywords go to the selector (:func:`make_filter`).

    Returns ``{element: [feature indices in selection order]}`` (indices into the cache's
    feature set for that element).
    """
    from ..descriptors.cache import DescriptorCache

    own = not isinstance(cache, DescriptorCache)
    c = DescriptorCache(cache) if own else cache
    try:
        ids = None if frame_ids is None else np.asarray(list(frame_ids), dtype=np.int64)
        X = {el: c.features(el, ids) for el in c.elements}
        return select_per_element_arrays(X, method, n_features, max_rows=max_rows, seed=seed,
                                         source=f"descriptor cache {c.path}", **kw)
    finally:
        if own:
            c.close()


def select_per_element_arrays(features: Mapping[str, np.ndarray], method: str, n_features: int | Mapping[str, int],
                              max_rows: int | None = 20000, seed: int = 0, source: str = "features",
                              **kw) -> dict[str, list[int]]:
    """:func:`select_per_element` on arrays ``{element: (rows, F) feature matrix}`` (e.g. a
    training set with appended noise columns); ``source`` names them in errors."""
    make_filter(method, 1, max_rows=max_rows, seed=seed, **kw)  # validates name and options first
    elements = list(features)
    counts = _counts(n_features, elements, {el: np.shape(features[el])[1] for el in elements})
    out: dict[str, list[int]] = {}
    for el in elements:
        X = np.asarray(features[el], dtype=float)
        if X.shape[0] < 2:
            raise MeltpotError(f"{source}: element {el} has {X.shape[0]} atom(s) in the selected frames; "
                               "a filter needs at least 2")
        if not np.all(np.isfinite(X)):
            raise MeltpotError(f"{source}: element {el} has non-finite features")
        sel = make_filter(method, counts[el], max_rows=max_rows, seed=seed, **kw).fit(X)
        out[el] = [int(i) for i in sel.selected_idx_]
    return out


def filtered_featureset(featureset, selection: Mapping[str, Iterable[int]], name: str | None = None):
    """The feature set with only the selected functions per element, in their original order.

    ``selection`` (e.g. from :func:`select_per_element`) must name every element of the
    feature set (an element network needs inputs) with valid, distinct, non-empty indices.
    """
    elements = featureset.elements
    unknown = sorted(set(selection) - set(elements))
    missing = [e for e in elements if e not in selection]
    if unknown or missing:
        raise ConfigError(f"selection must name exactly the feature set's elements {', '.join(elements)}"
                          + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else "")
                          + (f"; missing: {', '.join(missing)}" if missing else ""))
    keep: dict[str, list[int]] = {}
    for el in elements:
        idx = [int(i) for i in selection[el]]
        n = featureset.n_features(el)
        if not idx:
            raise ConfigError(f"selection for {el} is empty")
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise ConfigError(f"selection for {el}: indices {bad[:5]} out of range (0..{n - 1})")
        if len(set(idx)) != len(idx):
            raise ConfigError(f"selection for {el} lists an index twice")
        keep[el] = sorted(idx)
    return featureset.subset(keep, name=name)
