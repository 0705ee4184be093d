"""Dynamics and transport: MSD, self-diffusion, Green–Kubo viscosity and interdiffusion.

Every function works on in-memory arrays. Units follow the data: LAMMPS ``metal`` (Å, ps,
eV, bar, K), ``real`` (Å, fs, kcal/mol, atm, K) or reduced ``lj`` units (σ, τ, ε, ε/σ³, ε/k_B;
k_B = 1). Where a unit conversion is needed (viscosity, Arrhenius energies) the ``units``
argument selects it.

Formulas (thesis §2.3, eqs. 2.15–2.22):

* MSD of species μ, averaged over atoms and time origins t₀ (eq. 2.15), self-diffusion from
  the Einstein relation R²(t) → 6 D t (eq. 2.16), fitted on a reproducible window
  (:func:`diffusion_window`).
* Shear viscosity η = V/(k_B T) ∫₀^∞ ⟨P_xy(t₀) P_xy(t₀+t)⟩ dt (eq. 2.22), averaged over xy, xz,
  yz (optionally also the two independent traceless diagonal combinations
  (P_xx−P_yy)/2 and (P_xx+P_yy−2P_zz)/(2√3), which have the same correlation function in an
  isotropic liquid).
* Interdiffusion of a binary A–B: the concentration current J = x_B Σ_{i∈A} v_i − x_A Σ_{j∈B} v_j
  (eq. 2.17), its autocorrelation C(t) = ⟨J(t₀+t)·J(t₀)⟩ (2.18), the Onsager coefficient
  L = 1/(3 N x_A x_B) ∫ C dt (2.20), the thermodynamic factor Φ = x_A x_B / S_CC(0) (2.21) and
  D_AB = L Φ = 1/(3 N S_CC(0)) ∫ C dt (2.19). N counts the A and B atoms. Without velocity
  cross-correlations L reduces to the Darken-like value x_B D_A + x_A D_B
  (:func:`darken_comparison`).

Green–Kubo integrals share one estimator (:func:`gk_integral`): FFT autocorrelations of many
independent samples (replicas × tensor/Cartesian components, split into blocks when there are
fewer than ``min_samples``), their mean, its running trapezoid integral and a plateau chosen
by a documented noise rule; the error bar is the standard error over the samples.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import fft as _fft

from ..errors import MeltpotError

__all__ = [
    "KB_EV", "KB_SI", "UNITS",
    "autocorrelation", "msd_per_species", "msd_direct", "unwrap_positions",
    "DiffusionFit", "DiffusionResult", "diffusion_window", "fit_diffusion", "diffusion_replicas",
    "GKResult", "gk_integral",
    "shear_components", "viscosity_prefactor", "ViscosityResult", "viscosity_gk",
    "concentration_current", "thermodynamic_factor", "InterdiffusionResult", "interdiffusion_gk",
    "darken_comparison",
    "ArrheniusFit", "arrhenius_fit",
    "write_msd_csv", "write_gk_csv", "plot_msd", "plot_gk", "plot_arrhenius",
]

KB_EV = 8.617333262e-5  # Boltzmann constant, eV/K
KB_SI = 1.380649e-23  # J/K

# Labels per unit system: length, time, energy, pressure, temperature, viscosity, diffusion.
UNITS = {
    "metal": {"length": "Å", "time": "ps", "energy": "eV", "pressure": "bar", "temperature": "K",
              "viscosity": "mPa·s", "diffusion": "Å²/ps", "kB": KB_EV},
    "real": {"length": "Å", "time": "fs", "energy": "kcal/mol", "pressure": "atm", "temperature": "K",
             "viscosity": "mPa·s", "diffusion": "Å²/fs", "kB": KB_EV / 0.0433641043},
    "lj": {"length": "σ", "time": "τ", "energy": "ε", "pressure": "ε/σ³", "temperature": "ε/k_B",
           "viscosity": "ε τ/σ³", "diffusion": "σ²/τ", "kB": 1.0},
}
# 1 Å²/ps = 1e-8 m²/s = 10 × 10⁻⁹ m²/s (the thesis's table unit); 1 Å²/fs = 1e-5 m²/s.
_DIFFUSION_SI = {"metal": 1e-8, "real": 1e-5}


def _units(units: str) -> dict:
    try:
        return UNITS[units]
    except KeyError:
        raise MeltpotError(f"unknown units {units!r}; known: {', '.join(UNITS)}") from None


# ============================================================================ correlations
def autocorrelation(x, max_lag: int | None = None, subtract_mean: bool = False) -> np.ndarray:
    """Time-origin-averaged autocorrelation ⟨x(t₀) x(t₀+k)⟩ along axis 0 (FFT, zero-padded).

    ``x``: (n,) or (n, ...) samples at equal spacing; every other axis is an independent series.
    Returns (max_lag+1, ...) with the unbiased normalisation 1/(n−k) (all origins used).
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    if n < 2:
        raise MeltpotError(f"autocorrelation needs at least 2 samples, got {n}")
    lag = n - 1 if max_lag is None else int(min(max_lag, n - 1))
    if subtract_mean:
        x = x - x.mean(axis=0)
    nfft = _fft.next_fast_len(n + lag, real=True)
    spec = _fft.rfft(x, nfft, axis=0)
    acf = _fft.irfft(spec * spec.conj(), nfft, axis=0)[: lag + 1]
    norm = (n - np.arange(lag + 1)).reshape((-1,) + (1,) * (x.ndim - 1))
    return acf / norm


# ============================================================================ MSD
def _msd_sum(pos: np.ndarray, idx: np.ndarray, lag: int, com: np.ndarray | None,
             chunk_bytes: float) -> np.ndarray:
    """Σ over atoms ``idx`` of the time-origin-averaged squared displacement, lags 0..lag.

    Uses MSD(m) = S1(m) − 2 S2(m) with S1(m) = ⟨r²(k) + r²(k+m)⟩_k from prefix sums and
    S2(m) = ⟨r(k)·r(k+m)⟩_k from one FFT per atom chunk (power spectra summed over atoms).
    """
    n = pos.shape[0]
    nfft = _fft.next_fast_len(n + lag, real=True)
    chunk = max(1, int(chunk_bytes // (nfft * 3 * 16)))
    m = np.arange(lag + 1)
    total = np.zeros(lag + 1)
    for lo in range(0, len(idx), chunk):
        r = pos[:, idx[lo: lo + chunk], :]
        if com is not None:
            r = r - com[:, None, :]
        r = r - r[0]  # displacements from the first frame: same MSD, less cancellation
        d2 = np.einsum("tnk,tnk->t", r, r)
        prefix = np.concatenate([[0.0], np.cumsum(d2)])
        s1 = (prefix[n - m] + prefix[n] - prefix[m]) / (n - m)
        spec = _fft.rfft(r, nfft, axis=0)
        power = np.einsum("fnk,fnk->f", spec, spec.conj()).real
        s2 = _fft.irfft(power, nfft)[: lag + 1] / (n - m)
        total += s1 - 2.0 * s2
    total[0] = 0.0
    return total


def msd_per_species(positions, dt: float = 1.0, species=None, max_lag: int | None = None, *,
                    remove_com: bool = False, masses=None, chunk_bytes: float = 64e6):
    """Mean square displacement per species with time-origin averaging (thesis eq. 2.15).

    ``positions``: unwrapped coordinates (n_frames, n_atoms, 3) (Å or σ) at equal spacing ``dt``
    (ps or τ). ``species``: per-atom labels (n_atoms,), default one species ``"all"``.
    ``remove_com`` subtracts the centre-of-mass displacement of all atoms (``masses``, default
    equal) from every frame. Cost O(N T log T), memory ≈ ``chunk_bytes`` beyond the input.

    Returns ``(t, {label: msd})`` with t = k·dt for lags k = 0..max_lag (default n_frames−1);
    with more than one species the dict also has ``"all"`` (average over all atoms).
    """
    pos = np.asarray(positions, dtype=float)
    if pos.ndim != 3 or pos.shape[2] != 3:
        raise MeltpotError(f"positions must have shape (n_frames, n_atoms, 3), got {pos.shape}")
    n, n_atoms, _ = pos.shape
    if n < 2:
        raise MeltpotError(f"the MSD needs at least 2 frames, got {n}")
    lag = n - 1 if max_lag is None else int(min(max_lag, n - 1))
    labels = np.full(n_atoms, "all") if species is None else np.asarray(species).astype(str)
    if labels.shape != (n_atoms,):
        raise MeltpotError(f"species has shape {labels.shape}, expected ({n_atoms},)")
    com = None
    if remove_com:
        w = np.ones(n_atoms) if masses is None else np.asarray(masses, dtype=float)
        com = np.einsum("tnk,n->tk", pos, w) / w.sum()
    out, total = {}, np.zeros(lag + 1)
    for lab in dict.fromkeys(labels.tolist()):
        idx = np.flatnonzero(labels == lab)
        s = _msd_sum(pos, idx, lag, com, chunk_bytes)
        out[lab] = s / len(idx)
        total += s
    if len(out) > 1:
        out["all"] = total / n_atoms
    return np.arange(lag + 1) * float(dt), out


def msd_direct(positions, max_lag: int | None = None) -> np.ndarray:
    """Reference O(T²) MSD over all atoms (for tests): mean over origins and atoms of |Δr|²."""
    pos = np.asarray(positions, dtype=float)
    n = pos.shape[0]
    lag = n - 1 if max_lag is None else min(max_lag, n - 1)
    return np.array([np.mean(np.sum((pos[m:] - pos[: n - m]) ** 2, axis=-1)) for m in range(lag + 1)])


def unwrap_positions(positions, cells, pbc=(True, True, True), warn_fraction: float = 0.8) -> np.ndarray:
    """Unwrap wrapped coordinates (n_frames, n_atoms, 3) by minimum-image steps between frames.

    ``cells``: one (3, 3) cell or one per frame (n_frames, 3, 3), rows = lattice vectors, any
    triclinic shape. Each step r(t) − r(t−1) is reduced to its minimum image with the cell of
    frame t in fractional coordinates. This is exact when every atom moves less than half the
    smallest perpendicular cell width between consecutive frames (write frames often enough);
    a cell that changes between frames (NPT) is assumed to change by much less than that, and
    the box-rescaling part of an atom's motion is counted as displacement (as LAMMPS's xu does).
    A RuntimeWarning names the first frame where a reduced step exceeds ``warn_fraction`` of
    the half-width, i.e. where the assumption is doubtful. Returns unwrapped positions.
    """
    pos = np.asarray(positions, dtype=float)
    if pos.ndim != 3 or pos.shape[2] != 3:
        raise MeltpotError(f"positions must have shape (n_frames, n_atoms, 3), got {pos.shape}")
    cells = np.asarray(cells, dtype=float)
    if cells.shape == (3, 3):
        cells = np.broadcast_to(cells, (pos.shape[0], 3, 3))
    if cells.shape != (pos.shape[0], 3, 3):
        raise MeltpotError(f"cells must be (3, 3) or ({pos.shape[0]}, 3, 3), got {cells.shape}")
    periodic = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    if pos.shape[0] < 2:
        return pos.copy()
    later = cells[1:]
    inv = np.linalg.inv(later)  # (T-1, 3, 3)
    frac = np.diff(pos, axis=0) @ inv  # fractional steps
    frac -= np.where(periodic, np.round(frac), 0.0)
    steps = frac @ later
    widths = 1.0 / np.linalg.norm(inv, axis=1)  # perpendicular widths of each cell, (T-1, 3)
    half = 0.5 * np.where(periodic, widths, np.inf).min(axis=1)
    too_far = np.linalg.norm(steps, axis=-1).max(axis=1) > warn_fraction * half
    if too_far.any():
        first = int(np.argmax(too_far)) + 1
        warnings.warn(f"unwrapping: at frame {first} an atom moved more than {warn_fraction:g} × half the "
                      "smallest cell width since the previous frame; write frames more often",
                      RuntimeWarning, stacklevel=2)
    out = np.empty_like(pos)
    out[0] = pos[0]
    np.cumsum(steps, axis=0, out=out[1:])
    out[1:] += pos[0]
    return out


# ============================================================================ self-diffusion
@dataclass
class DiffusionFit:
    """Linear fit MSD = 2·dim·D·t + b on [t_start, t_end]; ``ok`` False when the slope rule
    failed and the fraction fallback was used."""

    D: float
    intercept: float
    t_start: float
    t_end: float
    method: str
    ok: bool = True
    dim: int = 3
    n_points: int = 0

    def predict(self, t):
        return 2 * self.dim * self.D * np.asarray(t, dtype=float) + self.intercept


@dataclass
class DiffusionResult:
    """Self-diffusion over replicas: mean D, its standard error (NaN for one replica), the
    per-replica values, and the fit of the replica-averaged MSD (which fixes the window)."""

    D: float
    D_err: float
    per_replica: np.ndarray
    fit: DiffusionFit


def diffusion_window(t, msd, *, method: str = "slope", tol: float = 0.1, max_fraction: float = 0.5,
                     start_fraction: float = 0.1, span: float = 2.0, ratio: float = 1.1) -> tuple[float, float, bool]:
    """Reproducible fit window (t_start, t_end, ok) for the Einstein relation.

    t_end = ``max_fraction`` × the last lag (long lags have few time origins). ``method``:

    * ``"fraction"``: t_start = ``start_fraction`` × the last lag.
    * ``"slope"`` (default): the log–log slope over a factor ``span`` in time,
      α(t) = ln[MSD(span·t)/MSD(t)] / ln(span), is evaluated on the geometric grid
      t₁·ratioʲ (t₁ the first non-zero lag) up to t_end/span; t_start is the earliest grid time
      from which every α lies within ``tol`` of 1 (diffusive regime: the ballistic and caging
      parts, α ≠ 1, are skipped; the span smooths the statistical noise of long lags). If even
      the last α is off, falls back to ``"fraction"`` and returns ok=False.
    """
    t = np.asarray(t, dtype=float)
    msd = np.asarray(msd, dtype=float)
    if len(t) < 4:
        raise MeltpotError(f"the MSD has only {len(t)} lags; need at least 4 to fit D")
    t_end = max_fraction * t[-1]
    fallback = (start_fraction * t[-1], t_end, method == "fraction")
    if method == "fraction":
        return fallback
    if method != "slope":
        raise MeltpotError(f"unknown window method {method!r}; use 'slope' or 'fraction'")
    last = t_end / span
    if last <= t[1] or np.any(msd[1:] <= 0):
        return fallback[0], fallback[1], False
    grid = t[1] * ratio ** np.arange(int(math.log(last / t[1]) / math.log(ratio)) + 1)
    alpha = np.log(np.interp(span * grid, t, msd) / np.interp(grid, t, msd)) / math.log(span)
    bad = np.abs(alpha - 1.0) > tol
    if bad[-1]:
        return fallback[0], fallback[1], False
    j = 0 if not bad.any() else int(np.flatnonzero(bad)[-1]) + 1
    return float(grid[j]), float(t_end), True


def fit_diffusion(t, msd, window: tuple[float, float] | None = None, dim: int = 3, **window_kw) -> DiffusionFit:
    """Self-diffusion D from MSD(t) ≈ 2·dim·D·t + b (thesis eq. 2.16) on a window.

    ``window`` (t_start, t_end) in time units, else :func:`diffusion_window` (``window_kw``).
    Units: D in length²/time of the inputs (Å²/ps in metal units: ×10 for 10⁻⁹ m²/s).
    """
    t = np.asarray(t, dtype=float)
    msd = np.asarray(msd, dtype=float)
    if window is None:
        t0, t1, ok = diffusion_window(t, msd, **window_kw)
        method = window_kw.get("method", "slope") if ok else "fraction"
    else:
        (t0, t1), ok, method = window, True, "given"
    sel = (t >= t0) & (t <= t1)
    if sel.sum() < 2:
        raise MeltpotError(f"the fit window [{t0:g}, {t1:g}] holds fewer than 2 MSD points")
    slope, intercept = np.polyfit(t[sel], msd[sel], 1)
    return DiffusionFit(D=float(slope / (2 * dim)), intercept=float(intercept), t_start=float(t0),
                        t_end=float(t1), method=method, ok=ok, dim=dim, n_points=int(sel.sum()))


def diffusion_replicas(t, msds: Sequence, dim: int = 3, window=None, **window_kw) -> DiffusionResult:
    """D over replicas: the window is chosen once on the replica-averaged MSD, every replica is
    fitted on it; D = mean, D_err = standard error of the mean (std/√n, NaN for n = 1)."""
    msds = np.asarray(msds, dtype=float)
    if msds.ndim == 1:
        msds = msds[None]
    fit = fit_diffusion(t, msds.mean(axis=0), window=window, dim=dim, **window_kw)
    per = np.array([fit_diffusion(t, m, window=(fit.t_start, fit.t_end), dim=dim).D for m in msds])
    err = float(per.std(ddof=1) / math.sqrt(len(per))) if len(per) > 1 else float("nan")
    return DiffusionResult(D=float(per.mean()), D_err=err, per_replica=per, fit=fit)


# ============================================================================ Green–Kubo
@dataclass
class GKResult:
    """Green–Kubo estimate. Arrays over lags t: mean autocorrelation ``acf`` and its standard
    error, running integral ``integral`` and its standard error. ``value ± error`` is the mean
    of the running integral over the plateau [t_start, t_end] (standard error over samples)."""

    t: np.ndarray
    acf: np.ndarray
    acf_err: np.ndarray
    integral: np.ndarray
    integral_err: np.ndarray
    value: float
    error: float
    t_start: float
    t_end: float
    n_samples: int
    rule: str
    ok: bool = True

    def scaled(self, factor: float) -> "GKResult":
        """The same result with acf, integral and value multiplied by ``factor``."""
        f = float(factor)
        return GKResult(self.t, self.acf * f, self.acf_err * abs(f), self.integral * f,
                        self.integral_err * abs(f), self.value * f, self.error * abs(f),
                        self.t_start, self.t_end, self.n_samples, self.rule, self.ok)

    def to_frame(self):
        import pandas as pd  # noqa: PLC0415

        return pd.DataFrame({"t": self.t, "acf": self.acf, "acf_err": self.acf_err,
                             "integral": self.integral, "integral_err": self.integral_err})


def _moving_average(x: np.ndarray, w: int) -> np.ndarray:
    """Centred moving average of width w (windows truncated at the ends)."""
    h = max(int(w) // 2, 0)
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(len(x))
    lo, hi = np.maximum(i - h, 0), np.minimum(i + h + 1, len(x))
    return (c[hi] - c[lo]) / (hi - lo)


def _as_samples(series) -> list[np.ndarray]:
    """A list of 2-D arrays (n_i, k_i): one per replica, columns = samples."""
    if isinstance(series, np.ndarray):
        series = [series]
    out = []
    for s in series:
        a = np.asarray(s, dtype=float)
        out.append(a[:, None] if a.ndim == 1 else a.reshape(a.shape[0], -1))
    return out


def gk_integral(series, dt: float, *, max_lag: int | None = None, t_max: float | None = None,
                window: tuple[float, float] | None = None, cutoff: float | None = None,
                noise_k: float = 3.0, min_samples: int = 4, subtract_mean: bool = False) -> GKResult:
    """∫₀^∞ ⟨A(0)A(t)⟩ dt from samples of a stationary signal, with plateau and error bar.

    ``series``: one array or a list (replicas) of arrays (n,) or (n, k); every column is one
    sample of the same process (e.g. P_xy, P_xz, P_yz), spaced ``dt``. If there are fewer than
    ``min_samples`` columns in all, each series is cut into equal blocks to reach that number
    (for the error bar). Lags run to ``max_lag`` (or ``t_max``; default half the shortest
    sample). Each sample's ACF (FFT, all origins) and running trapezoid integral I_m(t) are
    averaged; errors are standard errors over the M samples.

    Plateau (``rule`` in the result): ``window`` = (t1, t2) if given; else [t_c, 2 t_c] with
    t_c = ``cutoff`` if given, else the first lag from which the integrand stays in the noise
    over the whole window: the centred moving average of |C| is ≤ ``noise_k`` × the moving
    average of its standard error σ_C on all of [t_c, 2 t_c] (moving-average width twice the
    lag where C first falls to C(0)/2, 3 ≤ w ≤ lags/10). value = mean of the running integral
    over the window; error = its largest standard error there (at t_end: conservative, it
    also covers the scatter that the data-dependent choice of t_c adds). Checked on
    Ornstein–Uhlenbeck data (tests): with the default ``noise_k`` = 3 the error matches the
    scatter over independent runs and the truncation bias is well below the error.
    """
    blocks = _as_samples(series)
    n_cols = sum(b.shape[1] for b in blocks)
    n_min = min(b.shape[0] for b in blocks)
    if max_lag is None and t_max is not None:
        max_lag = int(round(t_max / dt))
    n_split = 1
    if n_cols < min_samples:
        n_split = math.ceil(min_samples / n_cols)
        if max_lag is not None:
            n_split = max(1, min(n_split, n_min // (2 * max_lag + 2)))
    if n_split > 1:
        blocks = [b[: (b.shape[0] // n_split) * n_split].reshape(n_split, -1, b.shape[1])
                  .transpose(1, 0, 2).reshape(b.shape[0] // n_split, -1) for b in blocks]
        n_min = min(b.shape[0] for b in blocks)
    lag = n_min // 2 if max_lag is None else int(min(max_lag, n_min - 1))
    if lag < 4:
        raise MeltpotError(f"Green–Kubo: series of {n_min} samples are too short for a correlation function")
    acfs = np.concatenate([autocorrelation(b, lag, subtract_mean) for b in blocks], axis=1)  # (L+1, M)
    m = acfs.shape[1]
    t = np.arange(lag + 1) * float(dt)
    runs = np.concatenate([np.zeros((1, m)), np.cumsum(0.5 * (acfs[1:] + acfs[:-1]), axis=0) * dt])

    def sem(a, axis=-1):
        return a.std(axis=axis, ddof=1) / math.sqrt(m) if m > 1 else np.full(a.shape[:-1], np.nan)

    acf, acf_err = acfs.mean(axis=1), sem(acfs)
    integral, integral_err = runs.mean(axis=1), sem(runs)
    ok = True
    if window is not None:
        t1, t2 = window
        rule = f"given window [{t1:g}, {t2:g}]"
    else:
        if cutoff is not None:
            tc = float(cutoff)
            rule = f"given cutoff t_c = {tc:g}, window [t_c, 2 t_c]"
        else:
            half = np.flatnonzero(acf <= 0.5 * acf[0])
            w = int(np.clip(2 * (half[0] if len(half) else lag // 20), 3, max(3, lag // 10)))
            noise = acf_err if m > 1 else np.full_like(acf, np.std(acf[lag // 2:]))
            quiet = _moving_average(np.abs(acf), w) <= noise_k * _moving_average(noise, w)
            # t_c: the first lag from which the integrand stays in the noise over [t_c, 2 t_c]
            loud = np.concatenate([np.flatnonzero(~quiet), [lag + 1]])
            nxt = loud[np.searchsorted(loud, np.arange(lag + 1))]  # first non-quiet lag ≥ i
            i = np.arange(lag + 1)
            below = quiet & (nxt > np.minimum(2 * i, lag))
            if below.any():
                tc = t[int(np.argmax(below))]
                rule = f"noise: smoothed |C| ≤ {noise_k:g}·σ_C on all of [t_c, 2 t_c] (smoothing {w} lags)"
            else:
                tc, ok = t[lag // 2], False
                rule = "noise rule failed (C never decays into the noise): window [t_max/2, t_max]"
                warnings.warn("Green–Kubo: the correlation function does not decay into the noise within "
                              f"t_max = {t[-1]:g}; using the window [t_max/2, t_max]", RuntimeWarning,
                              stacklevel=2)
        t1, t2 = tc, min(2 * tc, t[-1])
    sel = (t >= t1 - 1e-12 * dt) & (t <= t2 + 1e-12 * dt)
    if not sel.any():
        raise MeltpotError(f"Green–Kubo plateau window [{t1:g}, {t2:g}] holds no lag (t_max = {t[-1]:g})")
    value = float(integral[sel].mean())
    error = float(integral_err[sel].max()) if m > 1 else float("nan")
    return GKResult(t=t, acf=acf, acf_err=acf_err, integral=integral, integral_err=integral_err,
                    value=value, error=error, t_start=float(t[sel][0]), t_end=float(t[sel][-1]),
                    n_samples=m, rule=rule, ok=ok)


# ============================================================================ viscosity
_PRESSURE_ORDER = ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")


def shear_components(pressure, diagonal: bool = False) -> np.ndarray:
    """Shear-stress samples for Green–Kubo from a pressure tensor time series.

    ``pressure``: (n, 6) in the order P_xx, P_yy, P_zz, P_xy, P_xz, P_yz (or (n, 3) off-diagonal
    only; then ``diagonal`` must be False), or a mapping with those keys (any case). Returns
    (n, 3) [P_xy, P_xz, P_yz], with ``diagonal`` (n, 5) adding (P_xx−P_yy)/2 and
    (P_xx+P_yy−2P_zz)/(2√3), which are uncorrelated with each other and have the same
    autocorrelation as P_xy in an isotropic liquid.
    """
    if isinstance(pressure, Mapping) or hasattr(pressure, "columns"):
        lookup = {str(k).lower(): k for k in (pressure.columns if hasattr(pressure, "columns") else pressure)}
        names = _PRESSURE_ORDER if diagonal else _PRESSURE_ORDER[3:]
        missing = [n for n in names if n not in lookup]
        if missing:
            raise MeltpotError(f"pressure data lack {', '.join(missing)}")
        p = np.column_stack([np.asarray(pressure[lookup[n]], dtype=float) for n in names])
        if not diagonal:
            return p
    else:
        p = np.asarray(pressure, dtype=float)
    if p.ndim != 2 or p.shape[1] not in (3, 6):
        raise MeltpotError(f"pressure must be (n, 6) or (n, 3), got {p.shape}")
    if p.shape[1] == 3:
        if diagonal:
            raise MeltpotError("diagonal=True needs P_xx, P_yy, P_zz too (an (n, 6) array)")
        return p
    off = p[:, 3:6]
    if not diagonal:
        return off
    d1 = 0.5 * (p[:, 0] - p[:, 1])
    d2 = (p[:, 0] + p[:, 1] - 2 * p[:, 2]) / (2 * math.sqrt(3))
    return np.column_stack([off, d1, d2])


def viscosity_prefactor(volume: float, temperature: float, units: str = "metal") -> float:
    """V/(k_B T) with the conversion to viscosity: multiply ∫⟨P P⟩dt by it.

    metal: V in Å³, T in K, P in bar, t in ps → η in mPa·s; real: Å³, K, atm, fs → mPa·s;
    lj: reduced (k_B = 1) → η in ε τ/σ³.
    """
    if units == "lj":
        return float(volume) / float(temperature)
    if units == "metal":
        p_si, t_si = 1e5, 1e-12
    elif units == "real":
        p_si, t_si = 101325.0, 1e-15
    else:
        raise MeltpotError(f"unknown units {units!r} for viscosity; use metal, real or lj")
    return float(volume) * 1e-30 / (KB_SI * float(temperature)) * p_si**2 * t_si * 1e3


@dataclass
class ViscosityResult:
    """Shear viscosity η ± error (``unit``) and the Green–Kubo details in viscosity units."""

    eta: float
    eta_err: float
    unit: str
    gk: GKResult
    n_replicas: int
    n_components: int


def viscosity_gk(stress, dt: float, volume, temperature, units: str = "metal", **gk_kw) -> ViscosityResult:
    """Shear viscosity η = V/(k_B T) ∫⟨P_ab(0)P_ab(t)⟩dt (thesis eq. 2.22), replicas averaged.

    ``stress``: one array or a list (replicas) of (n, k) shear components (see
    :func:`shear_components`), sampled every ``dt`` (ps / fs / τ). ``volume`` and
    ``temperature``: scalars or one per replica (mean V and T of that run). Every replica's
    components are scaled by its own V/(k_B T) and then pooled as samples of
    :func:`gk_integral` (``gk_kw``: plateau rule, t_max...).
    """
    reps = _as_samples(stress)
    vol = np.broadcast_to(np.asarray(volume, dtype=float), (len(reps),))
    temp = np.broadcast_to(np.asarray(temperature, dtype=float), (len(reps),))
    factors = [viscosity_prefactor(v, T, units) for v, T in zip(vol, temp)]
    ref = float(np.mean(factors))
    scaled = [r * math.sqrt(f / ref) for r, f in zip(reps, factors)]
    gk = gk_integral(scaled, dt, **gk_kw).scaled(ref)
    return ViscosityResult(eta=gk.value, eta_err=gk.error, unit=_units(units)["viscosity"], gk=gk,
                           n_replicas=len(reps), n_components=reps[0].shape[1])


# ============================================================================ interdiffusion
def concentration_current(velocities, species, a, b) -> tuple[np.ndarray, float, int]:
    """J(t) = x_B Σ_{i∈A} v_i − x_A Σ_{j∈B} v_j (thesis eq. 2.17).

    ``velocities`` (n_frames, n_atoms, 3), ``species`` per-atom labels, ``a``/``b`` the two
    labels. Atoms of other species are ignored. Returns (J (n_frames, 3), x_A, N = N_A + N_B).
    J is independent of a uniform velocity shift (Galilean invariant).
    """
    v = np.asarray(velocities, dtype=float)
    lab = np.asarray(species).astype(str)
    in_a, in_b = lab == str(a), lab == str(b)
    n_a, n_b = int(in_a.sum()), int(in_b.sum())
    if n_a == 0 or n_b == 0:
        raise MeltpotError(f"interdiffusion needs atoms of both species {a!r} ({n_a}) and {b!r} ({n_b}); "
                           f"species present: {', '.join(sorted(set(lab.tolist())))}")
    n = n_a + n_b
    x_a, x_b = n_a / n, n_b / n
    j = x_b * v[:, in_a].sum(axis=1) - x_a * v[:, in_b].sum(axis=1)
    return j, x_a, n


def thermodynamic_factor(x_a: float, scc0: float) -> float:
    """Φ = x_A x_B / S_CC(q→0) (thesis eq. 2.21); S_CC(0) from the structure analysis."""
    if not scc0 > 0:
        raise MeltpotError(f"S_CC(0) must be positive, got {scc0}")
    return float(x_a) * (1.0 - float(x_a)) / float(scc0)


@dataclass
class InterdiffusionResult:
    """Onsager coefficient L ± error, Φ and D_AB = L Φ (NaN without S_CC(0) or Φ); units of D.
    D_AB_err = L_err·Φ: the uncertainty of S_CC(0) is not included."""

    L: float
    L_err: float
    phi: float
    D_AB: float
    D_AB_err: float
    x_a: float
    n_atoms: int
    gk: GKResult


def interdiffusion_gk(velocities, species, a, b, dt: float, *, scc0: float | None = None,
                      phi: float | None = None, **gk_kw) -> InterdiffusionResult:
    """Interdiffusion of species a and b by Green–Kubo (thesis eqs. 2.17–2.21).

    ``velocities``: one array or a list (replicas) of (n_frames, n_atoms, 3) velocities
    (Å/ps, σ/τ), every ``dt``; ``species`` per-atom labels (the same for all replicas).
    L = 1/(3 N x_A x_B) ∫⟨J(t)·J(0)⟩dt: the three Cartesian components of every replica are
    the samples of :func:`gk_integral`. Φ = ``phi`` or x_A x_B / ``scc0``; D_AB = L Φ.
    """
    reps = [velocities] if isinstance(velocities, np.ndarray) and velocities.ndim == 3 else list(velocities)
    currents, x_a, n = [], None, None
    for v in reps:
        j, x_a, n = concentration_current(v, species, a, b)
        currents.append(j)
    norm = n * x_a * (1.0 - x_a)
    gk = gk_integral(currents, dt, **gk_kw).scaled(1.0 / norm)  # mean over components = ⟨J·J⟩/3
    if phi is None and scc0 is not None:
        phi = thermodynamic_factor(x_a, scc0)
    phi = float("nan") if phi is None else float(phi)
    return InterdiffusionResult(L=gk.value, L_err=gk.error, phi=phi, D_AB=gk.value * phi,
                                D_AB_err=gk.error * abs(phi), x_a=float(x_a), n_atoms=int(n), gk=gk)


def darken_comparison(L: float, D_a: float, D_b: float, x_a: float, phi: float | None = None) -> dict:
    """Darken-like check: L_D = x_B D_A + x_A D_B (no velocity cross-correlations),
    D_AB^Darken = Φ L_D, and S = L / L_D (S ≠ 1 measures collective cross-correlations)."""
    x_b = 1.0 - x_a
    l_d = x_b * D_a + x_a * D_b
    out = {"L": float(L), "L_darken": float(l_d), "S": float(L / l_d) if l_d else float("nan")}
    if phi is not None:
        out.update(phi=float(phi), D_AB=float(L * phi), D_AB_darken=float(l_d * phi))
    return out


# ============================================================================ Arrhenius
@dataclass
class ArrheniusFit:
    """D(T) = D0 exp(−E_a / (k_B T)); E_a in eV (metal), kcal/mol (real) or ε (lj)."""

    D0: float
    E_a: float
    D0_err: float
    E_a_err: float
    units: str = "metal"

    def predict(self, T):
        kb = _units(self.units)["kB"]
        return self.D0 * np.exp(-self.E_a / (kb * np.asarray(T, dtype=float)))


def arrhenius_fit(T, D, D_err=None, units: str = "metal") -> ArrheniusFit:
    """Fit ln D = ln D0 − E_a/(k_B T) by (weighted, with ``D_err``) least squares.

    T in K (ε/k_B in lj units); D in any unit (D0 has the same). Errors from the fit
    covariance (scaled by the reduced χ² when no ``D_err`` is given).
    """
    T = np.asarray(T, dtype=float)
    D = np.asarray(D, dtype=float)
    if T.shape != D.shape or T.size < 2:
        raise MeltpotError(f"Arrhenius fit needs ≥ 2 matching (T, D) points, got {T.shape} and {D.shape}")
    if np.any(D <= 0) or np.any(T <= 0):
        raise MeltpotError("Arrhenius fit needs positive T and D")
    kb = _units(units)["kB"]
    x, y = 1.0 / (kb * T), np.log(D)
    if D_err is not None:
        w = D / np.asarray(D_err, dtype=float)  # 1/σ(ln D)
    else:
        w = np.ones_like(D)
    A = np.column_stack([np.ones_like(x), -x]) * w[:, None]
    coef, *_ = np.linalg.lstsq(A, y * w, rcond=None)
    cov = np.linalg.pinv(A.T @ A)
    if D_err is None:
        dof = len(T) - 2
        resid = y - (coef[0] - coef[1] * x)
        cov = cov * (resid @ resid / dof if dof > 0 else float("nan"))
    lnd0, ea = coef
    errs = np.sqrt(np.maximum(np.diag(cov), 0.0))
    return ArrheniusFit(D0=float(np.exp(lnd0)), E_a=float(ea), D0_err=float(np.exp(lnd0) * errs[0]),
                        E_a_err=float(errs[1]), units=units)


# ============================================================================ writers
def write_msd_csv(path, t, msds: Mapping[str, np.ndarray], errors: Mapping[str, np.ndarray] | None = None) -> None:
    """CSV with column t and msd_<species> (and msd_<species>_err when ``errors`` given)."""
    import pandas as pd  # noqa: PLC0415

    cols = {"t": np.asarray(t)}
    for k, v in msds.items():
        cols[f"msd_{k}"] = np.asarray(v)
        if errors is not None and k in errors:
            cols[f"msd_{k}_err"] = np.asarray(errors[k])
    pd.DataFrame(cols).to_csv(path, index=False)


def write_gk_csv(path, gk: GKResult) -> None:
    """CSV of the Green–Kubo curves (t, acf, acf_err, integral, integral_err)."""
    gk.to_frame().to_csv(path, index=False)


def _plt():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_msd(path, t, msds: Mapping[str, np.ndarray], fits: Mapping[str, DiffusionFit] | None = None,
             units: str = "metal", title: str | None = None) -> None:
    """Log–log MSD per species, the fit window shaded and the fitted 6Dt + b line."""
    plt = _plt()
    u = _units(units)
    t = np.asarray(t, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for k, (lab, m) in enumerate(msds.items()):
        c = f"C{k}"
        ax.loglog(t[1:], np.asarray(m)[1:], color=c, lw=1.2, label=lab)
        f = (fits or {}).get(lab)
        if f is not None:
            tt = t[(t >= f.t_start) & (t <= f.t_end)]
            ax.loglog(tt, f.predict(tt), color=c, ls="--", lw=1,
                      label=f"{lab}: D = {f.D:.4g} {u['diffusion']}")
            if k == 0:
                ax.axvspan(f.t_start, f.t_end, color="grey", alpha=0.12, lw=0, label="fit window")
    ax.set_xlabel(f"t ({u['time']})")
    ax.set_ylabel(f"MSD ({u['length']}²)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_gk(path, gk: GKResult, quantity: str = "η", unit: str = "", time_unit: str = "",
            title: str | None = None) -> None:
    """Two panels: normalised correlation function C(t)/C(0) ± error, and the running integral
    ± error with the plateau window shaded and the chosen value."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    c0 = gk.acf[0] if gk.acf[0] else 1.0
    a1.plot(gk.t, gk.acf / c0, lw=1)
    a1.fill_between(gk.t, (gk.acf - gk.acf_err) / c0, (gk.acf + gk.acf_err) / c0, alpha=0.3, lw=0)
    a1.axhline(0, color="k", lw=0.5)
    a1.set_xscale("symlog", linthresh=max(gk.t[1] * 10, 1e-12))
    a1.set_xlim(0, gk.t[-1])
    a1.axvspan(gk.t_start, gk.t_end, color="grey", alpha=0.15, lw=0)
    tlabel = f"t ({time_unit})" if time_unit else "t"
    a1.set_xlabel(tlabel)
    a1.set_ylabel("C(t)/C(0)")
    a2.plot(gk.t, gk.integral, lw=1)
    a2.fill_between(gk.t, gk.integral - gk.integral_err, gk.integral + gk.integral_err, alpha=0.3, lw=0)
    a2.axvspan(gk.t_start, gk.t_end, color="grey", alpha=0.15, lw=0, label="plateau window")
    a2.axhline(gk.value, color="C3", lw=1, ls="--", label=f"{quantity} = {gk.value:.4g} ± {gk.error:.2g} {unit}")
    shown = gk.t <= min(gk.t[-1], 5 * gk.t_end)  # the plateau region, not the noisy tail
    lo = np.min(gk.integral[shown] - gk.integral_err[shown])
    hi = np.max(gk.integral[shown] + gk.integral_err[shown])
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        a2.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    a2.set_xlim(0, gk.t[shown][-1])
    a2.set_xlabel(tlabel)
    a2.set_ylabel(f"running integral {quantity} ({unit})" if unit else f"running integral {quantity}")
    a2.legend(fontsize=8)
    fig.suptitle(title or f"Green–Kubo {quantity}: {gk.n_samples} samples; {gk.rule}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_arrhenius(path, T, D, fit: ArrheniusFit | None = None, D_err=None, label: str = "D",
                   units: str = "metal") -> None:
    """ln D vs 1/T (1000/T for K) with error bars and the fitted Arrhenius line (E_a in legend)."""
    plt = _plt()
    u = _units(units)
    T = np.asarray(T, dtype=float)
    D = np.asarray(D, dtype=float)
    scale = 1000.0 if units != "lj" else 1.0
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.errorbar(scale / T, D, yerr=None if D_err is None else np.asarray(D_err), fmt="o", ms=4, label=label)
    if fit is not None:
        tt = np.linspace(T.min(), T.max(), 100)
        ax.plot(scale / tt, fit.predict(tt), "--",
                label=f"D0 = {fit.D0:.3g} {u['diffusion']}, E_a = {fit.E_a:.3g} ± {fit.E_a_err:.1g} {u['energy']}")
    ax.set_yscale("log")
    ax.set_xlabel(f"1000/T (1/{u['temperature']})" if units != "lj" else "1/T*")
    ax.set_ylabel(f"D ({u['diffusion']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
