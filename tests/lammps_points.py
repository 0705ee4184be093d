"""LAMMPS single points for the tests of the ML routes: run ``lmp`` on a cell with given pair
lines, read back energy, per-atom energies, forces and the virial at full precision, and the
same quantities from the Python model (ASE calculator) for comparison."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from ase.io import read, write

from helpers import make_featureset, make_frame, random_model
from meltpot.analysis.trajectory import read_log
from meltpot.lammps_env import lmp_executable
from meltpot.model.calculator import MeltpotCalculator

NKTV2P = 1.6021765e6   # LAMMPS metal units: bar per eV/Å³
MASSES = {"Al": 26.98, "Ni": 58.69}


def random_systems(seed: int) -> dict:
    """A sheared, rattled Al cell and an Al–Ni cell (random triclinic periodic cells)."""
    rng = np.random.default_rng(seed)
    return {"Al": make_frame(rng, alloy=False, shear=0.7), "AlNi": make_frame(rng, alloy=True, shear=1.1)}


def export_random_models(systems: dict, root: Path, write, suffix: str, seed: int) -> dict:
    """name → (random HDNNP, exported file): Al with tanh, Al–Ni with shifted softplus;
    ``write(model, path)`` is the export (TorchScript, ML-IAP pickle)."""
    out = {}
    for name, els, act in (("Al", ["Al"], "tanh"), ("AlNi", ["Al", "Ni"], "shifted_softplus")):
        model = random_model(make_featureset(els), [systems[name]], seed=seed, activation=act)
        path = root / f"{name}{suffix}"
        write(model, path)
        out[name] = (model, path)
    return out


def run_lammps(workdir: Path, lines: list[str], nprocs: int = 1, check: bool = True, extra_args=()):
    """Run LAMMPS's lmp (:func:`meltpot.lammps_env.lmp_executable`) on an input script (under
    mpiexec for nprocs > 1); returns the result."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.lmp").write_text("\n".join(lines) + "\n")
    cmd = [str(lmp_executable()), "-in", "in.lmp", "-log", "log.lammps", "-nocite", *extra_args]
    if nprocs > 1:
        cmd = [str(Path(sys.prefix) / "bin" / "mpiexec"), "-n", str(nprocs)] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=300)
    if check and res.returncode != 0:
        raise AssertionError(f"LAMMPS failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
    return res


def single_point_lines(data: str, pair: list[str], elements: list[str]) -> list[str]:
    masses = [f"mass {k + 1} {MASSES[el]}" for k, el in enumerate(elements)]
    return ["units metal", "atom_style atomic", "atom_modify map array", "boundary p p p", f"read_data {data}",
            *masses, *pair,
            "compute pe all pe/atom", "compute vir all pressure NULL virial",
            "compute sa all stress/atom NULL virial", "compute sasum all reduce sum c_sa[1] c_sa[2] c_sa[3] "
            "c_sa[4] c_sa[5] c_sa[6]",
            "thermo_style custom step pe c_vir[1] c_vir[2] c_vir[3] c_vir[4] c_vir[5] c_vir[6] vol "
            "c_sasum[1] c_sasum[2] c_sasum[3] c_sasum[4] c_sasum[5] c_sasum[6]",
            "thermo_modify format float %.17g",
            "dump d all custom 1 dump.txt id type x y z fx fy fz c_pe",
            "dump_modify d sort id format float %.17g",
            "run 0"]


def single_point(workdir, atoms, pair: list[str], type_order: list[str], nprocs: int = 1,
                 extra_args: tuple[str, ...] = ()):
    """Energy, per-atom energies, forces, virial stress (ASE sign, eV/Å³) and the per-atom-virial
    sum from LAMMPS with the ``pair`` lines (atom types = ``type_order``), with the atoms as LAMMPS
    holds them (ASE Atoms in LAMMPS's frame)."""
    workdir.mkdir(parents=True, exist_ok=True)
    write(workdir / "data.lmp", atoms, format="lammps-data", specorder=type_order, atom_style="atomic")
    run_lammps(workdir, single_point_lines("data.lmp", pair, type_order), nprocs=nprocs, extra_args=extra_args)
    thermo = read_log(workdir / "log.lammps")
    row = thermo.iloc[-1]
    frame = read(workdir / "dump.txt", format="lammps-dump-text")
    types = np.loadtxt(workdir / "dump.txt", skiprows=9, usecols=1).astype(int)
    frame.set_chemical_symbols([type_order[t - 1] for t in types])
    cols = np.loadtxt(workdir / "dump.txt", skiprows=9)
    vir = np.array([row[f"c_vir[{k}]"] for k in range(1, 7)])
    vol = row["Volume"]
    sasum = np.array([row[f"c_sasum[{k}]"] for k in range(1, 7)])
    return {"energy": row["PotEng"], "energies": cols[:, 8], "forces": cols[:, 5:8], "atoms": frame,
            # LAMMPS pressure from the virial -> ASE stress (xx yy zz yz xz xy)
            "stress": -vir[[0, 1, 2, 5, 4, 3]] / NKTV2P,
            "stress_atom_sum": sasum[[0, 1, 2, 5, 4, 3]] / (NKTV2P * vol)}


def python_reference(model, frame):
    atoms = frame.copy()
    atoms.calc = MeltpotCalculator(model)
    return {"energy": atoms.get_potential_energy(), "energies": atoms.get_potential_energies(),
            "forces": atoms.get_forces(), "stress": atoms.get_stress()}


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))
