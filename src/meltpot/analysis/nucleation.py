"""Nucleation, TTT, enthalpy and two-phase analysis of time series and tables.

Time series are 1-D arrays sampled at increasing times (ps, or steps; results carry the
same unit). A threshold crossing is located by linear interpolation between the two
frames around it; a criterion never met gives NaN with ``reached = False``.

* :func:`first_passage`, :func:`onset_time` (largest solid cluster over a size),
  :func:`time_to_fraction` (thesis: 40 % crystalline atoms by CNA, fcc + hcp + bcc).
* :func:`run_times` / :func:`ttt_table` / :func:`plot_ttt`: replicas at several
  temperatures → T, mean, std, reached / replicas; TTT plot (T vs log time). Nucleation
  rates with the censored replicas counted are in :mod:`meltpot.analysis.rates`.
* :func:`enthalpy_drop`: the crystallisation drop of H(t).
* :func:`analyze_ramp`: H(T) from a heating or cooling ramp → two linear branches, the
  transition (a jump: melting / crystallisation, with its latent heat; or a kink: glass
  transition, from the intersection), and C_P = dH/dT of each branch.
* :func:`classify_two_phase` / :func:`two_phase_melting_point`: solid–liquid coexistence
  runs → end state per run → T_m.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MeltpotError

#: 1 eV per atom in kJ/mol
EV_PER_ATOM_TO_KJ_PER_MOL = 96.48533212


def _series(t, y, what: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    if t.ndim != 1 or t.shape != y.shape:
        raise MeltpotError(f"{what}: time and values must be 1-D arrays of the same length "
                           f"(got {t.shape} and {y.shape})")
    if len(t) == 0:
        raise MeltpotError(f"{what}: empty time series")
    if np.any(np.diff(t) <= 0):
        raise MeltpotError(f"{what}: times must increase strictly")
    return t, y


# --------------------------------------------------------------------------- first passage
@dataclass
class Passage:
    """First passage of a series over a threshold: ``time`` (NaN when not reached),
    ``reached``, ``index`` of the first frame at/over the threshold (-1 when not reached),
    ``at_start`` (already over it in the first frame: time = first time)."""

    time: float
    reached: bool
    index: int
    at_start: bool = False


def first_passage(t, y, threshold: float, hold: float = 0.0, above: bool = True) -> Passage:
    """First time ``y`` reaches ``threshold`` (``y >= threshold``; ``y <= threshold`` when
    ``above`` is False), interpolated linearly between the frames around the crossing.

    ``hold`` > 0 (time units of ``t``): a crossing counts only if ``y`` stays at/over the
    threshold in every frame up to ``crossing + hold``; the series must extend that far,
    so a crossing less than ``hold`` before its end is not accepted (it could still be a
    fluctuation). Earlier crossings that fall back are skipped.
    """
    t, y = _series(t, y, "first passage")
    over = y >= threshold if above else y <= threshold
    over &= np.isfinite(y)
    idx = np.flatnonzero(over)
    if len(idx) == 0:
        return Passage(float("nan"), False, -1)
    # first frame of every run of consecutive frames at/over the threshold
    starts = idx[np.concatenate([[True], np.diff(idx) > 1])]
    # last frame of the run each start belongs to
    ends = idx[np.concatenate([np.diff(idx) > 1, [True]])]
    for k0, k1 in zip(starts, ends):
        if k0 == 0:
            tc = t[0]
        else:
            y0, y1 = y[k0 - 1], y[k0]
            frac = (threshold - y0) / (y1 - y0) if np.isfinite(y0) and y1 != y0 else 1.0
            tc = t[k0 - 1] + float(np.clip(frac, 0.0, 1.0)) * (t[k0] - t[k0 - 1])
        if hold > 0:
            # stays over until tc + hold: the run must last to a frame at/after tc + hold
            if t[k1] < tc + hold:
                continue
        return Passage(float(tc), True, int(k0), bool(k0 == 0))
    return Passage(float("nan"), False, -1)


def onset_time(t, largest_cluster, size: float, hold: float = 0.0) -> Passage:
    """Nucleation onset: first passage of the largest solid cluster (atoms) over ``size``;
    ``hold`` as in :func:`first_passage` (the cluster must stay that large that long)."""
    return first_passage(t, largest_cluster, size, hold)


def crystalline_fraction(table: pd.DataFrame) -> np.ndarray:
    """fcc + hcp + bcc fraction per row of a CNA table (its ``crystalline`` column if any)."""
    if "crystalline" in table:
        return table["crystalline"].to_numpy(float)
    missing = [c for c in ("fcc", "hcp", "bcc") if c not in table]
    if missing:
        raise MeltpotError(f"CNA table lacks the column(s) {missing}")
    return table[["fcc", "hcp", "bcc"]].to_numpy(float).sum(axis=1)


def time_to_fraction(t, fraction, level: float = 0.4, hold: float = 0.0) -> Passage:
    """Time until the crystalline fraction first reaches ``level`` (0.4: the thesis's TTT
    criterion, 40 % of atoms fcc/hcp/bcc by CNA)."""
    if not 0.0 < level <= 1.0:
        raise MeltpotError(f"fraction level must be in (0, 1], got {level}")
    return first_passage(t, fraction, level, hold)


# --------------------------------------------------------------------------- TTT
def run_passage(table: pd.DataFrame, criterion: str = "fraction", level: float = 0.4,
                size: float = 100.0, hold: float = 0.0, source: str = "table") -> tuple[Passage, np.ndarray]:
    """The criterion's :class:`Passage` in one run's table and the table's times (column
    ``time``). ``criterion`` "fraction": time to ``level`` crystalline fraction (CNA
    columns); "cluster": onset with the largest cluster over ``size`` atoms
    (``largest_cluster``); ``hold`` as in :func:`first_passage`. Errors name ``source``."""
    if "time" not in table:
        raise MeltpotError(f"{source}: no `time` column")
    t = table["time"].to_numpy(float)
    try:
        if criterion == "fraction":
            p = time_to_fraction(t, crystalline_fraction(table), level, hold)
        elif criterion == "cluster":
            if "largest_cluster" not in table:
                raise MeltpotError("no `largest_cluster` column")
            p = onset_time(t, table["largest_cluster"].to_numpy(float), size, hold)
        else:
            raise MeltpotError(f"criterion must be 'fraction' or 'cluster', got {criterion!r}")
    except MeltpotError as exc:
        raise MeltpotError(f"{source}: {exc}") from None
    return p, t


def run_times(table: pd.DataFrame, criterion: str = "fraction", level: float = 0.4,
              size: float = 100.0, hold: float = 0.0, source: str = "table") -> dict:
    """Nucleation/crystallisation time of one run from its table (:func:`run_passage`).
    Returns ``time``, ``reached`` and ``t_end`` (the last time: a lower bound when not
    reached)."""
    p, t = run_passage(table, criterion, level, size, hold, source)
    return {"time": p.time, "reached": p.reached, "t_end": float(t[-1])}


def ttt_table(runs: pd.DataFrame) -> pd.DataFrame:
    """TTT table from per-run times (columns ``T``, ``time`` NaN when not reached, optional
    ``reached``): per temperature ``mean``, ``std`` (ddof 1; NaN with one value), ``min``,
    ``max`` of the reached runs, ``n_reached``, ``n_replicas``. Runs that never reached the
    criterion count in ``n_replicas`` only (their time is censored, not averaged)."""
    if not {"T", "time"} <= set(runs.columns):
        raise MeltpotError(f"runs table needs columns T and time, has {list(runs.columns)}")
    r = runs.copy()
    if "reached" not in r:
        r["reached"] = np.isfinite(r["time"].to_numpy(float))
    rows = []
    for T, g in r.groupby("T", sort=True):
        times = g.loc[g["reached"].astype(bool), "time"].to_numpy(float)
        rows.append({"T": float(T), "mean": float(times.mean()) if len(times) else np.nan,
                     "std": float(times.std(ddof=1)) if len(times) > 1 else np.nan,
                     "min": float(times.min()) if len(times) else np.nan,
                     "max": float(times.max()) if len(times) else np.nan,
                     "n_reached": int(len(times)), "n_replicas": int(len(g))})
    return pd.DataFrame(rows)


def ttt_from_tables(tables: Iterable[tuple[float, object, pd.DataFrame]], **kwargs) -> pd.DataFrame:
    """Per-run times from ``(T, replica, table)`` triples (keywords of :func:`run_times`):
    columns ``T``, ``replica``, ``time``, ``reached``, ``t_end``."""
    rows = []
    for T, rep, table in tables:
        kw = dict(kwargs)
        kw.setdefault("source", f"T={T} replica {rep}")
        rows.append({"T": float(T), "replica": rep} | run_times(table, **kw))
    return pd.DataFrame(rows, columns=["T", "replica", "time", "reached", "t_end"])



#: default pattern for T and replica in per-run file names: T600_r0.csv, T600.0_rep3_cna.csv, …
RUN_PATTERN = r"T(?P<T>\d+(?:\.\d+)?)\D*?_r(?:ep)?(?P<replica>\d+)"


def run_list(tables=(), index=None, pattern: str = RUN_PATTERN) -> list[tuple[float, str, Path]]:
    """(T, replica, path) of every per-run table: the rows of an ``index`` CSV (columns T, path
    and optionally replica; paths relative to it), then the ``tables`` with T and replica from
    the named groups of ``pattern`` in their file names."""
    runs = []
    if index:
        idx = pd.read_csv(index)
        missing = {"T", "path"} - set(idx.columns)
        if missing:
            raise MeltpotError(f"{index}: needs columns T, path (and replica), lacks {sorted(missing)}")
        base = Path(index).parent
        for k, row in idx.iterrows():
            p = Path(str(row["path"]))
            runs.append((float(row["T"]), str(row["replica"]) if "replica" in idx else str(k),
                         p if p.is_absolute() else base / p))
    regex = re.compile(pattern)
    for f in tables:
        m = regex.search(Path(f).name)
        if m is None or "T" not in m.groupdict():
            raise MeltpotError(f"{f}: the file name does not match --pattern {pattern!r} "
                               "(named groups T and replica); use --index runs.csv instead")
        runs.append((float(m.group("T")), m.groupdict().get("replica") or Path(f).stem, Path(f)))
    if not runs:
        raise MeltpotError("ttt: no per-run tables given (files or --index)")
    return runs


def read_run_table(path, T, replica, from_first_frame: bool = False) -> pd.DataFrame:
    """One run's CSV table; ``from_first_frame``: times counted from its first row."""
    path = Path(path)
    if not path.exists():
        raise MeltpotError(f"{path}: per-run table not found (T={T}, replica {replica})")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MeltpotError(f"{path}: not a CSV table (T={T}, replica {replica}): {exc}") from None
    if from_first_frame and len(table) and "time" in table:
        table["time"] = table["time"] - table["time"].iloc[0]
    return table


def ttt_from_files(runs, from_first_frame: bool = False, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(TTT table, per-run times) from the per-run CSV files of :func:`run_list` (keywords of
    :func:`run_times`); ``from_first_frame``: times counted from each table's first row."""
    triples = [(T, rep, read_run_table(path, T, rep, from_first_frame)) for T, rep, path in runs]
    per_run = ttt_from_tables(triples, **kwargs)
    return ttt_table(per_run), per_run

# --------------------------------------------------------------------------- enthalpy vs time
@dataclass
class Drop:
    """Crystallisation drop of H(t): ``time`` when H first falls ``level`` of the way from
    ``H_before`` to ``H_after`` (NaN, ``found`` False when there is no significant drop);
    ``dH = H_after − H_before`` (< 0); ``noise``: std of H in the first window."""

    time: float
    found: bool
    H_before: float
    H_after: float
    dH: float
    noise: float


def enthalpy_drop(t, H, window: float = 0.1, level: float = 0.5, min_drop: float | None = None,
                  smooth: int = 5) -> Drop:
    """Detect the drop of the enthalpy when the liquid crystallises (NPT at fixed T).

    ``H_before``/``H_after``: medians over the first/last ``window`` fraction of the run
    (at least 3 frames each); the drop counts when ``H_before − H_after`` exceeds
    ``min_drop`` (default 5 × the std of H in the first window). Its time is the first
    passage of the ``smooth``-frame moving average of H below
    ``H_before + level·dH`` (level 0.5: the half-drop time; 0.1 an earlier onset).
    """
    t, H = _series(t, H, "enthalpy drop")
    n = len(t)
    w = max(3, int(round(window * n)))
    if 2 * w > n:
        raise MeltpotError(f"enthalpy drop: {n} frames are too few for two windows of {w}")
    h0, h1 = float(np.median(H[:w])), float(np.median(H[-w:]))
    noise = float(np.std(H[:w], ddof=1))
    threshold = 5.0 * noise if min_drop is None else float(min_drop)
    dH = h1 - h0
    if not -dH > threshold:
        return Drop(float("nan"), False, h0, h1, dH, noise)
    k = max(1, int(smooth))
    if k > 1:
        pad = np.concatenate([np.full(k // 2, H[0]), H, np.full(k - 1 - k // 2, H[-1])])
        Hs = np.convolve(pad, np.ones(k) / k, mode="valid")
    else:
        Hs = H
    p = first_passage(t, Hs, h0 + level * dH, above=False)
    return Drop(p.time, p.reached, h0, h1, dH, noise)


# --------------------------------------------------------------------------- enthalpy vs temperature
@dataclass
class LineFit:
    """H = intercept + slope·T over [T_min, T_max]; ``slope`` is C_P (energy/K in the unit
    of H, e.g. eV/atom/K); ``slope_err`` its standard error; ``n`` points."""

    slope: float
    intercept: float
    slope_err: float
    T_min: float
    T_max: float
    n: int

    def __call__(self, T):
        return self.intercept + self.slope * np.asarray(T, dtype=float)


def linear_fit(T, H) -> LineFit:
    """Least-squares line through (T, H) (at least 2 points)."""
    T = np.asarray(T, dtype=float)
    H = np.asarray(H, dtype=float)
    if len(T) < 2 or np.ptp(T) == 0:
        raise MeltpotError(f"a linear fit needs at least 2 distinct temperatures, got {len(T)}")
    A = np.column_stack([T, np.ones_like(T)])
    (slope, icpt), res, *_ = np.linalg.lstsq(A, H, rcond=None)
    dof = len(T) - 2
    s2 = float(np.sum((H - A @ [slope, icpt]) ** 2) / dof) if dof > 0 else np.nan
    err = float(np.sqrt(s2 / np.sum((T - T.mean()) ** 2))) if dof > 0 else np.nan
    return LineFit(float(slope), float(icpt), err, float(T.min()), float(T.max()), len(T))


@dataclass
class RampAnalysis:
    """H(T) ramp split into a low-T and a high-T linear branch.

    ``kind`` "jump" (first order: melting on heating / crystallisation on cooling) or "kink"
    (glass transition). ``T_transition``: the jump's temperature (midway between the two
    points around it) or the intersection of the two lines; ``latent_heat``:
    H_high(T) − H_low(T) at ``T_transition`` (0 for a kink); ``cp_low``/``cp_high``: the
    slopes (unit of H per K); ``split``: index (in T order) of the first high-branch point.
    """

    kind: str
    T_transition: float
    latent_heat: float
    cp_low: float
    cp_high: float
    low: LineFit
    high: LineFit
    split: int
    gap_significance: float

    def as_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("low", "high")}
        d.update({f"low_{k}": v for k, v in asdict(self.low).items()})
        d.update({f"high_{k}": v for k, v in asdict(self.high).items()})
        return d


def analyze_ramp(T, H, kind: str = "auto", min_points: int = 3, jump_sigma: float = 10.0,
                 T_range: tuple[float, float] | None = None) -> RampAnalysis:
    """Piecewise-linear analysis of H(T) from a heating or cooling ramp.

    Points are sorted by T (points outside ``T_range`` dropped). Every split with at least
    ``min_points`` points per side is tried; each side gets its own line, and the split with
    the smallest total squared residual is kept. With ``kind="auto"`` it is a "jump"
    (T_transition = midway between the two points around the split, latent heat = the gap
    between the lines there) when that gap exceeds ``jump_sigma`` residual standard
    deviations and the lines do not meet within one point spacing of the split; otherwise a
    "kink" (T_transition = the intersection of the lines, no latent heat).
    Units: H in eV (per atom or total) → C_P in eV/K; see :func:`per_atom_units`.
    """
    T = np.asarray(T, dtype=float)
    H = np.asarray(H, dtype=float)
    if T.shape != H.shape or T.ndim != 1:
        raise MeltpotError(f"H(T): T and H must be 1-D of equal length (got {T.shape}, {H.shape})")
    ok = np.isfinite(T) & np.isfinite(H)
    if T_range is not None:
        ok &= (T >= T_range[0]) & (T <= T_range[1])
    order = np.argsort(T[ok], kind="stable")
    T, H = T[ok][order], H[ok][order]
    n = len(T)
    if kind not in ("auto", "jump", "kink"):
        raise MeltpotError(f"kind must be 'auto', 'jump' or 'kink', got {kind!r}")
    if n < 2 * min_points:
        raise MeltpotError(f"H(T): {n} points are too few for two branches of {min_points}")
    # cumulative sums give every split's two least-squares lines without a loop over fits
    c = {k: np.concatenate([[0.0], np.cumsum(v)]) for k, v in
         (("1", np.ones(n)), ("t", T), ("h", H), ("tt", T * T), ("th", T * H), ("hh", H * H))}

    def sse(lo, hi):
        m, st, sh = c["1"][hi] - c["1"][lo], c["t"][hi] - c["t"][lo], c["h"][hi] - c["h"][lo]
        stt, sth, shh = c["tt"][hi] - c["tt"][lo], c["th"][hi] - c["th"][lo], c["hh"][hi] - c["hh"][lo]
        vtt, vth, vhh = stt - st * st / m, sth - st * sh / m, shh - sh * sh / m
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(vtt > 0, vhh - vth ** 2 / np.where(vtt > 0, vtt, 1.0), vhh)

    splits = np.arange(min_points, n - min_points + 1)
    total = sse(0, splits) + sse(splits, n)
    k = int(splits[np.argmin(total)])
    low, high = linear_fit(T[:k], H[:k]), linear_fit(T[k:], H[k:])
    dof = max(n - 4, 1)
    sigma = float(np.sqrt(max(total.min(), 0.0) / dof))
    T_mid = 0.5 * (T[k - 1] + T[k])
    gap = float(high(T_mid) - low(T_mid))
    # noise-free data: compare with round-off of H instead of a zero residual
    sigma = max(sigma, 1e-9 * float(np.max(np.abs(H))) + 1e-300)
    significance = abs(gap) / sigma
    ds = low.slope - high.slope
    T_cross = float((high.intercept - low.intercept) / ds) if ds != 0 else np.nan
    if kind == "auto":
        # a kink: the lines meet near the split (within one point spacing of the two points
        # around it); a jump: a significant gap and no such meeting point
        lo_T = T[k - 1] - (T[k - 1] - T[k - 2] if k >= 2 else 0.0)
        hi_T = T[k] + (T[k + 1] - T[k] if k + 1 < n else 0.0)
        meets = np.isfinite(T_cross) and lo_T <= T_cross <= hi_T
        kind = "jump" if significance > jump_sigma and not meets else "kink"
    if kind == "jump":
        Tt, L = float(T_mid), gap
    else:
        Tt, L = T_cross, 0.0
    return RampAnalysis(kind, Tt, L, low.slope, high.slope, low, high, k, float(significance))


def latent_heat(solid: LineFit, liquid: LineFit, T: float) -> float:
    """H_liquid(T) − H_solid(T) from separate branch fits (e.g. solid from heating, liquid
    from cooling) at a given T (e.g. T_m from two-phase runs)."""
    return float(liquid(T) - solid(T))


def per_atom_units(latent_eV_per_atom: float | None = None, cp_eV_per_K_atom: float | None = None,
                   molar_mass: float | None = None) -> dict:
    """Thesis units: latent heat eV/atom → kJ/mol; C_P eV/(K·atom) → J/(g·K) (needs the
    molar mass in g/mol, e.g. 26.98 for Al)."""
    out = {}
    if latent_eV_per_atom is not None:
        out["latent_kJ_per_mol"] = latent_eV_per_atom * EV_PER_ATOM_TO_KJ_PER_MOL
    if cp_eV_per_K_atom is not None:
        if molar_mass is None:
            raise MeltpotError("converting C_P to J/(g·K) needs the molar mass (g/mol)")
        out["cp_J_per_gK"] = cp_eV_per_K_atom * EV_PER_ATOM_TO_KJ_PER_MOL * 1000.0 / molar_mass
    return out


# --------------------------------------------------------------------------- two-phase
@dataclass
class TwoPhaseRun:
    """End state of one coexistence run: ``outcome`` "solid" (the crystal grew), "liquid"
    (it melted) or "coexist"; ``f_start``/``f_end``: crystalline fraction at the start and
    averaged over the final interval; ``T_final``/``T_final_std``: temperature over the
    final interval (NaN without a temperature series); ``T_set``: the run's label T."""

    T_set: float
    outcome: str
    f_start: float
    f_end: float
    T_final: float
    T_final_std: float


def classify_two_phase(t, fraction, temperature=None, T_set: float = np.nan, final: float | None = None,
                       tol: float = 0.15, f_start: float | None = None) -> TwoPhaseRun:
    """Classify a solid–liquid coexistence run from its crystalline-fraction trajectory.

    ``final``: length of the final averaging interval (time units; default the last 10 %
    of the run; the thesis averages NPH runs over the last 100 ps). ``f_start``: initial
    fraction (default: the first frame). The solid grew when the final mean fraction is
    above ``f_start + tol``, melted when below ``f_start − tol`` (or when no crystal is left,
    mean fraction < 0.02), otherwise both phases survive ("coexist"). ``tol`` should exceed
    the fraction's thermal noise and is a fraction of all atoms.
    """
    t, f = _series(t, fraction, "two-phase run")
    if final is None:
        final = 0.1 * (t[-1] - t[0])
    last = t >= t[-1] - final
    if last.sum() < 1:
        last[-1] = True
    f0 = float(f[0]) if f_start is None else float(f_start)
    f1 = float(np.mean(f[last]))
    if f1 < f0 - tol or f1 < 0.02:
        outcome = "liquid"
    elif f1 > f0 + tol:
        outcome = "solid"
    else:
        outcome = "coexist"
    if temperature is not None:
        _, T = _series(t, temperature, "two-phase run temperature")
        T_fin = float(np.mean(T[last]))
        T_std = float(np.std(T[last], ddof=1)) if last.sum() > 1 else 0.0
    else:
        T_fin, T_std = np.nan, np.nan
    return TwoPhaseRun(float(T_set), outcome, f0, f1, T_fin, T_std)


@dataclass
class MeltingPoint:
    """T_m from coexistence runs. ``method`` "coexistence" (mean of ``T_final`` over the
    runs where both phases survived; ``error`` = their std, or the mean T_final std of a
    single run), "bracket" (midpoint of the highest T where the solid grew and the lowest
    where it melted; ``error`` = half the gap), "inconsistent" (the solid grew above a T
    where it melted: midpoint reported anyway) or "none"/"above"/"below" (only one kind of
    outcome: ``T_low``/``T_high`` is the only bound, T_m NaN)."""

    T_m: float
    error: float
    method: str
    T_low: float
    T_high: float
    n_coexist: int


def two_phase_melting_point(runs: Sequence[TwoPhaseRun] | pd.DataFrame, use: str = "T_final") -> MeltingPoint:
    """T_m from classified runs (:func:`classify_two_phase`). ``use``: which temperature
    a run's outcome is attributed to in brackets, ``"T_final"`` (NPH: the steady T) when
    known, else ``"T_set"``."""
    df = runs.copy() if isinstance(runs, pd.DataFrame) else pd.DataFrame([asdict(r) for r in runs])
    if df.empty:
        raise MeltpotError("no two-phase runs given")
    missing = {"T_set", "outcome"} - set(df.columns)
    if missing:
        raise MeltpotError(f"two-phase runs lack the column(s) {sorted(missing)}")
    T_set = df["T_set"].astype(float)
    T_fin = df["T_final"].astype(float) if "T_final" in df else pd.Series(np.nan, index=df.index)
    T_fin = T_fin.where(np.isfinite(T_fin), T_set)  # runs without a temperature series
    temp = T_fin if use == "T_final" else T_set
    co = (df["outcome"] == "coexist").to_numpy()
    grew = temp[(df["outcome"] == "solid").to_numpy()]
    melt = temp[(df["outcome"] == "liquid").to_numpy()]
    T_low = float(grew.max()) if len(grew) else np.nan
    T_high = float(melt.min()) if len(melt) else np.nan
    if co.any():
        Tc = T_fin[co]
        if co.sum() > 1:
            err = float(Tc.std(ddof=1))
        else:
            err = float(df.loc[co, "T_final_std"].iloc[0]) if "T_final_std" in df else np.nan
        return MeltingPoint(float(Tc.mean()), err, "coexistence", T_low, T_high, int(co.sum()))
    if len(grew) and len(melt):
        method = "bracket" if T_low < T_high else "inconsistent"
        return MeltingPoint(0.5 * (T_low + T_high), 0.5 * abs(T_high - T_low), method, T_low, T_high, 0)
    method = "above" if len(grew) else "below" if len(melt) else "none"
    return MeltingPoint(np.nan, np.nan, method, T_low, T_high, 0)


# --------------------------------------------------------------------------- writers
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_csv(table: pd.DataFrame | Sequence | Mapping, path: str | Path) -> Path:
    """Write a table (DataFrame, list of dataclasses/dicts, or one dict) as CSV."""
    if isinstance(table, Mapping):
        table = pd.DataFrame([table])
    elif not isinstance(table, pd.DataFrame):
        table = pd.DataFrame([asdict(r) if hasattr(r, "__dataclass_fields__") else r for r in table])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


def plot_ttt(ttt: pd.DataFrame, path: str | Path, runs: pd.DataFrame | None = None,
             time_label: str = "time (ps)", T_label: str = "T (K)") -> None:
    """TTT diagram: T vs log time; crosses for single runs, the mean per T with its std
    joined by a line (as in the thesis, Fig. 3.7b); runs that never reached the criterion
    are drawn as open triangles at their last time (a lower bound)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    if runs is not None and len(runs):
        ok = runs["reached"].astype(bool) if "reached" in runs else np.isfinite(runs["time"])
        ax.plot(runs.loc[ok, "time"], runs.loc[ok, "T"], "x", color="tab:orange", label="runs")
        if "t_end" in runs and (~ok).any():
            ax.plot(runs.loc[~ok, "t_end"], runs.loc[~ok, "T"], ">", mfc="none", color="grey",
                    label="not reached (run end)")
    m = ttt[np.isfinite(ttt["mean"])]
    if len(m):
        ax.errorbar(m["mean"], m["T"], xerr=m["std"].fillna(0.0), fmt="o-", color="tab:blue", label="mean")
    ax.set_xscale("log")
    ax.set_xlabel(time_label)
    ax.set_ylabel(T_label)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_enthalpy_time(t, H, path: str | Path, drop: Drop | None = None, time_label: str = "time (ps)",
                       H_label: str = "H (eV/atom)") -> None:
    """H(t) with the detected crystallisation drop marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t, H, lw=0.8)
    if drop is not None and drop.found:
        ax.axvline(drop.time, color="tab:red", ls="--", lw=1, label=f"drop at {drop.time:.4g}")
        ax.axhline(drop.H_before, color="grey", ls=":", lw=0.8)
        ax.axhline(drop.H_after, color="grey", ls=":", lw=0.8)
        ax.legend(fontsize=8)
    ax.set_xlabel(time_label)
    ax.set_ylabel(H_label)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_ramp(T, H, result: RampAnalysis, path: str | Path, T_label: str = "T (K)",
              H_label: str = "H (eV/atom)") -> None:
    """H(T) points with both branch fits and the transition temperature."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot(T, H, "o", ms=3, color="k")
    for fit, name in ((result.low, "low-T branch"), (result.high, "high-T branch")):
        Ts = np.linspace(min(fit.T_min, result.T_transition), max(fit.T_max, result.T_transition), 50) \
            if np.isfinite(result.T_transition) else np.linspace(fit.T_min, fit.T_max, 50)
        ax.plot(Ts, fit(Ts), "-", lw=1, label=f"{name}: C_P = {fit.slope:.4g}")
    if np.isfinite(result.T_transition):
        label = (f"jump at {result.T_transition:.4g} (ΔH = {result.latent_heat:.4g})" if result.kind == "jump"
                 else f"crossover at {result.T_transition:.4g}")
        ax.axvline(result.T_transition, color="tab:red", ls=":", label=label)
    ax.set_xlabel(T_label)
    ax.set_ylabel(H_label)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_two_phase(series: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path,
                   time_label: str = "time (ps)") -> None:
    """Crystalline fraction vs time of coexistence runs: ``(label, t, fraction)`` each."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, t, f in series:
        ax.plot(t, f, lw=1, label=label)
    ax.set_xlabel(time_label)
    ax.set_ylabel("crystalline fraction")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
