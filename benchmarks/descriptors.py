"""Descriptor speed: atom-environments per second, meltpot vs DScribe ACSF, one CPU thread.

The thesis Al feature set (22 functions, r_c = 6.8 Å: 12 radial + 10 angular) in its narrow
(n2p2 type 3 = DScribe G4) and wide (type 9 = DScribe G5) angular variants, on liquid Al
cells of 256 and 864 atoms at ≈ 2.3 g/cm³, made by melting fcc Al with the Mendelev EAM in
meltpot's LAMMPS engine (2000 K, then 1000 K, NVT). DScribe has only the cosine cutoff,
so meltpot runs with the cosine cutoff for the like-with-like comparison, and also with
its default polynomial cutoff; all float64, plus meltpot float32 as an extra line.

Each measurement runs in its own subprocess (single thread: OMP_NUM_THREADS=1,
torch.set_num_threads(1)): one warm-up call, then ``--repeats`` timed calls of the whole
per-frame computation (neighbour search included: ``AtomsDescriptor.features`` for meltpot,
``ACSF.create`` on the wrapped cell for DScribe); the median is reported. Peak memory is the
subprocess's peak resident set size (``getrusage(RUSAGE_SELF).ru_maxrss`` at its end, the same
number the parent reads through RUSAGE_CHILDREN for that child) and the increase of the peak
over the process's state just before the first computation (imports and set-up excluded).

    OMP_NUM_THREADS=1 python benchmarks/descriptors.py [--sizes 256 864] [--repeats 5] [--out FILE]
                                                      [--profile]   # torch.profiler table per meltpot case

Writes JSON (default benchmarks/results/descriptors.json) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
AL_MASS = 26.9815385
DENSITY = 2.3                                  # g/cm³, liquid Al near melting
RC = 6.8


# ============================================================================ cells
def volume_per_atom(density_g_cm3: float = DENSITY) -> float:
    return AL_MASS / 6.02214076e23 / density_g_cm3 * 1e24   # Å³


def make_liquid_cells(sizes, seed: int = 1, steps: int = 300) -> dict[int, Path]:
    """Liquid Al cells (extxyz under benchmarks/results/cells), reused when present."""
    from ase.io import write

    out = {}
    todo = []
    for n in sizes:
        path = RESULTS / "cells" / f"al_liquid_{n}.extxyz"
        out[n] = path
        if not path.exists():
            todo.append(n)
    if not todo:
        return out
    from meltpot.reference import MDSegment
    from meltpot.reference.lammps_engine import LammpsEngine
    from meltpot.sampling.structures import build_lattice

    engine = LammpsEngine(["Al"], pair_style="eam/fs", pair_coeff=["* * Al_mm.eam.fs Al"])
    for n in todo:
        atoms = build_lattice("fcc", n, volume_per_atom())
        if len(atoms) != n:
            raise SystemExit(f"fcc supercell has {len(atoms)} atoms, not {n}: use a size 4·k³")
        segs = [MDSegment(ensemble="nvt", temperature=2000.0, steps=steps, timestep=0.002, velocity_seed=seed,
                          label="melt"),
                MDSegment(ensemble="nvt", temperature=1000.0, steps=steps, timestep=0.002, sample_every=steps,
                          label="liquid")]
        frames = [f for _, f in engine.md(atoms, segs, seed=seed)]
        liquid = frames[-1]
        liquid.calc = None
        out[n].parent.mkdir(parents=True, exist_ok=True)
        write(out[n], liquid, format="extxyz")
        print(f"made {out[n]} ({n} atoms, T_inst {liquid.info.get('T_inst', float('nan')):.0f} K)", flush=True)
    return out


# ============================================================================ feature sets
def thesis_al(angular_type: str, cutoff: str):
    """The thesis Al set with every angular function's type replaced by ``angular_type``."""
    from dataclasses import replace

    from meltpot.descriptors import FeatureSet, load_featureset

    fs = load_featureset("al-thesis", ["Al"])
    fns = [replace(f, type=angular_type) if f.is_angular else f for f in fs.per_element["Al"]]
    assert len(fns) == 22 and {f.rc for f in fns} == {RC}
    return FeatureSet({"Al": fns}, cutoff=cutoff, name=f"al-thesis-{angular_type}-{cutoff}")


# ============================================================================ worker (one subprocess per case)
def _vm_hwm_kib() -> int:
    """Peak resident set size so far (KiB) from /proc (Linux); falls back to ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(spec: dict) -> dict:
    from ase.io import read

    atoms = read(spec["cell"])
    n = len(atoms)
    variant = spec["variant"]                 # narrow | wide
    ang_type = "angular_narrow" if variant == "narrow" else "angular_wide"
    extra = {}
    if spec["tool"] == "dscribe":
        from dscribe.descriptors import ACSF

        fs = thesis_al(ang_type, "cosine")
        fns = fs.per_element["Al"]
        g2 = [[f.eta, f.rs] for f in fns if not f.is_angular]
        ang = [[f.eta, f.zeta, f.lam] for f in fns if f.is_angular]
        kw = {"g4_params": ang} if variant == "narrow" else {"g5_params": ang}
        acsf = ACSF(species=["Al"], r_cut=RC, g2_params=g2, periodic=True, **kw)
        wrapped = atoms.copy()
        wrapped.wrap()                         # DScribe does not wrap positions itself

        def run():
            return acsf.create(wrapped)
    else:
        import torch

        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:                   # already set (worker called twice in one process)
            pass
        from meltpot.descriptors.compute import AtomsDescriptor
        from meltpot.descriptors.neighbors import neighbor_pairs

        dtype = {"float64": torch.float64, "float32": torch.float32}[spec["dtype"]]
        fs = thesis_al(ang_type, spec["cutoff"])
        desc = AtomsDescriptor(fs, dtype=dtype, device=spec.get("device", "cpu"))
        pos = torch.tensor(atoms.positions, dtype=dtype)
        cell = torch.tensor(atoms.cell.array, dtype=dtype)
        i, _, _ = neighbor_pairs(pos, cell, atoms.pbc, RC)
        extra["mean_neighbours"] = len(i) / n
        # time split: neighbour search alone (median of a few)
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            neighbor_pairs(pos, cell, atoms.pbc, RC)
            ts.append(time.perf_counter() - t0)
        extra["neighbour_search_s"] = statistics.median(ts)

        cuda = desc.device.type == "cuda"

        def run():
            G = desc.features(atoms)[0]
            if cuda:
                torch.cuda.synchronize()
            return G

    hwm_before = _vm_hwm_kib()
    if spec.get("device", "cpu") == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    out = run()                                # warm-up (also the peak-memory run)
    times = []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    hwm_after = _vm_hwm_kib()
    result = {"n_atoms": n, "times_s": times, "median_s": statistics.median(times),
              "env_per_s": n / statistics.median(times), "n_features_out": int(out.shape[1]),
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "peak_increase_mib": (hwm_after - hwm_before) / 1024, **extra}
    if spec.get("device", "cpu") == "cuda":
        import torch

        result["gpu_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    if spec.get("profile") and spec["tool"] == "meltpot":
        import torch
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
            run()
        result["profile"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18)
    return result


def run_case(spec: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    # the parent's view: largest peak RSS among the children waited for so far (monotone)
    res["children_maxrss_mib_so_far"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return res


# ============================================================================ main
CASES = [  # (label, tool, cutoff, dtype)
    ("dscribe", "dscribe", "cosine", "float64"),
    ("meltpot cosine", "meltpot", "cosine", "float64"),
    ("meltpot polynomial", "meltpot", "polynomial", "float64"),
    ("meltpot cosine f32", "meltpot", "cosine", "float32"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 864])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--md-steps", type=int, default=300, help="MD steps per melting segment")
    ap.add_argument("--out", default=str(RESULTS / "descriptors.json"))
    ap.add_argument("--profile", action="store_true", help="print a torch.profiler table per meltpot case")
    ap.add_argument("--no-gpu", action="store_true", help="skip the GPU lines even when CUDA is available")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    cells = make_liquid_cells(args.sizes, steps=args.md_steps)
    cases = [(label, tool, cutoff, dtype, "cpu") for label, tool, cutoff, dtype in CASES]
    gpu = None
    if not args.no_gpu:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
            cases += [("meltpot GPU cosine", "meltpot", "cosine", "float64", "cuda"),
                      ("meltpot GPU cos f32", "meltpot", "cosine", "float32", "cuda")]
    load_start = os.getloadavg()
    rows = []
    for n in args.sizes:
        for variant in ("narrow", "wide"):
            base = None
            for label, tool, cutoff, dtype, device in cases:
                spec = {"tool": tool, "variant": variant, "cutoff": cutoff, "dtype": dtype, "device": device,
                        "cell": str(cells[n]), "repeats": args.repeats, "profile": args.profile}
                res = run_case(spec)
                if tool == "dscribe":
                    base = res["env_per_s"]
                row = {"label": label, "tool": tool, "variant": variant, "cutoff": cutoff, "dtype": dtype,
                       "device": device, "threads": 1 if device == "cpu" else None,
                       "loadavg_1min": os.getloadavg()[0], **res,
                       "ratio_vs_dscribe": res["env_per_s"] / base if base else None}
                prof = row.pop("profile", None)
                rows.append(row)
                nb = f"{row['mean_neighbours']:.1f}" if "mean_neighbours" in row else "-"
                print(f"{n:4d} {variant:6s} {label:20s} {row['env_per_s']:9.0f} env/s  "
                      f"×{row['ratio_vs_dscribe']:.2f}  nb/atom {nb:>5s}  peak {row['peak_rss_mib']:6.0f} MiB "
                      f"(+{row['peak_increase_mib']:.0f})", flush=True)
                if prof:
                    print(prof, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "descriptors", "featureset": "al-thesis (22 functions, r_c 6.8 Å)",
               "density_g_cm3": DENSITY, "threads": 1, "repeats": args.repeats, "statistic": "median",
               "machine": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
               "gpu": gpu, "loadavg_start_end": [load_start, os.getloadavg()],
               "note": "load averages above ~1 mean another process shared this 2-core machine",
               "results": rows}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwritten {out}")
    print(f"\n{'atoms':>5s} {'angular':7s} {'implementation':20s} {'env/s':>9s} {'vs DScribe':>10s} {'peak MiB':>9s}")
    for r in rows:
        print(f"{r['n_atoms']:5d} {r['variant']:7s} {r['label']:20s} {r['env_per_s']:9.0f} "
              f"{r['ratio_vs_dscribe']:10.2f} {r['peak_rss_mib']:9.0f}")


if __name__ == "__main__":
    main()
