"""The HDF5 descriptor cache: contents, statistics, keys (reuse/recompute), corruption, errors.

The dataset is made with the real pipeline pieces: rattled fcc Al/Ni cells labelled by ASE's
EMT, written with ``write_frames``, indexed with ``build_index``, split with ``make_splits``.
"""

import logging
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from helpers import emt_alni_frame
from meltpot.data.index import build_index
from meltpot.data.io import read_frames, write_frames
from meltpot.data.splits import make_splits
from meltpot.descriptors.cache import (CacheError, DescriptorCache, build_cache, export_cache,
                                       inspect_cache)
from meltpot.descriptors.compute import AtomsDescriptor
from meltpot.descriptors.featureset import grid
from meltpot.errors import FrameError, MeltpotError

LOGGER = "meltpot.descriptors.cache"


def make_featureset(elements=("Al", "Ni"), rc=4.5, name="test-grid"):
    """A small grid; Ni keeps only its first 10 functions (element feature counts differ)."""
    fs = grid(list(elements), rc=rc, n_radial=2, n_shifted=2, zetas=(1, 4), lambdas=(-1, 1), name=name)
    if "Ni" in fs.elements:
        fs = fs.subset({"Al": list(range(fs.n_features("Al"))), "Ni": list(range(10))}, name=name)
    return fs


def _frame(rng, alloy: bool, shear: float = 0.0):
    return emt_alni_frame(rng, 8 if alloy else 0, rattle=0.12, shear=shear)


FILES = {"alloy_a": (4, True, 0.0), "alloy_b": (3, True, 1.3), "pure_al": (3, False, 0.0)}


@pytest.fixture(scope="session")
def frame_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(7)
    for name, (n, alloy, shear) in FILES.items():
        frames = []
        for _ in range(n):
            fr = _frame(rng, alloy, shear)
            fr.info["state_id"] = name
            frames.append(fr)
        write_frames(d / f"{name}.extxyz", frames)
    return d


def write_index(ds: Path) -> Path:
    """Index of every frame file in ds/../frames (as `meltpot dataset` writes it)."""
    entries = []
    for file in sorted((ds.parent / "frames").glob("*.extxyz")):
        entries += [(file, fr.info["source_index"], fr) for fr in read_frames(file)]
    index = build_index(entries, root=ds, units="metal")
    ds.mkdir(parents=True, exist_ok=True)
    index.to_parquet(ds / "index.parquet", index=False)
    return ds / "index.parquet"


def write_splits(ds: Path, seed: int = 1) -> Path:
    index = pd.read_parquet(ds / "index.parquet")
    make_splits(index, by="frame", train=0.6, validation=0.2, test=0.2, seed=seed).to_parquet(
        ds / "splits.parquet", index=False)
    return ds / "splits.parquet"


def make_dataset(frame_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A fresh copy of the frames under tmp_path/frames with index and splits in tmp_path/dataset."""
    shutil.copytree(frame_dir, tmp_path / "frames")
    ds = tmp_path / "dataset"
    return write_index(ds), write_splits(ds)


@pytest.fixture()
def dataset(frame_dir, tmp_path):
    return make_dataset(frame_dir, tmp_path)


@pytest.fixture()
def fs():
    return make_featureset()


def _build(index, out, fs, splits=None, **kw):
    kw.setdefault("progress", False)
    return build_cache(index, out, fs, splits=splits, **kw)


# ----------------------------------------------------------------------------- contents


def test_cache_equals_descriptor_frame_by_frame(dataset, fs, tmp_path, caplog):
    index_path, splits_path = dataset
    out = tmp_path / "desc" / "test-grid.h5"
    with caplog.at_level(logging.INFO, logger=LOGGER):
        res = _build(index_path, out, fs, splits_path, chunk_frames=3)
    assert res.action == "computed" and res.n_frames == 10 and res.n_atoms == 320 and res.rate > 0
    assert "atom environments/s" in caplog.text
    assert not out.with_name(out.name + ".partial").exists()
    index = pd.read_parquet(index_path)
    desc = AtomsDescriptor(fs)
    with DescriptorCache(out) as c:
        assert c.elements == ["Al", "Ni"] and c.n_frames == 10 and c.n_atoms == 320
        assert c.n_features("Al") == 20 and c.n_features("Ni") == 10
        assert c.labels("Ni") == fs.labels("Ni") and c.labels("Al") == fs.labels("Al")
        np.testing.assert_array_equal(c.frame_ids, index["frame_id"])
        np.testing.assert_array_equal(c.atom_offset, np.r_[0, np.cumsum(index["n_atoms"])])
        assert c.featureset().content_hash() == fs.content_hash()
        all_rows = {el: [] for el in c.elements}
        species = c.species()
        for p, row in enumerate(index.itertuples()):
            atoms = read_frames(index_path.parent / row.file)[row.file_index]
            ref = desc.per_element(atoms)
            got = c.frame_features(row.frame_id)
            sym = np.array(atoms.get_chemical_symbols())
            np.testing.assert_array_equal(species[c.atom_offset[p]:c.atom_offset[p + 1]],
                                          np.where(sym == "Al", 0, 1))
            for el in c.elements:
                assert got[el].shape == ref[el].shape == ((sym == el).sum(), fs.n_features(el))
                np.testing.assert_allclose(got[el], ref[el], rtol=1e-12, atol=1e-13)
                G, fid, atom = c.rows(el, [row.frame_id])
                np.testing.assert_array_equal(G, got[el])
                assert (fid == row.frame_id).all()
                np.testing.assert_array_equal(atom, np.flatnonzero(sym == el))
                all_rows[el].append(ref[el])
        for el in c.elements:
            np.testing.assert_allclose(c.features(el), np.concatenate(all_rows[el]), rtol=1e-12, atol=1e-13)
            # a subset of frames, given in any order, comes back in dataset order
            some = [8, 1, 4]
            np.testing.assert_array_equal(c.features(el, some),
                                          np.concatenate([c.frame_features(f)[el] for f in sorted(some)]))
        # the pure-Al frames have no Ni rows
        pure = index.loc[index["file"].str.contains("pure_al"), "frame_id"].tolist()
        assert c.frame_features(pure[0])["Ni"].shape == (0, 10) and c.features("Ni", pure).shape == (0, 10)
        info = c.info()
        assert info["n_rows"] == {"Al": int((species == 0).sum()), "Ni": int((species == 1).sum())}
        assert info["dtype"] == "float64" and info["stats_over"] == "train" and info["complete"]
    with h5py.File(out, "r") as f:
        assert f["elements/Al/G"].dtype == np.float64
        assert f.attrs["featureset_hash"] == fs.content_hash() and "per_element" in f.attrs["featureset_yaml"]
        assert f.attrs["meltpot_version"] and len(f.attrs["frames_key"]) == 64


def test_chunking_and_float32(dataset, fs, tmp_path):
    index_path, splits_path = dataset
    a = _build(index_path, tmp_path / "a.h5", fs, splits_path, chunk_frames=1).path
    b = _build(index_path, tmp_path / "b.h5", fs, splits_path, chunk_frames=100).path
    c32 = _build(index_path, tmp_path / "c.h5", fs, splits_path, dtype="float32").path
    with DescriptorCache(a) as ca, DescriptorCache(b) as cb, DescriptorCache(c32) as cc:
        assert ca.key == cb.key != cc.key
        for el in ("Al", "Ni"):
            np.testing.assert_array_equal(ca.features(el), cb.features(el))
            g32 = cc.features(el)
            assert g32.dtype == np.float32
            np.testing.assert_allclose(g32, ca.features(el), rtol=1e-5, atol=1e-5)


def test_stats_over_training_rows(dataset, fs, tmp_path):
    index_path, splits_path = dataset
    out = _build(index_path, tmp_path / "c.h5", fs, splits_path).path
    splits = pd.read_parquet(splits_path)
    train = splits.loc[splits["split"] == "train", "frame_id"].to_numpy()
    assert 0 < len(train) < 10
    with DescriptorCache(out) as c:
        for el in c.elements:
            G = c.features(el, train)
            st = c.stats(el)
            assert st["over"] == "train" and st["n_rows"] == len(G)
            for name, fn in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std)):
                np.testing.assert_allclose(st[name], fn(G, axis=0), rtol=1e-12, atol=1e-14)
            assert not np.allclose(st["mean"], c.features(el).mean(0))  # really only the train rows
    # no split: over all frames
    out_all = _build(index_path, tmp_path / "all.h5", fs).path
    with DescriptorCache(out_all) as c:
        assert c.info()["stats_over"] == "all"
        for el in c.elements:
            G = c.features(el)
            np.testing.assert_allclose(c.stats(el)["std"], G.std(0), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(c.stats(el)["max"], G.max(0), rtol=0, atol=0)


# ----------------------------------------------------------------------------- keys


def _stamp(path):
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


def test_up_to_date_cache_is_reused_even_if_frames_are_touched(dataset, fs, tmp_path, caplog):
    index_path, splits_path = dataset
    out = tmp_path / "c.h5"
    _build(index_path, out, fs, splits_path)
    before = _stamp(out)
    frame_file = tmp_path / "frames" / "alloy_a.extxyz"
    os.utime(frame_file, ns=(10**18, 10**18))  # touched, same content
    write_index(index_path.parent)  # the index rewritten with the same rows
    with caplog.at_level(logging.INFO, logger=LOGGER):
        res = _build(index_path, out, fs, splits_path)
    assert res.action == "reused" and res.rate is None
    assert _stamp(out) == before
    assert "reused" in caplog.text and "WARNING" not in caplog.text


def test_changed_frame_file_recomputes(dataset, fs, tmp_path, caplog):
    index_path, splits_path = dataset
    out = tmp_path / "c.h5"
    _build(index_path, out, fs, splits_path)
    with DescriptorCache(out) as c:
        old = c.frame_features(0)
    path = tmp_path / "frames" / "alloy_a.extxyz"
    frames = read_frames(path)
    frames[0].positions[0] += [0.3, 0.0, 0.0]
    write_frames(path, frames)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        res = _build(index_path, out, fs, splits_path)
    assert res.action == "computed" and "frames changed" in res.reason
    assert str(out) in caplog.text and "the frames changed" in caplog.text
    ref = AtomsDescriptor(fs).per_element(read_frames(path)[0])
    with DescriptorCache(out) as c:
        new = c.frame_features(0)
    assert not np.allclose(new["Al"], old["Al"])
    np.testing.assert_allclose(new["Al"], ref["Al"], rtol=1e-12, atol=1e-13)


def test_changed_featureset_or_dtype_recomputes(dataset, fs, tmp_path, caplog):
    index_path, splits_path = dataset
    out = tmp_path / "c.h5"
    _build(index_path, out, fs, splits_path)
    renamed = make_featureset(name="other-name")  # same functions: same content hash
    assert _build(index_path, out, renamed, splits_path).action == "reused"
    other = make_featureset(rc=4.0)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        res = _build(index_path, out, other, splits_path)
    assert res.action == "computed" and "feature set changed" in res.reason
    assert "the feature set changed" in caplog.text
    with DescriptorCache(out) as c:
        assert c.featureset().content_hash() == other.content_hash()
    res = _build(index_path, out, other, splits_path, dtype="float32")
    assert res.action == "computed" and "dtype float64 → float32" in res.reason


def test_changed_splits_recompute_only_stats(dataset, fs, tmp_path, caplog):
    index_path, splits_path = dataset
    out = tmp_path / "c.h5"
    _build(index_path, out, fs, splits_path)
    with h5py.File(out, "r") as f:
        created, G_before = f.attrs["created"], f["elements/Al/G"][()]
    ino = os.stat(out).st_ino
    write_splits(index_path.parent, seed=99)
    splits = pd.read_parquet(splits_path)
    train = splits.loc[splits["split"] == "train", "frame_id"].to_numpy()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        res = _build(index_path, out, fs, splits_path)
    assert res.action == "stats" and "recomputing the statistics only" in caplog.text
    assert os.stat(out).st_ino == ino
    with h5py.File(out, "r") as f:
        assert f.attrs["created"] == created and f.attrs["complete"]
        np.testing.assert_array_equal(f["elements/Al/G"][()], G_before)
    with DescriptorCache(out) as c:
        np.testing.assert_allclose(c.stats("Al")["mean"], c.features("Al", train).mean(0), rtol=1e-12)
    assert _build(index_path, out, fs, splits_path).action == "reused"
    # dropping the split: statistics over all frames, features kept
    res = _build(index_path, out, fs, None)
    assert res.action == "stats"
    with DescriptorCache(out) as c:
        assert c.stats("Ni")["over"] == "all" and c.stats("Ni")["n_rows"] == c.n_rows("Ni")


# ----------------------------------------------------------------------------- bad caches


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _empty(path):
    path.write_bytes(b"")


def _flip_G_data(path):
    with h5py.File(path, "r") as f:
        offset = f["elements/Al/G"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 64)
        fh.write(b"\xff" * 16)


def _incomplete(path):
    with h5py.File(path, "r+") as f:
        f.attrs["complete"] = False


def _drop_stats(path):
    with h5py.File(path, "r+") as f:
        del f["stats/Ni"]


@pytest.mark.parametrize("damage, reason", [
    (_truncate, "unreadable or corrupt"), (_garbage, "unreadable or corrupt"), (_empty, "unreadable or corrupt"),
    (_flip_G_data, "unreadable or corrupt"), (_incomplete, "incomplete"), (_drop_stats, "unreadable or corrupt"),
])
def test_damaged_cache_is_detected_and_rebuilt(dataset, fs, tmp_path, caplog, damage, reason):
    index_path, splits_path = dataset
    out = tmp_path / "c.h5"
    _build(index_path, out, fs, splits_path)
    with DescriptorCache(out) as c:
        good = c.features("Al")
    damage(out)
    assert not inspect_cache(out, verify=True)[0]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        res = _build(index_path, out, fs, splits_path)
    assert res.action == "computed" and reason in res.reason
    assert any(r.levelno == logging.WARNING and str(out) in r.getMessage() and reason in r.getMessage()
               for r in caplog.records)
    with DescriptorCache(out) as c:
        np.testing.assert_array_equal(c.features("Al"), good)


def test_reader_refuses_bad_files(dataset, fs, tmp_path):
    index_path, splits_path = dataset
    with pytest.raises(CacheError, match="does not exist"):
        DescriptorCache(tmp_path / "nope.h5")
    out = _build(index_path, tmp_path / "c.h5", fs, splits_path).path
    with DescriptorCache(out) as c:
        with pytest.raises(CacheError, match="no element 'Cu'"):
            c.features("Cu")
        with pytest.raises(CacheError, match="no frame 99"):
            c.frame_features(99)
    _flip_G_data(out)
    with DescriptorCache(out) as c:  # metadata fine: the damage shows when the data is read
        with pytest.raises(CacheError, match="corrupt"):
            c.features("Al")
    _incomplete(out)
    with pytest.raises(CacheError, match="incomplete"):
        DescriptorCache(out)


# ----------------------------------------------------------------------------- bad input


def test_frame_with_element_outside_featureset(dataset, tmp_path):
    index_path, _ = dataset
    al_only = grid(["Al"], rc=4.5, n_radial=2, n_shifted=0, zetas=(1,), lambdas=(1,), name="al")
    with pytest.raises(FrameError) as exc:
        _build(index_path, tmp_path / "c.h5", al_only)
    msg = str(exc.value)
    assert "alloy_a.extxyz, frame 0" in msg and "Ni not in feature set al" in msg
    # without the index's symbols column the computation itself stops at the frame
    index = pd.read_parquet(index_path).drop(columns=["symbols"])
    index.to_parquet(index_path, index=False)
    with pytest.raises(FrameError, match=r"alloy_a\.extxyz, frame 0: element\(s\) Ni not in feature set al"):
        _build(index_path, tmp_path / "c.h5", al_only)
    assert not (tmp_path / "c.h5").exists() and not (tmp_path / "c.h5.partial").exists()


def test_featureset_element_missing_from_data(dataset, tmp_path):
    index_path, _ = dataset
    fs3 = grid(["Al", "Ni", "Cu"], rc=4.5, n_radial=2, n_shifted=0, zetas=(1,), lambdas=(1,), name="alnicu")
    with pytest.raises(MeltpotError, match=r"feature set alnicu has functions for element\(s\) Cu, which the "
                                           r"dataset .*index.parquet does not contain"):
        _build(index_path, tmp_path / "c.h5", fs3)


def test_index_and_files_must_match(dataset, fs, tmp_path):
    index_path, splits_path = dataset
    out = _build(index_path, tmp_path / "c.h5", fs, splits_path).path
    before = _stamp(out)
    (tmp_path / "frames" / "pure_al.extxyz").unlink()
    with pytest.raises(MeltpotError, match=r"lists frames of \.\./frames/pure_al\.extxyz, but .* does not exist"):
        _build(index_path, out, fs, splits_path)
    assert _stamp(out) == before  # a failing build leaves the old file alone
    # a file with fewer frames than the index lists
    write_index(index_path.parent)
    frames = read_frames(tmp_path / "frames" / "alloy_b.extxyz")
    write_frames(tmp_path / "frames" / "alloy_b.extxyz", frames[:1])
    with pytest.raises(FrameError, match=r"alloy_b\.extxyz, frame 1: the index lists this frame but the file has 1"):
        _build(index_path, out, fs)
    # a split table of another dataset
    write_index(index_path.parent)
    splits = pd.read_parquet(splits_path)
    splits.iloc[:-1].to_parquet(splits_path, index=False)
    with pytest.raises(MeltpotError, match="does not match the dataset index"):
        _build(index_path, out, fs, splits_path)
    with pytest.raises(MeltpotError, match="dtype 'float16' unknown"):
        _build(index_path, out, fs, dtype="float16")


# ----------------------------------------------------------------------------- export


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".parquet"])
def test_export_round_trip(dataset, fs, tmp_path, suffix):
    index_path, splits_path = dataset
    out = _build(index_path, tmp_path / "c.h5", fs, splits_path).path
    dest = tmp_path / f"export{suffix}"
    with DescriptorCache(out) as c:
        n = export_cache(out, dest, batch_rows=50)
        assert n == c.n_atoms
        if suffix == ".npz":
            d = np.load(dest)
            assert list(d["elements"]) == c.elements
            for el in c.elements:
                G, fid, atom = c.rows(el)
                np.testing.assert_array_equal(d[f"{el}/G"], G)
                np.testing.assert_array_equal(d[f"{el}/frame_id"], fid)
                np.testing.assert_array_equal(d[f"{el}/atom"], atom)
                assert list(d[f"{el}/labels"]) == c.labels(el)
        else:
            df = pd.read_csv(dest) if suffix == ".csv" else pd.read_parquet(dest)
            assert list(df.columns[:3]) == ["element", "frame_id", "atom"]
            assert list(df.columns[3:]) == c.labels("Al")  # Ni's functions are a subset of Al's
            for el in c.elements:
                G, fid, atom = c.rows(el)
                part = df[df["element"] == el]
                np.testing.assert_array_equal(part["frame_id"], fid)
                np.testing.assert_array_equal(part["atom"], atom)
                np.testing.assert_allclose(part[c.labels(el)].to_numpy(), G, rtol=1e-15, atol=0)
                missing = [lab for lab in df.columns[3:] if lab not in c.labels(el)]
                assert part[missing].isna().all().all()
        # one element only
        n_ni = export_cache(out, tmp_path / f"ni{suffix}", element="Ni")
        assert n_ni == c.n_rows("Ni")
    with pytest.raises(MeltpotError, match="unknown export format .txt"):
        export_cache(out, tmp_path / "x.txt")
    with pytest.raises(CacheError, match="no element 'Cu'"):
        export_cache(out, tmp_path / "x.npz", element="Cu")
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_cache_matches_cpu(dataset, fs, tmp_path):
    index_path, splits_path = dataset
    cpu = _build(index_path, tmp_path / "cpu.h5", fs, splits_path).path
    gpu = _build(index_path, tmp_path / "gpu.h5", fs, splits_path, device="cuda").path
    with DescriptorCache(cpu) as a, DescriptorCache(gpu) as b:
        assert a.key == b.key and b.info()["device"] == "cuda"
        for el in a.elements:
            np.testing.assert_allclose(b.features(el), a.features(el), rtol=1e-10, atol=1e-12)
