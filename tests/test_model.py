"""The HDNNP: forces and stress against finite differences (ASE calculator and batched
``predict``), energies from the descriptor cache against energies from positions, the
ghost-atom pair list of the LAMMPS contract, per-atom energies, model files (round trip and
broken files), and frames with elements the model lacks.

Models have random weights (seeded) with feature scaling and reference energies set, so
every part of the energy expression is exercised; frames are rattled fcc cells (32 atoms,
8.1 Å: the 4.5 Å cutoff reaches periodic images), one of them sheared, labelled by ASE's EMT.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import assemble_dataset, fd_stress
from meltpot.data.io import read_frames
from meltpot.descriptors.cache import DescriptorCache
from meltpot.errors import FrameError
from meltpot.model import HDNNP, load_model, save_model
from meltpot.model.batch import frame_graph, predict, voigt
from meltpot.model.calculator import MeltpotCalculator
from meltpot.model.hdnnp import fit_reference_energies
from meltpot.model.modelfile import ModelFileError, check_featureset, model_payload
from meltpot.train.data import EnergyDataset

from helpers import labelled, make_featureset, make_frame, random_model  # noqa: E402


@pytest.fixture(scope="module")
def systems():
    rng = np.random.default_rng(11)
    return {"Al": make_frame(rng, alloy=False), "AlNi": make_frame(rng, alloy=True, shear=1.1)}


@pytest.fixture(scope="module")
def models(systems):
    return {"Al": random_model(make_featureset(["Al"]), [systems["Al"]], seed=1),
            "AlNi": random_model(make_featureset(["Al", "Ni"]), [systems["AlNi"]], seed=2,
                                 activation="shifted_softplus")}


def _energy(model, atoms) -> float:
    g = frame_graph(atoms, model.elements, model.cutoff)
    return float(predict(model, [g], forces=False)["energy"][0].detach())


# ============================================================================ forces and stress
@pytest.mark.parametrize("name", ["Al", "AlNi"])
def test_forces_equal_minus_energy_gradient(systems, models, name):
    atoms, model = systems[name].copy(), models[name]
    atoms.calc = MeltpotCalculator(model)
    f_calc = atoms.get_forces()
    e0 = atoms.get_potential_energy()
    # the batched route, with a second frame in the batch (atom offsets)
    other = systems["Al"]
    out = predict(model, [frame_graph(other, model.elements, model.cutoff),
                          frame_graph(atoms, model.elements, model.cutoff)], forces=True)
    f_batch = out["forces"][len(other):].detach().numpy()
    np.testing.assert_allclose(f_batch, f_calc, rtol=0, atol=1e-13)
    assert abs(float(out["energy"][1].detach()) - e0) < 1e-11
    assert np.abs(f_calc).max() > 1e-2        # a random model still gives sizeable forces

    h = 1e-4
    picks = [(a, c) for a in (0, 5, 17, 31) for c in range(3)]
    for a, c in picks:
        e = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[a, c] += sign * h
            e.append(_energy(model, moved))
        fd = -(e[0] - e[1]) / (2 * h)
        assert abs(fd - f_calc[a, c]) < 1e-7 * max(1.0, np.abs(f_calc).max()), (a, c, fd, f_calc[a, c])
    # no net force on a periodic system (translation invariance)
    assert np.abs(f_calc.sum(0)).max() < 1e-10


@pytest.mark.parametrize("name", ["Al", "AlNi"])
def test_stress_equals_finite_strain_differences(systems, models, name):
    atoms, model = systems[name].copy(), models[name]
    atoms.calc = MeltpotCalculator(model)
    s_voigt = atoms.get_stress()
    out = predict(model, [frame_graph(atoms, model.elements, model.cutoff)], forces=False, stress=True)
    s = out["stress"][0].detach().numpy()
    np.testing.assert_allclose(voigt(out["stress"][0]), s_voigt, rtol=0, atol=1e-14)
    np.testing.assert_allclose(s, s.T, rtol=0, atol=1e-12)
    assert np.abs(s).max() > 1e-4

    fd = fd_stress(lambda a_: _energy(model, a_), atoms, 1e-5)
    np.testing.assert_allclose(s, fd, rtol=0, atol=1e-8 * max(1.0, np.abs(s).max()))


# ============================================================================ the two routes
@pytest.fixture(scope="module")
def cached_dataset(tmp_path_factory):
    """Alloy and pure-Al frames in two files, indexed, split and cached (the real pipeline)."""
    root = tmp_path_factory.mktemp("model_data")
    rng = np.random.default_rng(5)
    frames = {"alloy": [labelled(make_frame(rng, True, shear=0.8 * k), "alloy") for k in range(4)],
              "pure": [labelled(make_frame(rng, False), "pure") for _ in range(3)]}
    fs = make_featureset(["Al", "Ni"], name="cache-test", zetas=(1, 2, 4))
    paths = assemble_dataset(root, frames, fs, root / "fs.h5", dict(train=0.6, validation=0.2, test=0.2, seed=3))
    index = paths["index_df"]
    return root, index, fs


def test_energies_from_cache_equal_energies_from_positions(cached_dataset):
    root, index, fs = cached_dataset
    with DescriptorCache(root / "fs.h5") as cache:
        torch.manual_seed(4)
        model = HDNNP(fs, hidden=(7, 5), activation="softplus")
        model.set_scaling({el: cache.stats(el)["mean"] for el in fs.elements},
                          {el: cache.stats(el)["std"] for el in fs.elements})
        counts = np.array([[s.count(el) for el in fs.elements]
                           for s in (fr.get_chemical_symbols() for fr in _frames(root, index))])
        model.set_reference_energies(fit_reference_energies(index["energy"], counts, fs.elements))
        check_featureset(model, cache.info()["featureset_hash"])
        ids = np.array([5, 0, 3, 6, 1])                     # any order, both files
        data = EnergyDataset(cache, index, ids)
        e_cache = data.predict(model).detach().numpy()
        e_batch = data.predict(model, torch.tensor([3, 0])).detach().numpy()
    frames = _frames(root, index)
    e_pos = np.array([_energy(model, frames[k]) for k in ids])
    np.testing.assert_allclose(e_cache, e_pos, rtol=0, atol=1e-10)
    np.testing.assert_allclose(e_batch, e_pos[[3, 0]], rtol=0, atol=1e-10)
    # per-atom reference energies are in: the mean energy per atom is near the fitted ones
    assert np.abs(e_cache / data.n_atoms.numpy() - index.set_index("frame_id").loc[ids, "energy_per_atom"]).max() < 1.0


def _frames(root, index):
    ds = root / "dataset"
    out = []
    for file, fi in zip(index["file"], index["file_index"]):
        out.append(read_frames(ds / file)[int(fi)])
    return out


# ============================================================================ LAMMPS contract
def ghost_pair_list(atoms, r_list: float):
    """Local atoms, then explicit periodic images within ``r_list`` of a local atom; a full
    pair list (centres local, neighbours local or ghost) by brute force, shuffled."""
    n, cell = len(atoms), atoms.cell.array
    heights = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
    reach = [int(np.ceil(r_list / h)) + 1 for h in heights]
    x_loc = atoms.positions
    xs, owner = [x_loc], [np.arange(n)]
    for s in itertools.product(*(range(-k, k + 1) for k in reach)):
        if not any(s):
            continue
        img = x_loc + np.asarray(s) @ cell
        near = np.linalg.norm(img[:, None, :] - x_loc[None], axis=-1).min(1) < r_list
        xs.append(img[near])
        owner.append(np.nonzero(near)[0])
    x_all, owner = np.vstack(xs), np.concatenate(owner)
    d = np.linalg.norm(x_all[None, :n] - x_all[:, None], axis=-1)        # (all, local)
    nb, ce = np.nonzero((d < r_list) & (d > 0))
    perm = np.random.default_rng(0).permutation(len(ce))
    return x_all, owner, ce[perm], nb[perm]


@pytest.mark.parametrize("name", ["Al", "AlNi"])
def test_forward_with_ghost_atoms_equals_periodic(systems, models, name):
    atoms, model = systems[name], models[name]
    g = frame_graph(atoms, model.elements, model.cutoff)
    ref = predict(model, [g], forces=True)
    x_all, owner, ce, nb = ghost_pair_list(atoms, model.cutoff + 0.7)   # with a skin: pairs past r_c too
    n = len(atoms)
    assert nb.max() >= n and len(x_all) > 3 * n
    species = g.species[torch.as_tensor(owner)]
    assert species.shape[0] > n                                          # species longer than n_local
    x = torch.tensor(x_all, requires_grad=True)
    ce_t, nb_t = torch.as_tensor(ce), torch.as_tensor(nb)
    e_atom = model(species, ce_t, nb_t, x[nb_t] - x[ce_t], n)
    assert e_atom.shape == (n,)
    np.testing.assert_allclose(e_atom.detach().numpy(), ref["atomic_energies"].detach().numpy(), rtol=0,
                               atol=1e-12)
    # forces on ghosts, summed onto their owners (LAMMPS reverse communication), are the periodic forces
    (grad,) = torch.autograd.grad(e_atom.sum(), x)
    f = np.zeros((n, 3))
    np.add.at(f, owner, -grad.numpy())
    np.testing.assert_allclose(f, ref["forces"].numpy(), rtol=0, atol=1e-11)


def test_atomic_energies_sum_to_total(systems, models):
    model = models["AlNi"]
    atoms = systems["AlNi"].copy()
    atoms.calc = MeltpotCalculator(model)
    e_i = atoms.get_potential_energies()
    assert e_i.shape == (len(atoms),) and np.ptp(e_i) > 0
    assert abs(e_i.sum() - atoms.get_potential_energy()) < 1e-10
    graphs = [frame_graph(systems[k], model.elements, model.cutoff) for k in ("Al", "AlNi")]
    out = predict(model, graphs, forces=False)
    a = out["atomic_energies"].detach().numpy()
    n0 = graphs[0].n_atoms
    np.testing.assert_allclose([a[:n0].sum(), a[n0:].sum()], out["energy"].detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(a[n0:], e_i, rtol=0, atol=1e-12)
    # each element's atoms carry their reference energy plus the network's residual
    el = np.array(atoms.get_chemical_symbols())
    assert abs(e_i[el == "Ni"].mean() - (-4.4)) < abs(e_i[el == "Ni"].mean() - (-3.1))


# ============================================================================ model files
def test_save_load_round_trip_gives_identical_predictions(systems, models, tmp_path):
    model = models["AlNi"]
    path = tmp_path / "sub" / "model.pt"
    save_model(model, path, units="metal", metadata={"epochs": 3, "note": "random"})
    assert path.exists() and not path.with_name("model.pt.partial").exists()
    back = load_model(path)
    assert back.units == "metal" and back.metadata == {"epochs": 3, "note": "random"}
    assert back.describe() == model.describe() and back.elements == model.elements
    assert back.featureset.content_hash() == model.featureset.content_hash()
    for k, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    for name in ("Al", "AlNi"):
        graphs = [frame_graph(systems[name], model.elements, model.cutoff)]
        a = predict(model, graphs, forces=True, stress=True)
        b = predict(back, graphs, forces=True, stress=True)
        for key in ("energy", "forces", "stress", "atomic_energies"):
            assert torch.equal(a[key], b[key]), key
    atoms = systems["AlNi"].copy()
    atoms.calc = MeltpotCalculator(str(path))          # the calculator loads a file too
    assert atoms.get_potential_energy() == float(predict(model, [frame_graph(atoms, model.elements, model.cutoff)],
                                                         forces=False)["energy"][0].detach())


def test_broken_model_files_are_clear_errors(models, tmp_path):
    model = models["Al"]
    good = tmp_path / "good.pt"
    save_model(model, good)
    raw = good.read_bytes()
    cases = {}
    cases["truncated.pt"] = raw[: len(raw) // 2]
    cases["garbage.pt"] = np.random.default_rng(0).bytes(4096)
    cases["empty.pt"] = b""
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"format": "something-else", "version": 1}, tmp_path / "other_format.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    payload = model_payload(model)
    torch.save({**payload, "version": 99}, tmp_path / "future.pt")
    torch.save({**payload, "architecture": {**payload["architecture"], "hidden": [5, 5]}}, tmp_path / "arch.pt")
    altered = dict(payload["featureset"])
    altered["cutoff"] = "cosine"
    torch.save({**payload, "featureset": altered}, tmp_path / "altered.pt")
    expect = {"truncated.pt": "truncated or corrupt", "garbage.pt": "truncated or corrupt",
              "empty.pt": "truncated or corrupt", "other_format.pt": "not a meltpot model file",
              "tensor.pt": "not a meltpot model file", "future.pt": "version 99",
              "arch.pt": "do not fit", "altered.pt": "does not match its hash", "missing.pt": "does not exist"}
    for name, text in expect.items():
        path = tmp_path / name
        with pytest.raises(ModelFileError) as err:
            load_model(path)
        msg = str(err.value)
        assert str(path) in msg and text in msg, msg
        if name != "arch.pt":     # load_state_dict's size-mismatch message spans lines (reported)
            assert "\n" not in msg, msg


def test_other_featureset_is_refused(models, cached_dataset):
    root, _index, fs = cached_dataset
    model = models["AlNi"]
    assert model.featureset.content_hash() != fs.content_hash()
    with DescriptorCache(root / "fs.h5") as cache:
        h = cache.info()["featureset_hash"]
        with pytest.raises(ModelFileError, match=f"{root / 'fs.h5'}.*feature set {h[:12]}.*model-test"):
            check_featureset(model, h, what=f"the descriptors in {root / 'fs.h5'}")
    # the same functions are the same feature set, whatever its name
    check_featureset(model, make_featureset(["Al", "Ni"], name="renamed").content_hash())
    # another radius or cutoff function is another feature set
    for other in (make_featureset(["Al", "Ni"], rc=4.6), make_featureset(["Al"])):
        with pytest.raises(ModelFileError, match="recompute the descriptors"):
            check_featureset(model, other.content_hash())


# ============================================================================ elements
def test_frame_with_element_the_model_lacks_is_a_frame_error(systems, models):
    al_model = models["Al"]
    atoms = systems["AlNi"].copy()
    with pytest.raises(FrameError, match=r"Ni.*not in the model"):
        frame_graph(atoms, al_model.elements, al_model.cutoff, source="x.extxyz", index=4)
    try:
        frame_graph(atoms, al_model.elements, al_model.cutoff, source="x.extxyz", index=4)
    except FrameError as exc:
        assert exc.source == "x.extxyz" and exc.index == 4
    atoms.calc = MeltpotCalculator(al_model)
    with pytest.raises(FrameError, match="Ni"):
        atoms.get_potential_energy()
    # the other way round is fine: an Al–Ni model on a pure-Al frame
    pure = systems["Al"].copy()
    pure.calc = MeltpotCalculator(models["AlNi"])
    assert np.isfinite(pure.get_potential_energy()) and np.isfinite(pure.get_forces()).all()


def test_reference_energy_fit_recovers_per_element_energies():
    counts = np.array([[32, 0], [22, 10], [16, 16], [0, 32]])
    true = {"Al": -3.4, "Ni": -4.8}
    energies = counts @ np.array([true["Al"], true["Ni"]])
    fit = fit_reference_energies(energies, counts, ["Al", "Ni"])
    assert fit == pytest.approx(true, abs=1e-12)
    assert isinstance(pd.Series(fit).sum(), float)
