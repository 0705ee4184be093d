"""Nucleation rates from censored replica onsets (meltpot.analysis.rates, ``meltpot analyze rates``)
against numbers computed independently here: the exponential-model MLE d/E with a chi-square
interval from scipy.stats.chi2, its coverage over seeded synthetic samples, a Kaplan–Meier curve
worked by hand, and the CNA pathway of the largest solid cluster in crystals of known stacking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from scipy.stats import chi2, norm

from meltpot.analysis import local_order as lo
from meltpot.analysis import rates as ra
from meltpot.cli import main
from meltpot.errors import MeltpotError

#: a small censored sample worked by hand: onset or run end, crystallised?
HAND_T = [3.0, 5.0, 6.0, 6.0, 8.0, 10.0]
HAND_OBS = [True, False, True, True, False, True]


# --------------------------------------------------------------------------- the Poisson (exponential) model
def test_rate_is_events_over_exposure_with_the_chi_square_interval():
    # by hand: d = 4 events, E = 3 + 5 + 6 + 6 + 8 + 10 = 38 time units at risk (censored included)
    r = ra.poisson_rate(HAND_T, HAND_OBS)
    assert (r.events, r.censored, r.exposure) == (4, 2, 38.0)
    assert r.k == pytest.approx(4 / 38, rel=1e-15) and r.tau == pytest.approx(9.5, rel=1e-15)
    # chi-square table: χ²_0.025(8) = 2.180, χ²_0.975(10) = 20.483 → [2.180/76, 20.483/76]
    assert r.k_lo == pytest.approx(2.180 / 76, abs=2e-5) and r.k_hi == pytest.approx(20.483 / 76, abs=2e-5)
    assert r.k_lo == pytest.approx(chi2.ppf(0.025, 8) / 76, rel=1e-12)
    assert r.k_hi == pytest.approx(chi2.ppf(0.975, 10) / 76, rel=1e-12)
    assert (r.tau_lo, r.tau_hi) == pytest.approx((1 / r.k_hi, 1 / r.k_lo), rel=1e-12)
    # a synthetic censored sample with a known rate: 40 replicas, k = 0.05 per ps, runs of 30 ps
    k, L = 0.05, 30.0
    w = np.random.default_rng(7).exponential(1 / k, 40)
    obs, t = w < L, np.minimum(w, L)
    d, E = int(obs.sum()), float(t.sum())
    assert 0 < d < 40                                               # both events and censored runs
    r = ra.poisson_rate(t, obs, confidence=0.9)
    assert r.k == pytest.approx(d / E, rel=1e-14)
    assert (r.k_lo, r.k_hi) == pytest.approx((chi2.ppf(0.05, 2 * d) / (2 * E), chi2.ppf(0.95, 2 * d + 2) / (2 * E)),
                                             rel=1e-12)
    assert r.k_lo <= k <= r.k_hi
    # the naive mean of the crystallised replicas ignores the censored ones: below τ
    assert t[obs].mean() < r.tau


def test_interval_covers_the_true_rate_in_95_percent_of_seeded_samples():
    """1500 synthetic experiments of 12 replicas (k = 0.02 per ps, 60 ps runs: 30 % censored):
    the 95 % interval covers k in 93–98 % of them (Garwood's interval is slightly conservative:
    96 %), and so does the Kaplan–Meier band at 30 ps cover exp(−30 k). The same interval with
    the censored runs dropped (the mistake this estimator avoids) covers k in far fewer."""
    k, L, n, N = 0.02, 60.0, 12, 1500
    rng = np.random.default_rng(2024)
    hits = hits_dropped = hits_km = 0
    for _ in range(N):
        w = rng.exponential(1 / k, n)
        obs, t = w < L, np.minimum(w, L)
        r = ra.poisson_rate(t, obs)
        hits += r.k_lo <= k <= r.k_hi
        if obs.any():
            dropped = ra.poisson_rate(t[obs], obs[obs])
            hits_dropped += dropped.k_lo <= k <= dropped.k_hi
        km = ra.survival(t, obs)
        at = km[km["time"] <= 30.0].iloc[-1]
        hits_km += at["lower"] <= np.exp(-30.0 * k) <= at["upper"]
    assert 0.93 <= hits / N <= 0.98, hits / N
    assert 0.93 <= hits_km / N <= 0.98, hits_km / N
    assert hits_dropped / N < 0.8, hits_dropped / N


def test_zero_events_give_an_upper_bound_only():
    r = ra.poisson_rate([10.0, 10.0, 10.0], [False, False, False])
    assert r.k == 0 and r.k_lo == 0 and r.upper_only and r.tau == np.inf and r.tau_hi == np.inf
    # the upper end of the Garwood interval: χ²_0.975(2)/(2E) = ln(40)/30
    assert r.k_hi == pytest.approx(np.log(40.0) / 30.0, rel=1e-12)
    onsets = pd.DataFrame({"label": "m", "T": 600.0, "replica": [0, 1, 2], "time": 10.0, "observed": False,
                           "volume": 2.0e4})
    row = ra.rate_table(onsets).iloc[0]
    assert row["interval"] == "upper bound" and row["J_lo"] == 0 and row["events"] == 0 and row["censored"] == 3
    assert row["J_hi"] == pytest.approx(np.log(40.0) / 30.0 / 2.0e4 * 1e12, rel=1e-12)
    assert np.isnan(row["naive_mean"])


def test_bad_onsets_are_named():
    with pytest.raises(MeltpotError, match="replica 1 has time -1"):
        ra.poisson_rate([1.0, -1.0], [True, False])
    with pytest.raises(MeltpotError, match="replica 0 has time nan"):
        ra.survival([np.nan], [True])
    with pytest.raises(MeltpotError, match="no time at risk"):
        ra.poisson_rate([0.0, 0.0], [True, False])
    with pytest.raises(MeltpotError, match="confidence"):
        ra.poisson_rate([1.0], [True], confidence=95)


def test_lag_counts_only_replicas_liquid_at_t0_from_t0():
    t, o, excluded = ra.left_truncate([2.0, 5.0, 12.0, 20.0], [True, True, True, False], lag=4.0)
    assert excluded == 1 and t.tolist() == [1.0, 8.0, 16.0] and o.tolist() == [True, True, False]
    onsets = pd.DataFrame({"label": "ref", "T": 500.0, "replica": range(4), "time": [2.0, 5.0, 12.0, 20.0],
                           "observed": [True, True, True, False], "volume": [1.0e4, 2.0e4, 2.0e4, 2.0e4]})
    row = ra.rate_table(onsets, lag=4.0).iloc[0]
    assert (row["replicas"], row["excluded"], row["events"], row["censored"]) == (4, 1, 2, 1)
    assert row["exposure"] == 25.0 and row["k"] == pytest.approx(2 / 25) and row["naive_mean"] == 4.5
    assert row["volume"] == 2.0e4                                   # over the replicas at risk only
    with pytest.raises(MeltpotError, match="lag"):
        ra.left_truncate([1.0], [True], lag=-1.0)


def test_rate_table_units():
    onsets = pd.DataFrame({"label": ["ref"] * 3, "T": 600.0, "replica": range(3), "time": [10.0, 20.0, 50.0],
                           "observed": [True, True, False], "volume": [3.0e4, 3.2e4, 3.4e4]})
    row = ra.rate_table(onsets).iloc[0]
    k, V = 2 / 80, 3.2e4                                            # 1/ps, Å³
    assert row["k"] == pytest.approx(k) and row["volume"] == pytest.approx(V)
    # Å⁻³ ps⁻¹ = 1e30 m⁻³ · 1e12 s⁻¹
    assert row["J_SI"] == pytest.approx(k / (V * 1e-30) / 1e-12, rel=1e-12)
    assert row["J"] == pytest.approx(row["J_SI"] / 1e30, rel=1e-12) and row["J_unit"] == "1e30 m^-3 s^-1"
    assert row["J_SI_lo"] < row["J_SI"] < row["J_SI_hi"] and row["time_unit"] == "ps"
    lj = ra.rate_table(onsets, units="lj").iloc[0]
    assert lj["J"] == pytest.approx(k / V) and np.isnan(lj["J_SI"]) and lj["time_unit"] == "τ"
    with pytest.raises(MeltpotError, match="units"):
        ra.rate_table(onsets, units="si")


# --------------------------------------------------------------------------- Kaplan–Meier
def test_kaplan_meier_hand_example():
    km = ra.survival(HAND_T, HAND_OBS)
    # at risk just before t: 6 (t=3), 5 (t=5: one censored), 4 (t=6: two events), 2 (t=8), 1 (t=10)
    assert km["time"].tolist() == [0.0, 3.0, 5.0, 6.0, 8.0, 10.0]
    assert km["at_risk"].tolist() == [6, 6, 5, 4, 2, 1]
    assert km["events"].tolist() == [0, 1, 0, 2, 0, 1] and km["censored"].tolist() == [0, 0, 1, 0, 1, 0]
    np.testing.assert_allclose(km["survival"], [1, 5 / 6, 5 / 6, 5 / 12, 5 / 12, 0], rtol=1e-15)
    # Greenwood at t = 6: S² (1/(6·5) + 2/(4·2))
    g = 1 / 30 + 2 / 8
    assert km["std_err"].iloc[3] == pytest.approx(5 / 12 * np.sqrt(g), rel=1e-12)
    # log–log band at t = 6: S^exp(±z √g / |ln S|) = [0.0560, 0.7665] (by hand)
    w = norm.ppf(0.975) * np.sqrt(g) / abs(np.log(5 / 12))
    assert km["lower"].iloc[3] == pytest.approx((5 / 12) ** np.exp(w), rel=1e-12)
    assert km["upper"].iloc[3] == pytest.approx((5 / 12) ** np.exp(-w), rel=1e-12)
    assert km["lower"].iloc[3] == pytest.approx(0.0560, abs=1e-4) and km["upper"].iloc[3] == pytest.approx(0.7665,
                                                                                                           abs=1e-4)
    assert km["lower"].iloc[-1] == km["upper"].iloc[-1] == 0.0 and km["lower"].iloc[0] == 1.0
    assert (km["lower"] <= km["survival"]).all() and (km["survival"] <= km["upper"]).all()
    # no censoring: the empirical survival function
    t = np.array([4.0, 1.0, 3.0, 2.0])
    np.testing.assert_allclose(ra.survival(t, np.ones(4, bool))["survival"], [1, 0.75, 0.5, 0.25, 0.0])


# --------------------------------------------------------------------------- pathway
def stacked(seq: str, a: float = 2.86, n=(6, 6)) -> Atoms:
    """Close-packed layers in the order ``seq`` (A, B, C positions; periodic along z),
    nearest-neighbour distance ``a`` (Å), n[0] × n[1] atoms per layer."""
    a1, a2 = np.array([a, 0.0, 0.0]), np.array([a / 2, a * np.sqrt(3) / 2, 0.0])
    h = a * np.sqrt(2 / 3)
    shift = {"A": 0.0, "B": 1 / 3, "C": 2 / 3}
    pos = [(i + shift[s]) * a1 + (j + shift[s]) * a2 + [0.0, 0.0, k * h]
           for k, s in enumerate(seq) for i in range(n[0]) for j in range(n[1])]
    return Atoms(f"Al{len(pos)}", positions=pos, cell=[n[0] * a1, n[1] * a2, [0, 0, len(seq) * h]], pbc=True)


def two_slabs(seq1: str, seq2: str, gap: float = 8.0) -> tuple[Atoms, int]:
    """Two free-standing slabs of stacking ``seq1`` and ``seq2`` separated by ``gap`` Å of vacuum."""
    s1, s2 = stacked(seq1), stacked(seq2)
    h = 2.86 * np.sqrt(2 / 3)
    cell = s1.cell.array.copy()
    cell[2, 2] = (len(seq1) + len(seq2) - 2) * h + 2 * gap
    pos = np.vstack([s1.positions, s2.positions + [0.0, 0.0, (len(seq1) - 1) * h + gap]])
    return Atoms(f"Al{len(pos)}", positions=pos, cell=cell, pbc=True), len(s1)


def test_pathway_is_the_cna_of_the_largest_solid_cluster():
    # periodic stacking ABCABCABAB: a layer is hcp when both neighbour layers are alike
    # (layers 0, 7, 8, 9), fcc otherwise → 6/10 fcc, 4/10 hcp; one cluster of all 360 atoms
    table = lo.cluster_table([stacked("ABCABCABAB")])
    row = table.iloc[0]
    assert row["largest_cluster"] == 360 and row["volume"] == pytest.approx(abs(stacked("ABCABCABAB").cell.volume))
    assert (row["cluster_fcc"], row["cluster_hcp"], row["cluster_bcc"], row["cluster_other"]) == \
        pytest.approx((0.6, 0.4, 0.0, 0.0))
    # a 12-layer fcc slab (432 atoms) beside a 6-layer hcp slab (216): only the larger counts;
    # its two surface layers are "other", the 10 inner ones fcc
    fcc_big, n1 = two_slabs("ABC" * 4, "AB" * 3)
    hcp_big, _ = two_slabs("ABC" * 2, "AB" * 6)
    assert lo.cna_fractions(lo.cna(fcc_big))["hcp"] > 0.2          # the frame has hcp atoms, the cluster not
    table = lo.cluster_table([fcc_big, hcp_big])
    assert table["largest_cluster"].tolist() == [432, 432] and table["second_cluster"].tolist() == [216, 216]
    a, b = table.iloc[0], table.iloc[1]
    assert (a["cluster_fcc"], a["cluster_hcp"], a["cluster_other"]) == pytest.approx((10 / 12, 0.0, 2 / 12))
    assert (b["cluster_fcc"], b["cluster_hcp"], b["cluster_other"]) == pytest.approx((0.0, 10 / 12, 2 / 12))
    np.testing.assert_allclose(table[[f"cluster_{c}" for c in lo.CNA_CLASSES]].sum(axis=1), 1.0)
    # no solid atoms: no composition
    empty = lo.cluster_cna(np.zeros(4, np.int8), np.zeros(4, bool))
    assert all(np.isnan(v) for v in empty.values())
    with pytest.raises(MeltpotError, match="differ"):
        lo.cluster_cna(np.zeros(4, np.int8), np.zeros(3, bool))


# --------------------------------------------------------------------------- files and command line
def _run_table(onset: float | None, t_end: float = 100.0, t0: float = 0.0, volume: float = 2.0e4,
               pathway=(0.5, 0.3, 0.1, 0.0, 0.1)) -> pd.DataFrame:
    """A cluster table every 5 ps: the largest cluster grows through 100 atoms at ``onset``
    (None: never); the CNA composition ``pathway`` (fcc hcp bcc ico other) from the first frame
    at or over 100 atoms on, a liquid-like (all "other") one before."""
    t = np.arange(0.0, t_end + 1e-9, 5.0)
    size = np.full(len(t), 10.0) if onset is None else np.clip(100.0 + 20.0 * (t - onset), 5.0, None)
    tab = pd.DataFrame({"frame": np.arange(len(t)), "time": t + t0, "largest_cluster": size,
                        "volume": volume - 10.0 * (size >= 100)})
    over = size >= 100
    for c, f in zip(("fcc", "hcp", "bcc", "ico", "other"), pathway):
        tab[f"cluster_{c}"] = np.where(over, f, 1.0 if c == "other" else 0.0)
    return tab


def test_cli_rates_reference_and_model_side_by_side(tmp_path, capsys):
    onsets = {"reference": {(600, 0): 12.0, (600, 1): 31.0, (600, 2): None, (700, 0): 80.0, (700, 1): None},
              "model": {(600, 0): 22.0, (600, 1): None, (600, 2): None, (700, 0): None, (700, 1): None}}
    files = {}
    for label, runs in onsets.items():
        (tmp_path / label).mkdir()
        for (T, rep), tc in runs.items():
            p = tmp_path / label / f"clusters_T{T}_r{rep}.csv"
            _run_table(tc, t0=16.0, pathway=(0.6, 0.3, 0.1, 0.0, 0.0) if label == "model" else
                       (0.5, 0.3, 0.1, 0.0, 0.1)).to_csv(p, index=False)
            files.setdefault(label, []).append(str(p))
    out = tmp_path / "cmp" / "rates.csv"
    argv = ["analyze", "rates", "--runs", "reference", *files["reference"], "--runs", "model", *files["model"],
            "--from-first-frame", "--size", "100", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "reference T = 600: 2/3 crystallised" in printed and "model T = 700: 0/2 crystallised" in printed
    rates = pd.read_csv(out).set_index(["label", "T"])
    assert list(rates.index) == [("reference", 600.0), ("reference", 700.0), ("model", 600.0), ("model", 700.0)]
    r = rates.loc[("reference", 600.0)]
    # by hand: onsets 12 and 31 ps, one run censored at 100 ps → d = 2, E = 143 ps
    assert (r["replicas"], r["events"], r["censored"], r["exposure"]) == (3, 2, 1, 143.0)
    assert r["k"] == pytest.approx(2 / 143) and r["tau"] == pytest.approx(71.5) and r["naive_mean"] == 21.5
    assert (r["k_lo"], r["k_hi"]) == pytest.approx((chi2.ppf(0.025, 4) / 286, chi2.ppf(0.975, 6) / 286))
    # volume: mean over the frames up to the onset frame (20000 Å³ in the liquid, 19990 from the onset frame)
    V = np.mean([np.mean([2e4, 2e4, 2e4, 19990.0]), np.mean([2e4] * 7 + [19990.0]), 2e4])
    assert r["volume"] == pytest.approx(V) and r["J"] == pytest.approx(2 / 143 / V * 1e12)
    assert r["J_SI"] == pytest.approx(2 / 143 / V * 1e42) and r["interval"] == "two-sided"
    assert (r["pathway_fcc"], r["pathway_hcp"], r["pathway_other"], r["pathway_n"]) == pytest.approx((0.5, 0.3, 0.1, 2))
    m = rates.loc[("model", 700.0)]
    assert m["events"] == 0 and m["interval"] == "upper bound" and m["k_hi"] == pytest.approx(np.log(40) / 200)
    assert rates.loc[("model", 600.0), "pathway_fcc"] == pytest.approx(0.6)
    runs = pd.read_csv(tmp_path / "cmp" / "rates_runs.csv")
    assert len(runs) == 10 and runs["observed"].sum() == 4
    first = runs[(runs["label"] == "reference") & (runs["T"] == 600) & (runs["replica"] == 0)].iloc[0]
    assert first["time"] == pytest.approx(12.0) and first["onset_frame"] == 3 and first["cluster_size"] == 160
    assert (tmp_path / "cmp" / "rates.png").stat().st_size > 5000
    # one set with --label and an induction time: the 12 ps onset is before it
    out2 = tmp_path / "one" / "rates.csv"
    assert main(["analyze", "rates", *files["reference"], "--label", "reference", "--from-first-frame",
                 "--lag", "15", "--out", str(out2)]) == 0
    assert "crystallised at 12" in capsys.readouterr().out
    r2 = pd.read_csv(out2).iloc[0]
    assert (r2["excluded"], r2["events"], r2["exposure"]) == (1, 1, 16.0 + 85.0)


def test_cli_rates_errors_name_the_file(tmp_path, capsys):
    good = tmp_path / "clusters_T600_r0.csv"
    _run_table(20.0).to_csv(good, index=False)
    old = tmp_path / "clusters_T600_r1.csv"
    _run_table(30.0).drop(columns="volume").to_csv(old, index=False)
    out = str(tmp_path / "r.csv")
    assert main(["analyze", "rates", str(good), str(old), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "clusters_T600_r1.csv" in err and "volume" in err and "--volume" in err
    assert main(["analyze", "rates", str(good), str(old), "--volume", "2e4", "--out", out]) == 0
    capsys.readouterr()
    bad = tmp_path / "other" / "clusters_T600_r0.csv"
    bad.parent.mkdir()
    _run_table(20.0).drop(columns="largest_cluster").to_csv(bad, index=False)
    assert main(["analyze", "rates", "--runs", "x", str(bad), "--out", out]) == 2
    assert "other/clusters_T600_r0.csv" in capsys.readouterr().err
    assert main(["analyze", "rates", "--runs", "x", str(good), "--runs", "x", str(good), "--out", out]) == 2
    assert "replica 0 is also" in capsys.readouterr().err
    assert main(["analyze", "rates", "--runs", "x", "--out", out]) == 2
    assert "names no tables" in capsys.readouterr().err
