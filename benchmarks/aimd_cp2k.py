"""AIMD speed with CP2K: ASE stepping the integrator through ``cp2k_shell`` (``md_driver: ase``)
against CP2K running its own MD (``md_driver: native``), same settings, same start.

32-atom liquid-density Al (2.35 g/cm³, a rattled fcc cell), NVT at 1000 K (Nosé–Hoover chain,
tdamp 100 fs), 2 fs steps, a labelled frame every step, PBE with SZV-MOLOPT-SR-GTH at the Γ point
and the library's other CP2K defaults (400 Ry density grid, Fermi–Dirac 0.1 eV). Both runs
start from the same positions and seeded velocities in one process, one after the other;
the wall time of ``engine.md`` and the CPU time of the process tree (Python + CP2K) are
divided by the steps (the ASE driver's ``cp2k_shell`` is
started, outside the timing, when its engine is built; the native driver starts ``cp2k``
inside it, once per segment). Writes docs/results/benchmark-aimd-cp2k.json.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/aimd_cp2k.py [--steps 10] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

from meltpot.reference import MDSegment, make_engine
from meltpot.sampling.structures import volume_per_atom_from_density

DFT = {"xc": "PBE", "basis": "SZV-MOLOPT-SR-GTH", "kpts": "gamma", "smearing": {"width": 0.1}}


def cp2k_version() -> str:
    out = subprocess.run(["cp2k", "--version"], capture_output=True, text=True).stdout
    return next((ln.strip() for ln in out.splitlines() if ln.strip().startswith("CP2K version")), out.strip()[:80])


def tree_cpu_s() -> float:
    """CPU seconds (user + system) of this process, its finished children and its live
    descendants (``cp2k_shell``, ``cp2k``): the measure that a shared machine's load does not
    inflate the way it inflates wall time."""
    tick = os.sysconf("SC_CLK_TCK")
    stats, parent = {}, {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(d.name)] = int(f[1])
            stats[int(d.name)] = sum(int(x) for x in f[11:15])   # utime stime cutime cstime
    me, total = os.getpid(), 0
    for pid, t in stats.items():
        p = pid
        while p > 1 and p != me:
            p = parent.get(p, 0)
        if p == me:
            total += t
    return total / tick


def start(seed: int = 7):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    v = volume_per_atom_from_density(2.35, {"Al": 1.0}, ["Al"], None) * len(atoms)
    atoms.set_cell(atoms.cell * (v / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
    atoms.positions += np.random.default_rng(seed).normal(scale=0.15, size=atoms.positions.shape)
    return atoms


def run(driver: str, atoms, steps: int, folder: Path) -> dict:
    eng = make_engine({"engine": "cp2k", "dft": dict(DFT, md_driver=driver)}, ["Al"], workdir=folder / driver)
    seg = MDSegment(ensemble="nvt", temperature=1000.0, steps=steps, timestep=0.002, sample_every=1,
                    tdamp=0.1, velocity_seed=11, label="bench")
    c0, t0 = tree_cpu_s(), time.perf_counter()
    frames = [f for _, f in eng.md(atoms, [seg], seed=1)]
    wall, cpu = time.perf_counter() - t0, tree_cpu_s() - c0
    assert len(frames) == steps
    return {"wall_s": wall, "s_per_step": wall / steps, "cpu_s": cpu, "cpu_s_per_step": cpu / steps,
            "frames": len(frames),
            "scf_iterations": [int(f.info["scf_iterations"]) for f in frames],
            "energy_last_eV": float(frames[-1].get_potential_energy()),
            "T_inst_last_K": float(frames[-1].info["T_inst"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "results"
                                         / "benchmark-aimd-cp2k.json"))
    args = ap.parse_args()
    atoms = start()
    with tempfile.TemporaryDirectory() as tmp:
        res = {d: run(d, atoms, args.steps, Path(tmp)) for d in ("ase", "native")}
    ratio = res["ase"]["s_per_step"] / res["native"]["s_per_step"]
    cpu_ratio = res["ase"]["cpu_s_per_step"] / res["native"]["cpu_s_per_step"]
    for d, r in res.items():
        print(f"{d:7s} {r['s_per_step']:7.2f} s/step wall, {r['cpu_s_per_step']:7.2f} CPU-s/step, "
              f"SCF iterations {r['scf_iterations']}")
    print(f"ase / native = {ratio:.2f} (wall), {cpu_ratio:.2f} (CPU)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "aimd-cp2k", "cp2k": cp2k_version(), "n_atoms": len(atoms), "steps": args.steps,
        "settings": {"dft": DFT, "ecut_eV": "library default (400 Ry)", "ensemble": "nvt", "T_K": 1000.0,
                     "timestep_ps": 0.002, "tdamp_ps": 0.1, "sample_every": 1, "density_g_cm3": 2.35},
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0), "machine": platform.platform(),
        "load_average_at_end": os.getloadavg(), "note": "wall time on a shared 2-core machine, run under nice -n 19",
        "results": res, "ratio_ase_over_native": ratio, "cpu_ratio_ase_over_native": cpu_ratio,
    }, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
