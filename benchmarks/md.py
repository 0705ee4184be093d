"""MD speed of the meltpot pair style beside eam/fs and SNAP, and NVE energy drift, in one run.

A liquid Al configuration is made once per size with Mendelev's EAM (melt at 2000 K, 1200 K
equilibration, ``write_data``); every potential then runs NVT from exactly that configuration in
the wheel's ``lmp`` (one MPI rank, ``OMP_NUM_THREADS=1``): ``eam/fs`` (Al_mm.eam.fs), SNAP
(Ni_Zuo_JPCA2020, on the same positions as Ni: a C++ ML-potential peer) and the meltpot plugin
with each model given (default: the dense model of the default run and, when the selection
stage has run, the retrained model at the chosen λ: full vs selected feature set);
``--subset NAME=I,J,…`` adds the first model shrunk to those feature indices (its weights sliced
by ``shrink_model``: a speed measurement of a smaller feature set, not a trained model). The
plugin computes the symmetry functions with the compiled kernel and runs only the networks in
TorchScript. Reported: timesteps/s, atom-steps/s and the ratios to eam/fs and to SNAP measured
in the same run (the machines are noisy; ratios travel better than absolute rates). ``--device cuda`` runs the meltpot models on
a GPU (when one is present). ``--single`` adds the first model with ``precision single`` (the
kernel in float) and its force difference to double on one configuration; ``--mpi 2`` adds the
first model on two MPI ranks (ratio to one rank). ``--nve-steps N`` adds an NVE run of the first
model (and with ``--single`` its single-precision twin) on the smallest liquid with a 1 fs step
and reports the total-energy drift (meV/atom/ps, linear fit) and the RMS fluctuation.
``small_vs_large``: atom-steps/s at the smallest size over those at the largest. Writes JSON
(default benchmarks/results/md.json).

    OMP_NUM_THREADS=1 python benchmarks/md.py --sizes 256 4000 --nve-steps 1000
    OMP_NUM_THREADS=1 python benchmarks/md.py --sizes 256 2048 --seconds 4 --subset subset5=2,4,9,16,19 \
        --single --mpi 2 --nve-steps 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path

import numpy as np

from meltpot.analysis.trajectory import read_log
from meltpot.export.ranges import training_stats
from meltpot.export.torchscript import write_torchscript
from meltpot.lammps_env import lmp_executable, potentials_dir, run_environment
from meltpot.md.runner import _mpiexec
from meltpot.manifest import write_json
from meltpot.model.modelfile import load_model
from meltpot.plugin.build import build_plugin, pair_commands

ROOT = Path(__file__).resolve().parents[1]


def run_lmp(workdir: Path, lines: list[str], ranks: int = 1) -> float:
    """Run LAMMPS on ``lines`` in ``workdir`` (``ranks`` MPI ranks); returns the loop time of the last run (s)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.lmp").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", LAMMPS_POTENTIALS=str(potentials_dir()), **run_environment())
    cmd = [str(lmp_executable()), "-in", "in.lmp", "-log", "log.lammps", "-nocite", "-screen", "none"]
    if ranks > 1:
        cmd = [_mpiexec(lmp_executable()), "-n", str(ranks), *cmd]
    res = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    log = (workdir / "log.lammps").read_text() if (workdir / "log.lammps").exists() else res.stdout
    if res.returncode != 0:
        raise RuntimeError(f"LAMMPS failed in {workdir}:\n{log[-2000:]}")
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on", log)
    return float(loops[-1])


def make_liquid(workdir: Path, n_cells: int) -> Path:
    """4·n_cells³ atoms of liquid Al (EAM) at 1200 K, written as a data file."""
    data = workdir / f"liquid_{4 * n_cells ** 3}.data"
    if not data.exists():
        run_lmp(workdir / f"make_{n_cells}", [
            "units metal", "atom_style atomic", "lattice fcc 4.25", f"region b block 0 {n_cells} 0 {n_cells} 0 {n_cells}",
            "create_box 1 b", "create_atoms 1 box", "mass 1 26.98", "pair_style eam/fs",
            "pair_coeff * * Al_mm.eam.fs Al", "velocity all create 2000 7 loop geom", "timestep 0.002",
            "fix t all nvt temp 2000 1200 0.2", "run 1500", "unfix t", "fix t all nvt temp 1200 1200 0.2", "run 1000",
            f"write_data {data} nocoeff"])
    return data


def speed(workdir: Path, data: Path, pair: list[str], mass: float, steps: int, ranks: int = 1) -> dict:
    lines = ["units metal", "atom_style atomic", f"read_data {data}", f"mass 1 {mass}", *pair,
             "velocity all create 1200 3 loop geom", "timestep 0.001", "fix t all nvt temp 1200 1200 0.1",
             "thermo 100000", "run 2", f"run {steps}"]
    loop = run_lmp(workdir, lines, ranks)
    n = int(re.search(r"(\d+) atoms", (data).read_text()).group(1))
    return {"steps": steps, "seconds": loop, "timesteps_per_s": steps / loop, "atom_steps_per_s": n * steps / loop,
            "ranks": ranks}


def force_difference(workdir: Path, data: Path, double: list[str], single: list[str]) -> dict:
    """Forces of the same configuration with the double and the single-precision kernel: the
    largest and the RMS component difference (eV/Å) and the RMS relative to the forces' RMS."""
    forces = []
    for tag, pair in (("double", double), ("single", single)):
        run_lmp(workdir / tag, ["units metal", "atom_style atomic", f"read_data {data}", "mass 1 26.98", *pair,
                                "run 0", "write_dump all custom forces.dump id fx fy fz modify sort id format float %.17g"])
        rows = (workdir / tag / "forces.dump").read_text().splitlines()[9:]
        forces.append(np.array([[float(v) for v in r.split()[1:]] for r in rows]))
    d = forces[1] - forces[0]
    return {"max_abs_eV_per_A": float(np.abs(d).max()), "rms_eV_per_A": float(np.sqrt((d ** 2).mean())),
            "rms_relative": float(np.sqrt((d ** 2).mean() / (forces[0] ** 2).mean()))}


def nve_drift(workdir: Path, data: Path, pair: list[str], steps: int) -> dict:
    lines = ["units metal", "atom_style atomic", f"read_data {data}", "mass 1 26.98", *pair,
             "velocity all create 1000 5 loop geom", "timestep 0.001", "fix e all nve",
             "thermo 10", "thermo_style custom step time temp pe etotal", "thermo_modify format float %.12g",
             f"run {steps}"]
    run_lmp(workdir, lines)
    th = read_log(workdir / "log.lammps")
    n = int(re.search(r"(\d+) atoms", data.read_text()).group(1))
    t, e = th["Time"].to_numpy(), th["TotEng"].to_numpy() / n
    slope = np.polyfit(t, e, 1)[0]
    return {"atoms": n, "steps": steps, "timestep_ps": 0.001, "T_mean_K": float(th["Temp"].mean()),
            "drift_meV_per_atom_per_ps": 1e3 * float(slope),
            "rms_fluctuation_meV_per_atom": 1e3 * float(np.std(e - np.polyval(np.polyfit(t, e, 1), t))),
            "max_deviation_meV_per_atom": 1e3 * float(np.abs(e - e[0]).max())}


def default_models() -> list[str]:
    run = ROOT / "results" / "al-default"
    out = []
    if (run / "models" / "dense.pt").exists():
        out.append(f"full={run / 'models' / 'dense.pt'}")
    chosen = run / "selection" / "agl" / "chosen.json"
    if chosen.exists():
        step = json.loads(chosen.read_text())["step"]
        sel = run / "selection" / "agl" / f"lambda_{step:02d}" / "retrained.pt"
        if sel.exists():
            out.append(f"selected={sel}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 4000], help="atoms (4·n³: 256, 500, 2048, 4000, …)")
    ap.add_argument("--models", nargs="*", help="NAME=model.pt (meltpot model files); default: the default run's")
    ap.add_argument("--cache", help="descriptor cache for the extrapolation range (default: the default run's)")
    ap.add_argument("--subset", action="append", default=[], metavar="NAME=I,J,...",
                    help="also run the first model shrunk to these feature indices (repeatable)")
    ap.add_argument("--baseline-plugin", metavar="SO",
                    help="also run the first model with this older meltpot.so (e.g. the torch-descriptor plugin "
                         "before the compiled kernel, built from git history): a before/after figure")
    ap.add_argument("--device", default="cpu", help="cpu or cuda for the meltpot models")
    ap.add_argument("--seconds", type=float, default=10.0, help="target seconds per measurement")
    ap.add_argument("--nve-steps", type=int, default=0, help="NVE drift run of the first model (0: skip); with "
                                                             "--single also in single precision")
    ap.add_argument("--single", action="store_true", help="also run the first model with `precision single` "
                                                          "(and report its force difference to double)")
    ap.add_argument("--mpi", type=int, default=1, help="also run the first model with this many MPI ranks (> 1)")
    ap.add_argument("--workdir", default="/tmp/meltpot-md-bench")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "md.json"))
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    plugin = build_plugin()
    cache = args.cache or next((ROOT / "results" / "al-default" / "descriptors").glob("*.h5"), None)
    models = {}

    def export(name, model):
        lo = hi = None
        if cache:
            st = training_stats(model, cache)
            lo, hi = {el: s["min"] for el, s in st.items()}, {el: s["max"] for el, s in st.items()}
        models[name] = (write_torchscript(model, work / f"{name}.pt", lo, hi), model.featureset.n_features("Al"))

    first = None
    for spec in args.models or default_models():
        name, path = spec.split("=", 1)
        model = load_model(path)
        first = first or model
        export(name, model)
    for spec in args.subset:
        from meltpot.selection.group_lasso import shrink_model

        if first is None:
            raise SystemExit("--subset needs a model (--models NAME=model.pt or the default run's)")
        name, idx = spec.split("=", 1)
        export(name, shrink_model(first, {"Al": [int(i) for i in idx.split(",")]}))
    if not models:
        raise SystemExit("no models: run `make run` first or give --models NAME=model.pt")

    peers = {"eam/fs": (["pair_style eam/fs", "pair_coeff * * Al_mm.eam.fs Al"], 26.98, 20000),
             "snap": (["pair_style snap", "pair_coeff * * Ni_Zuo_JPCA2020.snapcoeff Ni_Zuo_JPCA2020.snapparam Ni"],
                      58.69, 400)}
    result = {"benchmark": "md", "threads": 1, "machine": platform.platform(), "device": args.device,
              "plugin": str(plugin), "baseline_plugin": args.baseline_plugin,
              "models": {k: {"file": str(v[0]), "n_features": v[1]} for k, v in models.items()}, "runs": []}
    for n in args.sizes:
        cells = round((n / 4) ** (1 / 3))
        data = make_liquid(work, cells)
        rows = {}
        for name, (pair, mass, steps) in peers.items():
            probe = speed(work / f"{name.replace('/', '_')}_{n}_probe", data, pair, mass, max(10, steps // 100))
            steps = max(10, int(args.seconds * probe["timesteps_per_s"]))
            rows[name] = speed(work / f"{name.replace('/', '_')}_{n}", data, pair, mass, steps)
        runs = [(f"meltpot:{name}", ts, plugin, "double", 1) for name, (ts, _) in models.items()]
        first_name, (first_ts, _) = next(iter(models.items()))
        if args.single:
            runs.append((f"meltpot:{first_name}/single", first_ts, plugin, "single", 1))
        if args.mpi > 1:
            runs.append((f"meltpot:{first_name}/mpi{args.mpi}", first_ts, plugin, "double", args.mpi))
        if args.baseline_plugin:
            runs.append((f"baseline:{first_name}", first_ts, Path(args.baseline_plugin), "double", 1))
        for label, ts, so, precision, ranks in runs:
            pair = pair_commands(ts, ["Al"], plugin=so, device=args.device, precision=precision)
            tag = label.replace(":", "_").replace("/", "_")
            probe = speed(work / f"{tag}_{n}_probe", data, pair, 26.98, 2, ranks)
            steps = max(2, int(args.seconds * probe["timesteps_per_s"]))
            rows[label] = speed(work / f"{tag}_{n}", data, pair, 26.98, steps, ranks)
        if args.mpi > 1:
            one = rows[f"meltpot:{first_name}"]["atom_steps_per_s"]
            rows[f"meltpot:{first_name}/mpi{args.mpi}"]["vs_one_rank"] = (
                rows[f"meltpot:{first_name}/mpi{args.mpi}"]["atom_steps_per_s"] / one)
        if args.single:
            rows[f"meltpot:{first_name}/single"]["vs_double"] = (
                rows[f"meltpot:{first_name}/single"]["atom_steps_per_s"] / rows[f"meltpot:{first_name}"]["atom_steps_per_s"])
        for name, r in rows.items():
            r["vs_eam"] = r["atom_steps_per_s"] / rows["eam/fs"]["atom_steps_per_s"]
            r["vs_snap"] = r["atom_steps_per_s"] / rows["snap"]["atom_steps_per_s"]
            print(f"{n:6d} atoms {name:18s} {r['timesteps_per_s']:10.2f} steps/s {r['atom_steps_per_s']:12.4g} "
                  f"atom-steps/s  ({r['vs_eam']:.2e} × eam/fs, {r['vs_snap']:.2f} × SNAP)", flush=True)
        result["runs"].append({"atoms": n, "potentials": rows})
    # throughput at the smallest size relative to the largest (per-step overhead)
    if len(result["runs"]) > 1:
        small, large = result["runs"][0], result["runs"][-1]
        result["small_vs_large"] = {k: small["potentials"][k]["atom_steps_per_s"] / v["atom_steps_per_s"]
                                    for k, v in large["potentials"].items() if k in small["potentials"]}
    name, (ts, _) = next(iter(models.items()))
    data = make_liquid(work, round((min(args.sizes) / 4) ** (1 / 3)))
    if args.single:
        result["single_vs_double_forces"] = {
            "model": name, "atoms": min(args.sizes),
            **force_difference(work / "forces", data, pair_commands(ts, ["Al"], plugin=plugin, device=args.device),
                               pair_commands(ts, ["Al"], plugin=plugin, device=args.device, precision="single"))}
        print("single vs double forces:", json.dumps(result["single_vs_double_forces"]))
    if args.nve_steps:
        for precision in ("double", "single") if args.single else ("double",):
            t0 = time.time()
            pair = pair_commands(ts, ["Al"], plugin=plugin, device=args.device, precision=precision)
            nve = {"model": name, "precision": precision,
                   **nve_drift(work / f"nve_{precision}", data, pair, args.nve_steps), "wall_s": time.time() - t0}
            result.setdefault("nve", []).append(nve)
            print("NVE:", json.dumps(nve))
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
