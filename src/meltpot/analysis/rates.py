"""Nucleation rates from replica onset times with right censoring.

Every replica of an isothermal run at temperature T gives one time, counted from the start of
the isothermal stage in the time unit of its table (ps in metal units, fs in real, τ in lj):
its onset (:func:`meltpot.analysis.nucleation.run_passage`; by default the first frame whose
largest solid cluster reaches ``size`` atoms, interpolated) when it crystallised within the
run, else the time of its last frame, a right-censored time (the liquid survived at least
that long). Censored replicas stay in every estimate: dropping them biases the waiting time
low and the rate high.

* :func:`survival`: Kaplan–Meier S(t) with Greenwood's variance and a pointwise log–log
  (Kalbfleisch–Prentice) confidence band.
* :func:`poisson_rate`: waiting times exponential (a constant rate k per liquid run, the
  Poisson model): maximum likelihood k = d / E (d events, E the total time at risk with the
  censored times included), mean first-passage time τ = 1/k, and Garwood's chi-square
  interval for a Poisson count d over the exposure E,
  [χ²_{α/2}(2d) / 2E, χ²_{1−α/2}(2d+2) / 2E]; with d = 0 only the upper end exists.
* :func:`left_truncate`: an optional lag t0 (the transient after the quench before steady-state
  nucleation): only replicas still liquid at t0 are at risk, with times counted from t0.
* :func:`rate_units`: J = k / V (V the mean liquid volume of the replicas, from the tables'
  ``volume`` column) in m⁻³ s⁻¹ and in 10³⁰ m⁻³ s⁻¹ (metal and real units; σ⁻³ τ⁻¹ in lj).
* :func:`replica_onsets` / :func:`rate_table` / :func:`plot_survival`: per-run tables → one
  row per replica → one row per (label, T) → survival curves and J(T). Labels put several
  sets of runs (the reference and an ML potential) side by side.

The nucleation pathway: the CNA composition (fcc, hcp, bcc, ico, other fractions) of the
largest solid cluster in the onset frame, the first dumped frame at or over the criterion
(:func:`meltpot.analysis.local_order.cluster_cna`, columns ``cluster_<class>`` of the cluster
tables), per replica and averaged per temperature over the replicas that crystallised.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MeltpotError
from .nucleation import RUN_PATTERN, read_run_table, run_list, run_passage

#: m⁻³ s⁻¹ per (length unit)⁻³ (time unit)⁻¹ of the unit systems with an SI meaning:
#: Å⁻³ ps⁻¹ = 10³⁰ m⁻³ × 10¹² s⁻¹ (metal), Å⁻³ fs⁻¹ = 10³⁰ m⁻³ × 10¹⁵ s⁻¹ (real)
SI_RATE = {"metal": 1.0e42, "real": 1.0e45}
TIME_UNIT = {"metal": "ps", "real": "fs", "lj": "τ"}
LENGTH_UNIT = {"metal": "Å", "real": "Å", "lj": "σ"}
#: the reported unit of J in metal and real units: 10³⁰ m⁻³ s⁻¹
J_SCALE = 1.0e30
#: CNA classes of the pathway columns
PATHWAY = ("fcc", "hcp", "bcc", "ico", "other")


def _onsets(times, observed, what: str = "onsets") -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(times, dtype=float)
    o = np.asarray(observed)
    if t.ndim != 1 or o.shape != t.shape:
        raise MeltpotError(f"{what}: times and observed flags must be 1-D of one length "
                           f"(got {t.shape} and {o.shape})")
    if len(t) == 0:
        raise MeltpotError(f"{what}: no replicas")
    bad = np.flatnonzero(~np.isfinite(t) | (t < 0))
    if len(bad):
        raise MeltpotError(f"{what}: replica {bad[0]} has time {t[bad[0]]}; times must be finite and >= 0")
    if o.dtype != bool:
        if not np.isin(o, (0, 1)).all():
            raise MeltpotError(f"{what}: observed flags must be booleans (1: crystallised, 0: censored)")
        o = o.astype(bool)
    return t, o


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise MeltpotError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)


# --------------------------------------------------------------------------- estimators
def left_truncate(times, observed, lag: float = 0.0) -> tuple[np.ndarray, np.ndarray, int]:
    """The replicas at risk after ``lag`` (time units of ``times``): ``(times − lag, observed,
    n_excluded)``. A replica whose time is at or before ``lag`` (it crystallised during the
    transient, or, at lag 0, was already over the criterion in the first frame: during the
    quench; or its run ended) is left out: the steady-state rate is conditional on the liquid
    surviving to ``lag`` (left truncation), so this is no bias."""
    t, o = _onsets(times, observed)
    if not (np.isfinite(lag) and lag >= 0):
        raise MeltpotError(f"lag must be finite and >= 0 (time units), got {lag}")
    keep = t > lag
    return t[keep] - lag, o[keep], int((~keep).sum())


def survival(times, observed, confidence: float = 0.95) -> pd.DataFrame:
    """Kaplan–Meier survival S(t) of right-censored times.

    One row per distinct time (a row at time 0 with S = 1 first unless a time is 0):
    ``time``, ``at_risk`` (times >= t), ``events``, ``censored`` (censorings at t; at a tie
    events come first), ``survival`` S(t) = Π (1 − d_i/n_i) over event times <= t,
    ``std_err`` (Greenwood: S·√Σ d_i/(n_i(n_i − d_i)); NaN once S = 0) and the pointwise
    ``lower``/``upper`` band at ``confidence``: log–log transform, S^exp(±z·√v) with
    v = Σ d_i/(n_i(n_i − d_i)) / (ln S)²; it stays in [0, 1] and is S itself where S is 1 or 0.
    """
    t, o = _onsets(times, observed)
    z = _z(_check_confidence(confidence))
    ut = np.unique(t)
    n = (t[None, :] >= ut[:, None]).sum(axis=1)
    at = t[None, :] == ut[:, None]
    d = (at & o[None, :]).sum(axis=1)
    c = (at & ~o[None, :]).sum(axis=1)
    S = np.cumprod(1.0 - d / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.cumsum(np.where(d > 0, d / (n * (n - d)), 0.0))  # inf once n = d
        se = np.where(S > 0, S * np.sqrt(g), np.nan)
        inner = (S > 0) & (S < 1)
        w = np.where(inner, z * np.sqrt(g) / np.abs(np.log(np.where(inner, S, 0.5))), 0.0)
        lower = np.where(inner, S ** np.exp(w), S)
        upper = np.where(inner, S ** np.exp(-w), S)
    out = pd.DataFrame({"time": ut, "at_risk": n, "events": d, "censored": c, "survival": S,
                        "std_err": se, "lower": lower, "upper": upper})
    if ut[0] > 0:
        first = pd.DataFrame({"time": [0.0], "at_risk": [len(t)], "events": [0], "censored": [0],
                              "survival": [1.0], "std_err": [0.0], "lower": [1.0], "upper": [1.0]})
        out = pd.concat([first, out], ignore_index=True)
    return out


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + 0.5 * confidence))


@dataclass
class PoissonRate:
    """Rate of exponential waiting times from right-censored replicas.

    ``events`` d (crystallised), ``censored``, ``exposure`` E (total time at risk, time
    units), ``k`` = d/E (1/time unit) with the Garwood interval ``k_lo``, ``k_hi`` at
    ``confidence`` (``k_lo`` = 0 and only the upper end when d = 0)."""

    events: int
    censored: int
    exposure: float
    k: float
    k_lo: float
    k_hi: float
    confidence: float

    @property
    def upper_only(self) -> bool:
        return self.events == 0

    @property
    def tau(self) -> float:
        """Mean first-passage (waiting) time 1/k (time units; inf with no event)."""
        return 1.0 / self.k if self.k > 0 else float("inf")

    @property
    def tau_lo(self) -> float:
        return 1.0 / self.k_hi

    @property
    def tau_hi(self) -> float:
        return 1.0 / self.k_lo if self.k_lo > 0 else float("inf")


def poisson_rate(times, observed, confidence: float = 0.95) -> PoissonRate:
    """Maximum-likelihood rate k = d / E of exponential waiting times (``times``: onset, or
    the run length when not ``observed``, time units), with Garwood's exact chi-square
    interval for a Poisson count d over the exposure E:
    k_lo = χ²_{α/2}(2d) / 2E, k_hi = χ²_{1−α/2}(2d + 2) / 2E, α = 1 − ``confidence``.
    With d = 0: k_lo = 0 and k_hi = χ²_{1−α/2}(2) / 2E = ln(2/α)/E (3.69/E at 95 %),
    the upper end of the same interval (a one-sided 1 − α/2 bound)."""
    from scipy.stats import chi2

    t, o = _onsets(times, observed)
    a = 1.0 - _check_confidence(confidence)
    d = int(o.sum())
    E = float(t.sum())
    if not E > 0:
        raise MeltpotError(f"the replicas have no time at risk (total {E}): every time is 0")
    lo = float(chi2.ppf(0.5 * a, 2 * d)) / (2.0 * E) if d > 0 else 0.0
    hi = float(chi2.ppf(1.0 - 0.5 * a, 2 * d + 2)) / (2.0 * E)
    return PoissonRate(d, int(len(t) - d), E, d / E, lo, hi, float(confidence))


def rate_units(units: str) -> dict:
    """Units of a rate table: ``time`` and ``length`` names, ``J`` (the reported unit of
    J = k/V), ``J_factor`` (J in that unit per k/V in 1/(time·length³)) and ``SI_factor``
    (m⁻³ s⁻¹ per k/V; NaN in lj units, which have no SI meaning)."""
    if units not in TIME_UNIT:
        raise MeltpotError(f"units {units!r}: nucleation rates know {', '.join(TIME_UNIT)}")
    if units in SI_RATE:
        si = SI_RATE[units]
        return {"time": TIME_UNIT[units], "length": LENGTH_UNIT[units], "J": "1e30 m^-3 s^-1",
                "J_factor": si / J_SCALE, "SI_factor": si}
    return {"time": "τ", "length": "σ", "J": "σ^-3 τ^-1", "J_factor": 1.0, "SI_factor": float("nan")}


# --------------------------------------------------------------------------- files → tables
def labelled_runs(tables: Sequence = (), index=None, groups: Sequence[Sequence[str]] = (),
                  pattern: str = RUN_PATTERN, label: str = "runs") -> list[tuple[str, float, str, Path]]:
    """(label, T, replica, path) of every per-run table: the ``index`` CSV's rows (columns T,
    path, optionally replica and label) and the ``tables`` (label ``label``), then each group
    ``(LABEL, table, …)``; T and replica of tables from ``pattern`` in their file names
    (:func:`meltpot.analysis.nucleation.run_list`). A (label, T, replica) given twice is an
    error naming both files."""
    out = []
    if tables or index:
        labels = [label] * len(tables)
        if index:
            idx = pd.read_csv(index)
            labels = ([str(x) for x in idx["label"]] if "label" in idx else [label] * len(idx)) + labels
        out += [(lab, T, rep, p) for lab, (T, rep, p) in zip(labels, run_list(tables, index, pattern))]
    for group in groups:
        if len(group) < 2:
            raise MeltpotError(f"--runs LABEL TABLE …: {' '.join(group) or 'an empty group'} names no tables")
        out += [(str(group[0]), T, rep, p) for T, rep, p in run_list(group[1:], None, pattern)]
    if not out:
        raise MeltpotError("rates: no per-run tables given (files, --runs LABEL FILE … or --index)")
    seen = {}
    for lab, T, rep, p in out:
        key = (lab, T, str(rep))
        if key in seen:
            raise MeltpotError(f"{p}: label {lab!r}, T={T:g}, replica {rep} is also {seen[key]}")
        seen[key] = p
    return out


def replica_onsets(runs: Iterable[tuple[str, float, object, Path]], criterion: str = "cluster",
                   size: float = 100.0, level: float = 0.4, hold: float = 0.0,
                   from_first_frame: bool = False, volume: float | None = None) -> pd.DataFrame:
    """One row per replica from its per-run table (``runs``: (label, T, replica, path)).

    Columns ``label``, ``T``, ``replica``, ``observed`` (crystallised in the run), ``time``
    (the onset, else the last frame's time: right-censored), ``t_end``, ``volume`` (mean
    ``volume`` column over the frames up to the onset frame, all frames when censored; or
    ``volume``), ``onset_frame`` (the row used for the pathway: the first frame at or over the
    criterion), ``cluster_size`` (largest cluster there, atoms), ``pathway_<class>`` (its
    ``cluster_<class>`` CNA fractions; NaN when censored or when the table has no such
    columns), ``path``. Criterion and ``hold`` as in
    :func:`meltpot.analysis.nucleation.run_passage`.
    """
    if volume is not None and not (np.isfinite(volume) and volume > 0):
        raise MeltpotError(f"volume must be > 0 (Å³ or σ³), got {volume}")
    rows = []
    for label, T, rep, path in runs:
        source = f"{path} (label {label}, T={T:g}, replica {rep})"
        table = read_run_table(path, T, rep, from_first_frame)
        if table.empty:
            raise MeltpotError(f"{source}: the table has no rows")
        p, t = run_passage(table, criterion, level, size, hold, source)
        if p.reached and p.time < 0:
            raise MeltpotError(f"{source}: onset at negative time {p.time:g}; times must count from the "
                               "isothermal start (--from-first-frame)")
        last = p.index if p.reached else len(table) - 1
        if volume is not None:
            V = float(volume)
        elif "volume" in table:
            V = float(np.mean(table["volume"].to_numpy(float)[: last + 1]))
            if not (np.isfinite(V) and V > 0):
                raise MeltpotError(f"{source}: the `volume` column gives {V} over the frames up to row {last}")
        else:
            raise MeltpotError(f"{source}: no `volume` column (a table from an older `meltpot analyze "
                               "clusters`/`cna`): give --volume, or write the table again (workflow: "
                               "snakemake -R nucleation_order)")
        frame, size_there = -1, np.nan
        if p.reached:
            frame = int(table["frame"].iloc[last]) if "frame" in table else int(last)
            if "largest_cluster" in table:
                size_there = float(table["largest_cluster"].iloc[last])
        row = {"label": str(label), "T": float(T), "replica": rep, "observed": bool(p.reached),
               "time": float(p.time if p.reached else t[-1]), "t_end": float(t[-1]), "volume": V,
               "onset_frame": frame, "cluster_size": size_there}
        have = all(f"cluster_{c}" in table for c in PATHWAY)
        for c in PATHWAY:
            row[f"pathway_{c}"] = float(table[f"cluster_{c}"].iloc[last]) if p.reached and have else np.nan
        rows.append(row | {"path": str(path)})
    return pd.DataFrame(rows)


def rate_table(onsets: pd.DataFrame, confidence: float = 0.95, lag: float = 0.0,
               units: str = "metal") -> pd.DataFrame:
    """One row per label and temperature (labels in order of appearance, T ascending) from
    :func:`replica_onsets`.

    ``replicas``, ``events``, ``censored``, ``excluded`` (at or before ``lag``, see
    :func:`left_truncate`), ``lag``, ``exposure`` (total time at risk after the lag),
    ``k``/``k_lo``/``k_hi`` (1/time), ``tau``/``tau_lo``/``tau_hi`` (= 1/k: mean waiting time
    after the lag; the first-passage time from the isothermal start is lag + τ),
    ``naive_mean`` (mean onset − lag of the crystallised replicas only: biased low, for
    comparison), ``volume`` (mean over the replicas at risk, length³), ``J``/``J_lo``/``J_hi``
    in ``J_unit`` (10³⁰ m⁻³ s⁻¹; σ⁻³ τ⁻¹ in lj units), ``J_SI``… (m⁻³ s⁻¹), ``interval``
    ("two-sided", "upper bound" with no event, "none" with no replica at risk), ``confidence``,
    ``pathway_<class>`` (mean over the crystallised replicas at risk that have one) and
    ``pathway_n``, ``time_unit``."""
    confidence = _check_confidence(confidence)
    u = rate_units(units)
    need = {"label", "T", "time", "observed", "volume"}
    if not need <= set(onsets.columns):
        raise MeltpotError(f"replica table needs columns {sorted(need)}, has {list(onsets.columns)}")
    rows = []
    for label in pd.unique(onsets["label"]):
        sub = onsets[onsets["label"] == label]
        for T in sorted(sub["T"].unique()):
            g = sub[sub["T"] == T]
            what = f"label {label}, T={T:g}"
            try:
                tt, oo, excluded = left_truncate(g["time"], g["observed"].astype(bool), lag)
            except MeltpotError as exc:
                raise MeltpotError(f"{what}: {exc}") from None
            kept = g[g["time"].to_numpy(float) > lag]
            row = {"label": label, "T": float(T), "replicas": len(g), "excluded": excluded, "lag": float(lag)}
            if len(tt) == 0:
                rows.append(row | {"events": 0, "censored": 0, "exposure": 0.0, "interval": "none"})
                continue
            r = poisson_rate(tt, oo, confidence)
            V = float(kept["volume"].mean())
            row |= {"events": r.events, "censored": r.censored, "exposure": r.exposure,
                    "k": r.k, "k_lo": r.k_lo, "k_hi": r.k_hi, "tau": r.tau, "tau_lo": r.tau_lo,
                    "tau_hi": r.tau_hi, "naive_mean": float(tt[oo].mean()) if r.events else np.nan,
                    "volume": V}
            for name, k in (("J", r.k), ("J_lo", r.k_lo), ("J_hi", r.k_hi)):
                row[name] = k / V * u["J_factor"]
                row[name.replace("J", "J_SI", 1)] = k / V * u["SI_factor"]
            row |= {"J_unit": u["J"], "interval": "upper bound" if r.upper_only else "two-sided"}
            crystallised = kept[kept["observed"].astype(bool)]
            cols = [f"pathway_{c}" for c in PATHWAY]
            if set(cols) <= set(crystallised.columns):
                have = crystallised[cols].dropna()
                row |= {c: float(have[c].mean()) if len(have) else np.nan for c in cols}
                row["pathway_n"] = len(have)
            rows.append(row)
    order = ["label", "T", "replicas", "events", "censored", "excluded", "lag", "exposure", "k", "k_lo", "k_hi",
             "tau", "tau_lo", "tau_hi", "naive_mean", "volume", "J", "J_lo", "J_hi", "J_unit", "J_SI",
             "J_SI_lo", "J_SI_hi", "interval", "confidence"] + [f"pathway_{c}" for c in PATHWAY] + \
        ["pathway_n", "time_unit"]
    out = pd.DataFrame(rows)
    out["confidence"] = confidence
    out["time_unit"] = u["time"]
    return out.reindex(columns=order)


def rates_from_files(runs, confidence: float = 0.95, lag: float = 0.0, units: str = "metal",
                     **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rate table, replica table) from :func:`labelled_runs` (keywords of
    :func:`replica_onsets`)."""
    onsets = replica_onsets(runs, **kwargs)
    return rate_table(onsets, confidence, lag, units), onsets


# --------------------------------------------------------------------------- plot
def plot_survival(onsets: pd.DataFrame, rates: pd.DataFrame, path: str | Path, lag: float = 0.0,
                  confidence: float = 0.95, time_label: str = "time (ps)", T_label: str = "T (K)") -> None:
    """One panel per temperature: the Kaplan–Meier S(t) of each label (steps, its band
    shaded, censored replicas as ticks) with the exponential model exp(−k (t − lag)) dashed;
    a last panel with J(T) and its interval per label (log scale; a triangle for an upper
    bound)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temps = sorted(onsets["T"].unique())
    labels = list(pd.unique(onsets["label"]))
    colours = {lab: f"C{i}" for i, lab in enumerate(labels)}
    fig, axes = plt.subplots(1, len(temps) + 1, figsize=(4.0 * (len(temps) + 1), 3.6), squeeze=False)
    for ax, T in zip(axes[0], temps):
        for lab in labels:
            g = onsets[(onsets["label"] == lab) & (onsets["T"] == T)]
            if g.empty:
                continue
            tt, oo, _ = left_truncate(g["time"], g["observed"].astype(bool), lag)
            if len(tt) == 0:
                continue
            km = survival(tt, oo, confidence)
            x = km["time"].to_numpy() + lag
            col = colours[lab]
            ax.step(x, km["survival"], where="post", color=col, label=f"{lab}: Kaplan–Meier")
            ax.fill_between(x, km["lower"], km["upper"], step="post", color=col, alpha=0.2, lw=0)
            cens = km["censored"].to_numpy() > 0
            ax.plot(x[cens], km["survival"].to_numpy()[cens], "|", color=col, ms=10)
            r = rates[(rates["label"] == lab) & (rates["T"] == T)]
            if len(r) and r["k"].iloc[0] > 0:
                ts = np.linspace(lag, max(x.max(), lag), 100)
                ax.plot(ts, np.exp(-r["k"].iloc[0] * (ts - lag)), "--", color=col, lw=1,
                        label=f"{lab}: exp, τ = {r['tau'].iloc[0]:.3g}")
        ax.set_title(f"T = {T:g}")
        ax.set_xlabel(time_label)
        ax.set_ylabel("S(t): fraction still liquid")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    ax = axes[0][-1]
    for lab in labels:
        r = rates[rates["label"] == lab]
        col = colours[lab]
        two = r[r["interval"] == "two-sided"]
        if len(two):
            ax.errorbar(two["T"], two["J"], yerr=[two["J"] - two["J_lo"], two["J_hi"] - two["J"]], fmt="o-",
                        color=col, capsize=3, label=lab)
        up = r[r["interval"] == "upper bound"]
        if len(up):
            ax.plot(up["T"], up["J_hi"], "v", color=col, mfc="none", label=f"{lab}: upper bound")
    unit = rates["J_unit"].dropna().iloc[0] if rates["J_unit"].notna().any() else ""
    if (rates["J_hi"] > 0).any():
        ax.set_yscale("log")
    ax.set_xlabel(T_label)
    ax.set_ylabel(f"J ({unit})")
    ax.set_title(f"nucleation rate, {confidence:.0%} interval")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
