"""Feature-selection payoff: inference speed of the full vs selected feature sets, and the λ sweep's cost.

For each feature set (the full cached set and each subset given with --sets NAME=featureset.yaml,
e.g. the AGL choice or a filter set), builds a 22-10-10-1-style HDNNP on it and times energy +
forces from positions (descriptors, network, autograd) on frames of a dataset — the work LAMMPS
would do per step — reporting configurations/s and atom-steps/s and the speed-up over the full set
(in the same run). With --path-dir it also reports the wall time of a finished λ sweep (from the
per-λ result files' timestamps). Writes JSON (default benchmarks/results/selection.json).

    OMP_NUM_THREADS=1 python benchmarks/selection.py --cache C.h5 --index I --sets agl=fs.yaml
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from meltpot.descriptors.cache import DescriptorCache, read_index
from meltpot.descriptors.featureset import load_featureset
from meltpot.model import HDNNP
from meltpot.model.batch import predict
from meltpot.train.data import ForceDataset


def rate(model, graphs, repeats: int) -> float:
    """Configurations per second for energy + forces (median of repeats)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for g in graphs:
            predict(model, [g], forces=True)
        times.append(time.perf_counter() - t0)
    return len(graphs) / float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--index", required=True)
    ap.add_argument("--sets", nargs="*", default=[], help="NAME=featureset.yaml")
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--path-dir", help="a finished `meltpot select path` folder")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "selection.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    with DescriptorCache(args.cache) as cache:
        full = cache.featureset()
    index = read_index(args.index)
    ids = index["frame_id"].to_numpy()[:: max(1, len(index) // args.frames)][: args.frames]
    sets = {"full": full} | {n: load_featureset(p) for n, p in (s.split("=", 1) for s in args.sets)}
    rows = []
    for name, fs in sets.items():
        model = HDNNP(fs, hidden=(10, 10))
        data = ForceDataset.from_index(index, Path(args.index).parent, ids, fs.elements, fs.cutoff_radius)
        r = rate(model, data.graphs, args.repeats)
        n_atoms = float(data.n_atoms.float().mean())
        rows.append({"set": name, "n_features": sum(fs.n_features(e) for e in fs.elements),
                     "n_angular": sum(f.is_angular for e in fs.elements for f in fs.per_element[e]),
                     "configs_per_s": r, "atom_steps_per_s": r * n_atoms})
    for row in rows:
        row["speedup_vs_full"] = row["configs_per_s"] / rows[0]["configs_per_s"]
        print(f"{row['set']:>8s}: {row['n_features']:3d} features ({row['n_angular']} angular) "
              f"{row['configs_per_s']:7.2f} configs/s  {row['atom_steps_per_s']:9.0f} atom-steps/s  "
              f"×{row['speedup_vs_full']:.2f}")
    result = {"benchmark": "selection", "threads": 1, "machine": platform.platform(), "cache": args.cache,
              "inference": rows}
    if args.path_dir:
        stamps = sorted(p.stat().st_mtime for p in Path(args.path_dir).glob("lambda_*/result.json"))
        settings = Path(args.path_dir) / "settings.json"
        if stamps and settings.exists():
            result["sweep"] = {"n_lambdas": len(stamps), "wall_s_after_first": stamps[-1] - stamps[0]}
            print(f"λ sweep: {len(stamps)} λ, {stamps[-1] - stamps[0]:.0f} s from the first to the last λ")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
