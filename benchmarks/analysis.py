"""Local-order analysis cost per frame at ~100 000 atoms: CNA (OVITO), q̄4/q̄6 (pyscal3, and OVITO
as the peer), solid atoms + largest cluster (pyscal3).

Two frames of fcc Al (a = 4.05 Å, 30×30×28 cubic cells = 100 800 atoms): "crystal" with Gaussian
displacements of 0.1 Å (thermal), "disordered" with 0.5 Å (liquid-like local order: CNA finds
almost no crystal). One thread for every library (OVITO_THREAD_COUNT=1, pyscal3.set_num_threads(1))
unless --threads says otherwise. Each timing is the median of --repeats runs. Peer ratios: OVITO
vs pyscal3 for q̄6 (same cutoff neighbours, same numbers) and pyscal3 vs OVITO for adaptive CNA.
Writes JSON (default benchmarks/results/analysis.json; --small: 4 000 atoms, a quick check,
written to analysis_small.json).

    OMP_NUM_THREADS=1 python benchmarks/analysis.py [--small]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median wall time (s) of ``fn()`` over ``repeats`` calls, and the last result."""
    import numpy as np

    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="4 000 atoms instead of 100 800")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="threads for OVITO and pyscal3")
    ap.add_argument("--cutoff", type=float, default=3.45, help="neighbour cutoff (Å) for q̄6 and clusters")
    ap.add_argument("--out", help="JSON file (default benchmarks/results/analysis[_small].json)")
    args = ap.parse_args()
    os.environ["OVITO_THREAD_COUNT"] = str(args.threads)  # read when OVITO starts
    import numpy as np
    import pyscal3
    from ase.build import bulk

    from meltpot.analysis import local_order as lo

    pyscal3.set_num_threads(args.threads)
    reps = (10, 10, 10) if args.small else (30, 30, 28)
    ideal = bulk("Al", "fcc", a=4.05, cubic=True).repeat(reps)
    rng = np.random.default_rng(0)
    results = {}
    for name, sigma in (("crystal", 0.1), ("disordered", 0.5)):
        atoms = ideal.copy()
        atoms.positions += rng.normal(scale=sigma, size=atoms.positions.shape)
        r = {"n_atoms": len(atoms), "sigma_A": sigma}
        r["to_ovito_s"], _ = timed(lambda: lo.to_ovito(atoms), args.repeats)
        r["cna_adaptive_ovito_s"], cls = timed(lambda: lo.cna(atoms), args.repeats)
        r["cna_fixed_ovito_s"], _ = timed(lambda: lo.cna(atoms, args.cutoff), args.repeats)
        r["cna_adaptive_pyscal3_s"], counts = timed(
            lambda: pyscal3.common_neighbor_analysis(lo._bare(atoms)), args.repeats)
        r["q46bar_pyscal3_s"], q = timed(lambda: lo.steinhardt(atoms, (4, 6), args.cutoff), args.repeats)
        r["q46bar_pyscal3_adaptive_s"], _ = timed(lambda: lo.steinhardt(atoms, (4, 6), "adaptive"), args.repeats)
        r["q46bar_ovito_s"], qo = timed(lambda: lo.steinhardt_ovito(atoms, (4, 6), args.cutoff), args.repeats)
        r["solids_cluster_pyscal3_s"], sol = timed(lambda: lo.find_solids(atoms, args.cutoff), args.repeats)
        frac = lo.cna_fractions(cls)
        r.update(fcc_fraction=frac["fcc"], crystalline_fraction=frac["crystalline"],
                 cna_counts_equal=all(lo.class_counts(cls)[k] == counts[k] for k in ("fcc", "hcp", "bcc")),
                 q6bar_mean=float(q[6].mean()), q6bar_max_diff_ovito=float(np.abs(q[6] - qo[6]).max()),
                 n_solid=sol.n_solid, largest_cluster=sol.largest_size,
                 ratio_q46bar_ovito_over_pyscal3=r["q46bar_ovito_s"] / r["q46bar_pyscal3_s"],
                 ratio_cna_pyscal3_over_ovito=r["cna_adaptive_pyscal3_s"] / r["cna_adaptive_ovito_s"])
        results[name] = r
        print(f"{name:>10s} ({len(atoms)} atoms): CNA {r['cna_adaptive_ovito_s']:.3f} s (OVITO adaptive), "
              f"{r['cna_fixed_ovito_s']:.3f} s (fixed), {r['cna_adaptive_pyscal3_s']:.3f} s (pyscal3); "
              f"q̄4,q̄6 {r['q46bar_pyscal3_s']:.3f} s (pyscal3) vs {r['q46bar_ovito_s']:.3f} s (OVITO); "
              f"solids+cluster {r['solids_cluster_pyscal3_s']:.3f} s; crystalline {frac['crystalline']:.3f}, "
              f"largest cluster {sol.largest_size}")
    import ovito

    result = {"benchmark": "analysis", "threads": args.threads, "repeats": args.repeats,
              "machine": platform.platform(), "cpu_count": os.cpu_count(), "cutoff_A": args.cutoff,
              "versions": {"ovito": ovito.version_string, "pyscal3": pyscal3.__version__},
              "frames": results}
    default = Path(__file__).parent / "results" / ("analysis_small.json" if args.small else "analysis.json")
    out = Path(args.out) if args.out else default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
