"""The TorchScript export (format version 3) without LAMMPS: the function table it carries for
the plugin's compiled kernel, the networks-only method, and the plugin's route emulated in
Python (kernel through ctypes with the exported table → ``energies_and_gradients`` → per-pair
contraction) against the torch route ``LammpsPotential.forward``."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_featureset, n2p2_types_featureset, random_model
from lammps_points import random_systems
from meltpot.descriptors import load_featureset
from meltpot.descriptors.compute import AtomsDescriptor
from meltpot.descriptors.kernel import KernelSymmetryFunctions, available, load_kernel
from meltpot.descriptors.neighbors import neighbor_pairs, pair_vectors
from meltpot.export.torchscript import FORMAT_VERSION, load_torchscript, write_torchscript

needs_kernel = pytest.mark.skipif(not available(), reason="the symmetry-function kernel does not build here")


@pytest.fixture(scope="module")
def systems():
    return random_systems(5)


def alloy_subset():
    """Al–Ni with different kept functions per element (F_Al = 6, F_Ni = 5: padded columns and
    a union that is no element's own column order)."""
    full = make_featureset(["Al", "Ni"])
    return full.subset({"Al": [0, 3, 5, 8, 12, 19], "Ni": [1, 3, 6, 10, 15]}, name="alloy-subset")


def models(systems):
    al = systems["Al"]
    thesis = load_featureset("al-thesis", ["Al"])
    five = thesis.subset({"Al": [2, 4, 9, 16, 19]}, name="al-thesis-5")
    return {"al-thesis": (random_model(thesis, [al], seed=1), al),
            "al-thesis-5": (random_model(five, [al], seed=2), al),
            "AlNi": (random_model(make_featureset(["Al", "Ni"]), [systems["AlNi"]], seed=3,
                                  activation="shifted_softplus"), systems["AlNi"]),
            "AlNi-subset": (random_model(alloy_subset(), [systems["AlNi"]], seed=4), systems["AlNi"]),
            "AlNi-n2p2-types": (random_model(n2p2_types_featureset(), [systems["AlNi"]], seed=5), systems["AlNi"])}


def pairs_of(atoms, model):
    index = {e: k for k, e in enumerate(model.elements)}
    species = torch.tensor([index[s] for s in atoms.get_chemical_symbols()])
    pos, cell = torch.tensor(atoms.positions), torch.tensor(atoms.cell.array)
    i, j, s = neighbor_pairs(pos, cell, atoms.pbc, model.cutoff)
    return species, i, j, pair_vectors(pos, cell, i, j, s)


def plugin_route(mod, species, center, neighbor, rij, n_local):
    """What pair_meltpot.cpp does, step by step, from the exported file's attributes only."""
    lib = load_kernel()
    order = torch.argsort(center, stable=True)
    c, nb, r = center[order].contiguous(), neighbor[order], rij[order].contiguous()
    n_union = int(mod.sf_n_union)
    U = torch.empty(n_local, n_union, dtype=torch.float64)
    dU = torch.empty(max(c.numel(), 1), n_union, 3, dtype=torch.float64)
    nbs = species[nb].to(torch.int32).contiguous()
    cs = species[:n_local].to(torch.int32).contiguous()
    par, ints, need = mod.sf_par.contiguous(), mod.sf_int.contiguous(), mod.sf_need.contiguous()
    weights = mod.sf_weights.contiguous()

    def ptr(t, typ):
        return ctypes.cast(t.data_ptr(), ctypes.POINTER(typ))

    rc = lib.meltpot_acsf_f64(n_local, c.numel(), ptr(c, ctypes.c_int64), ptr(nbs, ctypes.c_int32),
                              ptr(cs, ctypes.c_int32), ptr(r, ctypes.c_double), len(mod.elements), n_union,
                              par.shape[0], ptr(par, ctypes.c_double), ptr(ints, ctypes.c_int32),
                              ptr(need, ctypes.c_uint8), int(mod.sf_cutoff_kind), float(mod.sf_cutoff_alpha),
                              ptr(weights, ctypes.c_double), ptr(U, ctypes.c_double), ptr(dU, ctypes.c_double), 1)
    assert rc == 0
    cols = mod.sf_columns[species[:n_local]]                             # (n, F_max)
    G = torch.gather(U, 1, cols.clamp(min=0)) * (cols >= 0)
    e, dEdG = mod.energies_and_gradients(G, species[:n_local])
    dEdU = torch.zeros(n_local, n_union, dtype=torch.float64).scatter_add(1, cols.clamp(min=0), dEdG * (cols >= 0))
    g_sorted = torch.einsum("pu,puk->pk", dEdU[c], dU[:c.numel()])
    g = torch.empty_like(rij)
    g[order] = g_sorted
    outside = ((G < mod.feature_min[species[:n_local]]) | (G > mod.feature_max[species[:n_local]])).sum(1)
    return e, g, outside


@needs_kernel
@pytest.mark.parametrize("name", ["al-thesis", "al-thesis-5", "AlNi", "AlNi-subset", "AlNi-n2p2-types"])
def test_exported_table_is_the_kernels_and_the_plugin_route_equals_forward(name, systems, tmp_path):
    model, atoms = models(systems)[name]
    G = AtomsDescriptor(model.featureset).per_element(atoms)
    mod = load_torchscript(write_torchscript(model, tmp_path / "m.pt", {el: g.min(0) for el, g in G.items()},
                                             {el: g.max(0) * 0.999 for el, g in G.items()}))
    assert mod.format_version == FORMAT_VERSION == 3
    k = KernelSymmetryFunctions(model.featureset)
    assert torch.equal(mod.sf_par, k._fn_par) and torch.equal(mod.sf_int, k._fn_int)
    assert torch.equal(mod.sf_need, k._need) and torch.equal(mod.sf_columns, k.sf.columns)
    assert torch.equal(mod.sf_weights, k._weights) and mod.sf_cutoff_alpha == k._cutoff_alpha
    assert mod.sf_n_union == k.n_union and mod.n_features == model.n_features
    species, i, j, rij = pairs_of(atoms, model)
    n = len(atoms)
    e_ref, g_ref, out_ref = mod(species, i, j, rij, n)
    e, g, out = plugin_route(mod, species, i, j, rij, n)
    assert float((e - e_ref).abs().max() / e_ref.abs().max()) < 1e-12
    assert float((g - g_ref).abs().max() / g_ref.abs().max()) < 1e-10
    assert torch.equal(out, out_ref) and int((out > 0).sum()) > 0     # the max·0.999 atoms extrapolate


def test_no_pairs_and_no_atoms_give_zero_gradients(systems, tmp_path):
    """forward on a rank without pairs (isolated atoms) or without local atoms, and the networks
    on zero rows: no autograd error, zero gradients, the energies of G = 0."""
    model, _ = models(systems)["AlNi"]
    mod = load_torchscript(write_torchscript(model, tmp_path / "m.pt"))
    none = torch.zeros(0, dtype=torch.long)
    species = torch.tensor([0, 1, 1])
    e, g, out = mod(species, none, none, torch.zeros(0, 3, dtype=torch.float64), 3)
    G0 = torch.zeros(3, max(model.n_features), dtype=torch.float64)
    assert torch.allclose(e, model.atomic_energies(G0, species).detach(), rtol=1e-14, atol=0)
    assert g.shape == (0, 3) and out.tolist() == [0, 0, 0]
    e, g, out = mod(species[:0], none, none, torch.zeros(0, 3, dtype=torch.float64), 0)
    assert e.shape == (0,) and g.shape == (0, 3) and out.shape == (0,)
    e, d = mod.energies_and_gradients(G0[:0], species[:0])
    assert e.shape == (0,) and d.shape == (0, G0.shape[1])
    e, d = mod.energies_and_gradients(G0, species)                      # isolated atoms: dE/dG still defined
    assert d.shape == G0.shape and float(d.abs().max()) > 0


def test_the_plugin_reads_this_format_version():
    src = (Path(__file__).parents[1] / "src" / "meltpot" / "plugin" / "pair_meltpot.cpp").read_text()
    assert int(re.search(r"#define MELTPOT_FORMAT_VERSION (\d+)", src).group(1)) == FORMAT_VERSION


def test_selected_export_carries_only_the_kept_functions(systems, tmp_path):
    model, _ = models(systems)["AlNi-subset"]
    mod = load_torchscript(write_torchscript(model, tmp_path / "m.pt"))
    assert mod.sf_n_union == mod.sf_par.shape[0] == len(set(
        f for fns in model.featureset.per_element.values() for f in fns))
    assert mod.sf_columns.shape == (2, 6) and mod.sf_columns[1, 5] == -1            # Ni: 5 of 6 columns
    assert mod.sf_need.sum(1).tolist() == [6, 5]
    assert np.isfinite(mod.sf_par.numpy()).all()
