"""Sampling-stage speed: reference MD steps per second, LAMMPS engine vs ASE, same potential.

Runs NVT MD of fcc Al with the Mendelev EAM (Al_mm.eam.fs) in meltpot's LAMMPS engine and
with ASE's EAM calculator (the pure-Python peer a user might otherwise drive), in the same
process, and reports steps/s, atom-steps/s and the speed ratio. Also times single-point
labelling of frames (imports, relabelling). Writes JSON (default benchmarks/results/sampling.json).

    OMP_NUM_THREADS=1 python benchmarks/sampling.py [--sizes 256 864] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from meltpot.lammps_env import potentials_dir
from meltpot.reference import MDSegment
from meltpot.reference.ase_engine import AseEngine
from meltpot.reference.lammps_engine import LammpsEngine
from meltpot.sampling.structures import build_lattice


def md_rate(engine, atoms, steps: int) -> float:
    seg = MDSegment(ensemble="nvt", temperature=600.0, steps=steps, timestep=0.002, sample_every=steps,
                    velocity_seed=1)
    t0 = time.perf_counter()
    frames = list(engine.md(atoms, [seg], seed=1))
    dt = time.perf_counter() - t0
    assert len(frames) == 1
    return steps / dt


def label_rate(engine, atoms, n: int) -> float:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(n):
        a = atoms.copy()
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        engine.label(a)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 864])
    ap.add_argument("--steps", type=int, default=2000, help="LAMMPS MD steps per size")
    ap.add_argument("--ase-steps", type=int, default=20, help="ASE MD steps per size")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sampling.json"))
    args = ap.parse_args()
    lmp = LammpsEngine(["Al"], pair_style="eam/fs", pair_coeff=["* * Al_mm.eam.fs Al"])
    ase = AseEngine(["Al"], calculator="EAM", kwargs={"potential": str(potentials_dir() / "Al_mm.eam.fs")})
    rows = []
    for n in args.sizes:
        atoms = build_lattice("fcc", n, 16.6)
        r_lmp = md_rate(lmp, atoms, args.steps)
        r_ase = md_rate(ase, atoms, args.ase_steps)
        l_lmp = label_rate(lmp, atoms, 50)
        l_ase = label_rate(ase, atoms, 5)
        rows.append({"n_atoms": len(atoms),
                     "md_steps_per_s": {"meltpot_lammps": r_lmp, "ase_eam": r_ase},
                     "md_atom_steps_per_s": {"meltpot_lammps": r_lmp * len(atoms), "ase_eam": r_ase * len(atoms)},
                     "md_speedup_vs_ase": r_lmp / r_ase,
                     "labels_per_s": {"meltpot_lammps": l_lmp, "ase_eam": l_ase},
                     "label_speedup_vs_ase": l_lmp / l_ase})
        print(f"{len(atoms):5d} atoms: LAMMPS {r_lmp:8.1f} steps/s, ASE {r_ase:6.2f} steps/s "
              f"(×{r_lmp / r_ase:.0f}); labels {l_lmp:.0f}/s vs {l_ase:.1f}/s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "sampling", "potential": "Al_mm.eam.fs", "threads": 1,
                               "machine": platform.platform(), "results": rows}, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
