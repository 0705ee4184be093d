"""Training speed: configurations per second for one optimiser step, by route.

* ``energy/cache``: energy-only training from the descriptor cache — ``EnergyDataset.predict``
  on a batch of frames (rows gathered from the cached symmetry functions, no neighbour
  search), MSE of the energy per atom, backward, AdamW step. Batch 256 frames (the thesis).
* ``energy+forces/positions``: energy and force training from positions —
  ``predict(..., forces=True, create_graph=True)`` on precomputed neighbour graphs (as a
  training run keeps them across epochs), loss on energy per atom and force components,
  backward through the forces (second derivatives), AdamW step. Batches of 8–32 frames.
* ``energy/positions``: energy-only through positions (``predict(..., forces=False)``), to
  show what the cache saves.
* ``energy+forces/store``: energy and force training from the descriptor cache and the
  derivative store (cached ∂G/∂r per neighbour pair, :mod:`meltpot.descriptors.derivatives`):
  the trainer's own loss step (networks forward, ∂E/∂G by autograd, forces as one contraction
  with the stored derivatives, backward through the networks only), every frame of the batch
  with forces. The store (``--store-frames`` frames, float32 by default) is built once, timed
  separately; its bytes per frame on disk and in memory go into the JSON.

Data: 256-atom Al frames (250 for bcc) of the default run if present
(``results/al-default/descriptors/al-thesis.h5`` and ``results/al-default/dataset/``;
training-split frames), else a small liquid-Al dataset made here with the LAMMPS engine
(Mendelev EAM) under ``benchmarks/results/training_data``. Feature set al-thesis (22
functions, r_c 6.8 Å), network 22-10-10-1 tanh, float64. One thread by default
(``torch.set_num_threads``; run with OMP_NUM_THREADS=1). Graph construction (neighbour
search) is timed separately and excluded from the step times. Each case: ``--warmup``
untimed steps, then ``--steps`` timed steps (at least ``--min-seconds``); the median step
time is reported. On CUDA every step ends with ``torch.cuda.synchronize()``.

    OMP_NUM_THREADS=1 python benchmarks/training.py [--device cpu|cuda] [--force-batches 8 16 32]
                                                    [--energy-batch 256] [--steps 5] [--out FILE]

Writes JSON (default benchmarks/results/training.json) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
DEFAULT_RUN = REPO / "results" / "al-default"


# ============================================================================ data
def default_run_data() -> dict | None:
    cache = DEFAULT_RUN / "descriptors" / "al-thesis.h5"
    index = DEFAULT_RUN / "dataset" / "index.parquet"
    splits = DEFAULT_RUN / "dataset" / "splits.parquet"
    if cache.exists() and index.exists() and splits.exists():
        return {"cache": cache, "index": index, "splits": splits, "source": "results/al-default (workflow run)"}
    return None


def make_small_dataset(n_frames: int = 320, seed: int = 1) -> dict:
    """Liquid Al, 256 atoms at 2.3 g/cm³: melt at 2000 K, sample at 1000 K (LAMMPS, Mendelev EAM)."""
    from meltpot.data.index import build_index
    from meltpot.data.io import read_frames, write_frames
    from meltpot.data.splits import make_splits
    from meltpot.descriptors.cache import build_cache
    from meltpot.descriptors.featureset import load_featureset
    from meltpot.reference import MDSegment
    from meltpot.reference.lammps_engine import LammpsEngine
    from meltpot.sampling.structures import build_lattice

    base = RESULTS / "training_data"
    out = {"cache": base / "al-thesis.h5", "index": base / "dataset" / "index.parquet",
           "splits": base / "dataset" / "splits.parquet", "source": f"made here: {n_frames} liquid Al frames"}
    frames_file = base / "frames" / "liquid.extxyz"
    if not frames_file.exists():
        engine = LammpsEngine(["Al"], pair_style="eam/fs", pair_coeff=["* * Al_mm.eam.fs Al"])
        atoms = build_lattice("fcc", 256, 26.9815385 / 6.02214076e23 / 2.3 * 1e24)
        segs = [MDSegment("nvt", 2000.0, steps=2000, timestep=0.002, label="melt"),
                MDSegment("nvt", 1000.0, steps=10 * n_frames, timestep=0.002, sample_every=10, label="liquid")]
        frames = []
        for seg, fr in engine.md(atoms, segs, seed=seed):
            if seg == 1:
                fr.info.update(state_id="liquid_1000K", branch="", phase="liquid", T_target=1000.0,
                               P_target=float("nan"), composition="Al1", engine="lammps", units="metal")
                frames.append(fr)
        frames_file.parent.mkdir(parents=True, exist_ok=True)
        write_frames(frames_file, frames)
    if not out["cache"].exists():
        out["index"].parent.mkdir(parents=True, exist_ok=True)
        entries = [(frames_file, fr.info["source_index"], fr) for fr in read_frames(frames_file)]
        index = build_index(entries, root=out["index"].parent, units="metal")
        index.to_parquet(out["index"], index=False)
        make_splits(index, train=0.9, validation=0.05, test=0.05, seed=seed).to_parquet(out["splits"], index=False)
        build_cache(out["index"], out["cache"], load_featureset("al-thesis", ["Al"]), splits=out["splits"],
                    progress=False)
    return out


# ============================================================================ model
def make_model(cache, index: pd.DataFrame, train_ids, hidden, device):
    from meltpot.model import HDNNP
    from meltpot.model.hdnnp import fit_reference_energies

    torch.manual_seed(0)
    model = HDNNP(cache.featureset(), hidden=hidden, activation="tanh")
    model.set_scaling({el: cache.stats(el)["mean"] for el in cache.elements},
                      {el: cache.stats(el)["std"] for el in cache.elements})
    rows = index.set_index("frame_id").loc[train_ids]
    if len(cache.elements) != 1:
        raise SystemExit(f"this benchmark is for one element; the cache has {cache.elements}")
    counts = rows[["n_atoms"]].to_numpy()
    model.set_reference_energies(fit_reference_energies(rows["energy"], counts, cache.elements))
    return model.to(device)


def optimizer(model, lr=1e-3, weight_decay=1e-4):
    """AdamW with weight decay on weight matrices only (not biases), as in training."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr)


# ============================================================================ timing
def time_steps(step, n_steps: int, warmup: int, min_seconds: float, device) -> list[float]:
    sync = (lambda: torch.cuda.synchronize()) if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    times = []
    t_all = time.perf_counter()
    while len(times) < n_steps or (time.perf_counter() - t_all < min_seconds and len(times) < 1000):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def record(mode, batch, n_atoms_batch, times, **extra) -> dict:
    med = statistics.median(times)
    return {"mode": mode, "batch_frames": batch, "atoms_per_batch": int(n_atoms_batch), "steps": len(times),
            "median_step_s": med, "min_step_s": min(times), "configs_per_s": batch / med,
            "atoms_per_s": n_atoms_batch / med, "loadavg_1min": os.getloadavg()[0], **extra}


def bench_energy_cache(model, cache, index, train_ids, batch, args, device) -> dict:
    from meltpot.train.data import EnergyDataset

    t0 = time.perf_counter()
    data = EnergyDataset(cache, index, train_ids, device=device)
    load_s = time.perf_counter() - t0
    opt = optimizer(model)
    gen = torch.Generator().manual_seed(0)
    batch = min(batch, len(data))
    n_atoms = data.n_atoms.to(torch.float64)
    last = {}

    def step():
        b = torch.randperm(len(data), generator=gen)[:batch].to(device)
        e = data.predict(model, b)
        loss = (((e - data.energy[b]) / n_atoms[b]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last["atoms"] = int(data.n_atoms[b].sum())

    times = time_steps(step, args.steps, args.warmup, args.min_seconds, device)
    return record("energy/cache", batch, last["atoms"], times, dataset_load_s=load_s, dataset_frames=len(data))


def bench_store(model, cache, index, index_path, train_ids, batch, args, device) -> dict:
    from meltpot.descriptors.derivatives import build_store
    from meltpot.train.data import EnergyDataset
    from meltpot.train.settings import TrainSettings
    from meltpot.train.trainer import Trainer

    ids = np.sort(np.random.default_rng(1).choice(train_ids, min(args.store_frames, len(train_ids)), replace=False))
    pos = {int(f): k for k, f in enumerate(index["frame_id"])}
    ids = np.asarray(sorted(ids, key=lambda f: pos[int(f)]))
    path = RESULTS / f"training_store_{args.store_dtype}.h5"
    t0 = time.perf_counter()
    res = build_store(index_path, path, cache.featureset(), ids, dtype=args.store_dtype, progress=False)
    build = {"frames": res.n_frames, "action": res.action, "backend": res.backend, "seconds": res.seconds,
             "frames_per_s": res.n_frames / res.seconds if res.action == "computed" else None,
             "pairs_per_atom": res.n_pairs / float(index.set_index("frame_id").loc[ids, "n_atoms"].sum()),
             "bytes_on_disk": res.bytes, "bytes_per_frame_on_disk": res.bytes / res.n_frames}
    data = EnergyDataset(cache, index, ids, device=device).attach_forces(path)
    store = data.forces_store
    build["bytes_per_frame_in_memory"] = store.nbytes / res.n_frames
    build["bytes_per_pair_in_memory"] = store.nbytes / store.n_pairs
    build["load_seconds"] = time.perf_counter() - t0 - res.seconds
    settings = TrainSettings(batch_size=batch, force_weight=0.1, lr=1e-3, weight_decay=1e-4, progress=False,
                             device=str(device), force_fraction=args.force_fraction)
    trainer = Trainer(model, settings, data, None)
    gen = torch.Generator().manual_seed(0)
    batch = min(batch, len(data))
    last = {}

    def step():
        idx = torch.randperm(len(data), generator=gen)[:batch].to(device)
        trainer.optimizer.zero_grad(set_to_none=True)
        terms = trainer._terms(data, idx, forces=True, stress=False, create_graph=True,
                               generator=gen if args.force_fraction < 1 else None)
        terms["loss"].backward()
        trainer.optimizer.step()
        last["atoms"] = int(data.n_atoms[idx].sum())

    times = time_steps(step, args.steps, args.warmup, args.min_seconds, device)
    return record("energy+forces/store", batch, last["atoms"], times, store=build, store_dtype=args.store_dtype,
                  force_fraction=args.force_fraction)


def bench_positions(model, graphs, e_ref, f_ref, batch, args, device, forces: bool) -> dict:
    from meltpot.model.batch import predict

    opt = optimizer(model)
    sel = list(range(batch))
    g = [graphs[k] for k in sel]
    e = e_ref[sel]
    n = torch.tensor([x.n_atoms for x in g], dtype=torch.float64, device=device)
    f = torch.cat([f_ref[k] for k in sel]) if forces else None

    def step():
        out = predict(model, g, forces=forces, create_graph=forces)
        loss = (((out["energy"] - e) / n) ** 2).mean()
        if forces:
            loss = loss + 0.1 * ((out["forces"] - f) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = time_steps(step, args.force_steps if forces else args.steps, args.warmup, args.min_seconds, device)
    return record("energy+forces/positions" if forces else "energy/positions", batch, int(n.sum()), times)


# ============================================================================ main
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--energy-batch", type=int, default=256)
    p.add_argument("--force-batches", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--positions-energy-batch", type=int, default=32,
                   help="batch for energy-only training through positions (0: skip)")
    p.add_argument("--hidden", type=int, nargs="+", default=[10, 10])
    p.add_argument("--steps", type=int, default=20, help="timed steps of the fast cases")
    p.add_argument("--force-steps", type=int, default=3, help="timed steps of the energy+force cases")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--min-seconds", type=float, default=2.0, help="keep stepping at least this long")
    p.add_argument("--fresh-data", action="store_true", help="ignore the default run; make a small dataset")
    p.add_argument("--store-frames", type=int, default=64, help="frames of the derivative store")
    p.add_argument("--store-batch", type=int, default=32, help="frames per step with forces from the store")
    p.add_argument("--store-dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--force-fraction", type=float, default=1.0, help="fraction of atoms with forces per step")
    p.add_argument("--out", type=Path, default=RESULTS / "training.json")
    args = p.parse_args(argv)

    from meltpot.descriptors.cache import DescriptorCache, read_index
    from meltpot.train.data import ForceDataset

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = None if args.fresh_data else default_run_data()
    data = data or make_small_dataset()
    index = read_index(data["index"])
    splits = pd.read_parquet(data["splits"])
    train_ids = index.loc[index["frame_id"].isin(splits.loc[splits["split"] == "train", "frame_id"]),
                          "frame_id"].to_numpy()
    load_start = os.getloadavg()
    results = []
    with DescriptorCache(data["cache"]) as cache:
        fs = cache.featureset()
        model = make_model(cache, index, train_ids, tuple(args.hidden), device)
        arch = "-".join(str(x) for x in [fs.n_features(cache.elements[0]), *args.hidden, 1])
        print(f"data: {data['source']}; {len(train_ids)} training frames; feature set {fs.name}; net {arch}; "
              f"{args.device}, {torch.get_num_threads()} thread(s)", flush=True)
        results.append(bench_energy_cache(model, cache, index, train_ids, args.energy_batch, args, device))
        print(_line(results[-1]), flush=True)
        results.append(bench_store(model, cache, index, data["index"], train_ids, args.store_batch, args, device))
        print(_line(results[-1]) + f"; store {results[-1]['store']['bytes_per_frame_in_memory'] / 1e6:.1f} MB/frame "
              f"in memory, built at {results[-1]['store']['frames_per_s'] or float('nan'):.2f} frames/s "
              f"({results[-1]['store']['backend']})", flush=True)

    # graphs once (as a training run does), timed separately
    n_graph = max(args.force_batches + [args.positions_energy_batch])
    rng = np.random.default_rng(0)
    ids = np.sort(rng.choice(train_ids, n_graph, replace=False))
    t0 = time.perf_counter()
    fd = ForceDataset.from_index(index, data["index"].parent, ids, model.elements, model.cutoff, device=device)
    build_s = time.perf_counter() - t0
    read_and_graph = {"frames": n_graph, "seconds": build_s, "frames_per_s": n_graph / build_s}
    print(f"neighbour graphs (read + search): {n_graph} frames in {build_s:.2f} s "
          f"({n_graph / build_s:.1f} frames/s)", flush=True)
    e_ref = fd.energy.to(device)
    if args.positions_energy_batch:
        results.append(bench_positions(model, fd.graphs, e_ref, fd.forces, args.positions_energy_batch, args, device,
                                       forces=False))
        print(_line(results[-1]), flush=True)
    for b in args.force_batches:
        results.append(bench_positions(model, fd.graphs, e_ref, fd.forces, b, args, device, forces=True))
        print(_line(results[-1]), flush=True)

    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    report = {
        "benchmark": "training", "data": data["source"], "featureset": f"{fs.name} ({fs.n_features('Al')} functions, "
        f"r_c {fs.cutoff_radius:g} Å)", "network": f"{arch} tanh", "n_parameters": sum(p.numel() for p in
                                                                                       model.parameters()),
        "dtype": "float64", "device": args.device, "gpu": gpu, "threads": torch.get_num_threads(),
        "optimizer": "AdamW (weight decay 1e-4 on weights only), lr 1e-3",
        "loss": "MSE of energy per atom (+ 0.1 × MSE of force components)",
        "statistic": "median step time", "torch": torch.__version__, "machine": platform.platform(),
        "cpu_count": os.cpu_count(), "loadavg_start_end": [load_start, os.getloadavg()],
        "note": "load averages above ~1 mean another process shared this machine",
        "graphs": read_and_graph, "results": results,
        "ratios": _ratios(results),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print()
    print(f"{'mode':26s} {'batch':>5s} {'step (s)':>9s} {'configs/s':>10s} {'atoms/s':>10s}")
    for r in results:
        print(f"{r['mode']:26s} {r['batch_frames']:5d} {r['median_step_s']:9.4f} {r['configs_per_s']:10.1f} "
              f"{r['atoms_per_s']:10.0f}")
    print(f"\n{args.out}")


def _ratios(results: list[dict]) -> dict:
    """configs/s of the store route over the positions route (best batch) and the cache route."""
    by = {}
    for r in results:
        by[r["mode"]] = max(by.get(r["mode"], 0.0), r["configs_per_s"])
    out = {}
    if "energy+forces/store" in by and "energy+forces/positions" in by:
        out["forces_store_over_positions"] = by["energy+forces/store"] / by["energy+forces/positions"]
    if "energy+forces/store" in by and "energy/cache" in by:
        out["forces_store_over_energy_cache"] = by["energy+forces/store"] / by["energy/cache"]
    return out


def _line(r: dict) -> str:
    return (f"  {r['mode']}, batch {r['batch_frames']}: {r['median_step_s']:.4f} s/step, "
            f"{r['configs_per_s']:.1f} configs/s ({r['steps']} steps, load {r['loadavg_1min']:.2f})")


if __name__ == "__main__":
    sys.exit(main())
