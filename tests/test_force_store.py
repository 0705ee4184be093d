"""Force training from the derivative store: forces and stress from cached ∂G/∂r equal autograd
through positions (alloy, triclinic, small cells, an atom without neighbours); the store's key,
reuse, missing forces; training lowers the force error; weight ramps and force fractions.

Frames are labelled with ASE's EMT (Al, Ni): real forces and stress.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from ase import Atoms
from ase.calculators.emt import EMT

from helpers import assemble_dataset, emt_alni_frame
from meltpot.cli import main
from meltpot.data.frames import attach_labels
from meltpot.descriptors.cache import DescriptorCache, read_index
from meltpot.descriptors.derivatives import build_store, choose_frames, inspect_store, read_store
from meltpot.descriptors.featureset import grid
from meltpot.errors import FrameError
from meltpot.model import HDNNP
from meltpot.model.batch import frame_graph, predict, voigt
from meltpot.train.data import EnergyDataset
from meltpot.train.settings import TrainSettings
from meltpot.train.trainer import Trainer, prepare_model


def alni_featureset():
    return grid(["Al", "Ni"], rc=4.6, n_radial=3, n_shifted=2, zetas=(1, 2), lambdas=(-1, 1), name="alni-tiny")


def isolated_atom_frame():
    """An Al atom 9 Å from a Ni pair in a big box: the lone atom has no neighbour within r_c."""
    atoms = Atoms("AlNiNi", positions=[[1, 1, 1], [10, 10, 10], [12.2, 10, 10]], cell=[20, 20, 20], pbc=True)
    atoms.calc = EMT()
    return attach_labels(atoms, atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(),
                         branch="", phase="liquid", T_target=1000.0, P_target=0.0, composition="Al0.33Ni0.67",
                         engine="ase:EMT", units="metal")


@pytest.fixture(scope="module")
def alloy(tmp_path_factory):
    """Alloy frames (cubic, sheared = triclinic, a 16-atom cell thinner than 2 r_c, an isolated
    atom), their index, splits, cache and a float64 store of every frame."""
    rng = np.random.default_rng(5)
    frames = [emt_alni_frame(rng, n_ni=n, shear=sh) for n, sh in ((8, 0.0), (4, 1.3), (12, 0.7), (0, 0.0))]
    small = emt_alni_frame(rng, n_ni=5)
    del small[[a.index for a in small if a.position[2] > small.cell[2, 2] / 2 - 0.3]]
    small.set_cell(small.cell.array * [[1, 1, 1], [1, 1, 1], [0.5, 0.5, 0.5]], scale_atoms=False)
    small.calc = EMT()
    small = attach_labels(small, small.get_potential_energy(), small.get_forces(), small.get_stress(), branch="",
                          phase="liquid", T_target=1000.0, P_target=0.0, composition="AlNi", engine="ase:EMT",
                          units="metal")
    frames += [small, isolated_atom_frame()]
    for k, f in enumerate(frames):
        f.info["state_id"] = f"s{k % 2}"
    root = tmp_path_factory.mktemp("store")
    fs = alni_featureset()
    paths = assemble_dataset(root, {"alloy": frames}, fs, root / "cache.h5",
                             dict(train=1.0, validation=0.0, test=0.0, seed=1))
    ids = paths["index_df"]["frame_id"].to_numpy()
    res = build_store(paths["index"], root / "store.h5", fs, ids, dtype="float64", progress=False)
    return {**paths, "fs": fs, "frames": frames, "store": res, "root": root, "ids": ids}


def _model(fs, seed=3):
    torch.manual_seed(seed)
    model = HDNNP(fs, hidden=(6, 5))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.4)
    return model


def test_store_forces_and_stress_equal_autograd_through_positions(alloy):
    fs = alloy["fs"]
    model = _model(fs)
    index = read_index(alloy["index"])
    with DescriptorCache(alloy["cache"]) as cache:
        data = EnergyDataset(cache, index, alloy["ids"]).attach_forces(alloy["root"] / "store.h5")
    store = data.forces_store
    assert alloy["store"].n_frames == len(alloy["frames"])
    out = store.predict(model, torch.arange(len(alloy["frames"])), create_graph=False, stress=True)
    graphs = [frame_graph(a, fs.elements, fs.cutoff_radius) for a in alloy["frames"]]
    ref = predict(model, graphs, forces=True, stress=True)
    scale = ref["forces"].abs().max()
    assert torch.allclose(out["forces"], ref["forces"], rtol=0, atol=1e-10 * float(scale))
    assert float((out["stress"] - ref["stress"]).abs().max()) <= 1e-10 * float(ref["stress"].abs().max())
    # the isolated Al atom: no pair, no force from the model
    last = store.atom_start[-1]
    assert float(out["forces"][last].abs().max()) == 0.0
    # reference labels travel with the store
    assert np.allclose(store.forces[: len(alloy["frames"][0])].numpy(), alloy["frames"][0].get_forces())


def test_store_reused_and_rebuilt_by_key(alloy, caplog):
    again = build_store(alloy["index"], alloy["root"] / "store.h5", alloy["fs"], alloy["ids"], dtype="float64",
                        progress=False)
    assert again.action == "reused"
    with h5py.File(alloy["root"] / "store.h5", "r") as f:
        assert int(f.attrs["bytes_per_pair"]) == f["pairs/dG"].shape[1] * 3 * 8 + 32
    other = alloy["root"] / "store32.h5"
    res = build_store(alloy["index"], other, alloy["fs"], alloy["ids"][:3], dtype="float32", progress=False)
    assert res.action == "computed" and res.n_frames == 3
    a64, a32 = read_store(alloy["root"] / "store.h5", alloy["ids"][:3]), read_store(other)
    assert a32["dG"].dtype == np.float32
    assert np.allclose(a32["dG"], a64["dG"], rtol=1e-6, atol=1e-7)
    # a corrupt file is named and rebuilt
    other.write_bytes(b"not hdf5")
    assert not inspect_store(other)[0]
    res = build_store(alloy["index"], other, alloy["fs"], alloy["ids"][:3], dtype="float32", progress=False)
    assert res.action == "computed" and "rebuilding" in caplog.text


def test_frames_without_forces_error_or_skip(alloy, tmp_path):
    frames = [f.copy() for f in alloy["frames"][:3]]
    for f, src in zip(frames, alloy["frames"][:3]):
        f.calc = src.calc
        f.info = dict(src.info)
    from ase.calculators.singlepoint import SinglePointCalculator

    labelled = frames[:2]
    bare = frames[2]
    bare.calc = SinglePointCalculator(bare, energy=float(alloy["frames"][2].get_potential_energy()))
    paths = assemble_dataset(tmp_path, {"mixed": labelled + [bare]}, alloy["fs"], tmp_path / "c.h5",
                             dict(train=1.0, validation=0.0, test=0.0, seed=1))
    ids = paths["index_df"]["frame_id"].to_numpy()
    with pytest.raises(FrameError, match=r"mixed.extxyz.*frame 2.*no forces"):
        build_store(paths["index"], tmp_path / "s.h5", alloy["fs"], ids, progress=False)
    res = build_store(paths["index"], tmp_path / "s.h5", alloy["fs"], ids, missing_forces="skip", progress=False)
    assert res.skipped == [int(ids[2])] and res.n_frames == 2


def test_choose_frames_is_stratified_seeded_and_in_dataset_order():
    index = pd.DataFrame({"frame_id": np.arange(100), "state_id": ["a"] * 80 + ["b"] * 20})
    splits = pd.DataFrame({"frame_id": np.arange(100), "split": ["train"] * 100})
    a = choose_frames(splits, index, "train", 10, seed=1)
    assert len(a) == 10 and list(a) == sorted(a)
    assert (a >= 80).sum() == 2                      # 20 % of the frames are of state b
    assert np.array_equal(a, choose_frames(splits, index, "train", 10, seed=1))
    assert not np.array_equal(a, choose_frames(splits, index, "train", 10, seed=2))
    assert len(choose_frames(splits, index, "train", None, seed=1)) == 100


def test_training_from_the_store_lowers_the_force_error(alloy):
    fs = alloy["fs"]
    index = read_index(alloy["index"])
    with DescriptorCache(alloy["cache"]) as cache:
        data = EnergyDataset(cache, index, alloy["ids"]).attach_forces(alloy["root"] / "store.h5")
        model = HDNNP(fs, hidden=(8,))
        prepare_model(model, cache, data, seed=2)
    s = TrainSettings(max_epochs=25, batch_size=2, force_weight=1.0, stress_weight=0.5, schedule="constant",
                      lr=5e-3, progress=False, patience=None, log_every=1000)
    trainer = Trainer(model, s, data, data)
    assert trainer.monitor_name == "loss"
    before = trainer.evaluate(data)
    history = trainer.fit()
    after = trainer.evaluate(data)
    assert {"train_force_rmse", "val_force_rmse", "val_stress_rmse"} <= set(history[0])
    assert after["force_rmse"] < 0.5 * before["force_rmse"], (before, after)


def test_selected_columns_give_the_forces_of_the_shrunk_model(alloy):
    """select_features on the store = the derivatives of a feature subset (what the λ path retrains)."""
    from meltpot.selection.group_lasso import shrink_model

    fs = alloy["fs"]
    keep = {"Al": [0, 2, 5, 7], "Ni": [1, 3, 8]}
    model = shrink_model(_model(fs), keep)
    index = read_index(alloy["index"])
    with DescriptorCache(alloy["cache"]) as cache:
        data = EnergyDataset(cache, index, alloy["ids"]).attach_forces(alloy["root"] / "store.h5")
    small = data.select_features(keep)
    out = small.forces_store.predict(model, torch.arange(4), create_graph=False)
    graphs = [frame_graph(a, fs.elements, fs.cutoff_radius) for a in alloy["frames"][:4]]
    ref = predict(model, graphs, forces=True)
    assert torch.allclose(out["forces"], ref["forces"], rtol=0, atol=1e-10 * float(ref["forces"].abs().max()))


def test_force_fraction_and_weight_ramp(alloy):
    s = TrainSettings(lr=1e-2, energy_weight=0.02, energy_weight_limit=1.0, force_weight=1000.0,
                      force_weight_limit=1.0, progress=False)
    assert s.weights(1e-2) == pytest.approx((0.02, 1000.0, 0.0))
    assert s.weights(None) == (1.0, 1.0, 0.0)
    w = s.weights(5e-3)
    assert w[0] == pytest.approx(0.51) and w[1] == pytest.approx(500.5)
    model = _model(alloy["fs"])
    index = read_index(alloy["index"])
    with DescriptorCache(alloy["cache"]) as cache:
        store = EnergyDataset(cache, index, alloy["ids"]).attach_forces(alloy["root"] / "store.h5").forces_store
    gen = torch.Generator().manual_seed(0)
    part = store.predict(model, torch.arange(4), create_graph=False, atom_fraction=0.3, generator=gen)
    full = store.predict(model, torch.arange(4), create_graph=False)
    m = part["mask"]
    assert 0 < int(m.sum()) < m.numel()
    # the chosen atoms get their exact forces from the pairs kept
    assert torch.allclose(part["forces"][m], full["forces"][m], rtol=0, atol=1e-12)


def test_cli_derivatives_and_train_with_forces(alloy, tmp_path, capsys):
    import yaml

    cfg = {"run_id": "t", "seed": 1, "units": "metal", "elements": ["Al", "Ni"],
           "reference": {"engine": "ase", "calculator": "emt"},
           "sampling": {"n_atoms": 32, "melt_temperature": 2000, "states": [{"id": "s0", "phase": "liquid", "T": 1000, "P": 0,
                                                         "composition": {"Al": 0.75, "Ni": 0.25}}]},
           "descriptors": {"featureset": str(alloy["root"] / "fs.yaml"),
                           "derivatives": {"train_frames": 4, "validation_frames": None, "dtype": "float64"}},
           "model": {"hidden": [6]},
           "training": {"max_epochs": 3, "batch_size": 2, "loss": {"forces": 1.0}}}
    alloy["fs"].save(alloy["root"] / "fs.yaml")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    splits = pd.DataFrame({"frame_id": alloy["ids"], "split": ["train"] * 5 + ["validation"]})
    splits.to_parquet(tmp_path / "splits.parquet", index=False)
    assert main(["descriptors", "derivatives", str(tmp_path / "c.yaml"), "--index", str(alloy["index"]),
                 "--splits", str(tmp_path / "splits.parquet"), "--out", str(tmp_path / "d.h5"),
                 "--no-progress"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["train_frames"] == 4 and info["validation_frames"] == 1 and info["frames"] == 5
    assert main(["train", str(tmp_path / "c.yaml"), "--cache", str(alloy["cache"]), "--index", str(alloy["index"]),
                 "--splits", str(tmp_path / "splits.parquet"), "--out", str(tmp_path / "m.pt"),
                 "--derivatives", str(tmp_path / "d.h5"), "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "force RMSE" in out.out and "derivative store" in out.err


def test_compiled_prediction_equals_autograd_through_positions(alloy):
    """predict_compiled (kernel ∂G/∂r, as evaluation uses it) = predict (autograd) to round-off."""
    from meltpot.model.batch import predict_compiled

    fs = alloy["fs"]
    model = _model(fs, seed=7)
    graphs = [frame_graph(a, fs.elements, fs.cutoff_radius) for a in alloy["frames"]]
    ref = predict(model, graphs, forces=True, stress=True)
    out = predict_compiled(model, graphs, stress=True)
    assert torch.allclose(out["energy"], ref["energy"].detach(), rtol=1e-12, atol=0)
    assert torch.allclose(out["forces"], ref["forces"], rtol=0, atol=1e-10 * float(ref["forces"].abs().max()))
    assert torch.allclose(out["stress"], ref["stress"], rtol=0, atol=1e-10 * float(ref["stress"].abs().max()))
