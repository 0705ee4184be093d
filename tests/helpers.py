"""Helpers shared by tests: assemble a dataset as the workflow does; finite differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from meltpot.data.frames import attach_labels, composition_string
from meltpot.data.index import build_index
from meltpot.data.io import read_frames, write_frames
from meltpot.data.splits import make_splits
from meltpot.descriptors.cache import build_cache
from meltpot.descriptors.compute import AtomsDescriptor
from meltpot.descriptors.featureset import FeatureSet, SymmetryFunction, grid
from meltpot.model import HDNNP


def assemble_dataset(root: Path, files: dict, featureset, cache: Path, split_kw: dict,
                     dataset_dir: Path | None = None, units: str = "metal") -> dict:
    """Write ``files`` ({name: frames}) to root/frames/<name>.extxyz, then the dataset index and
    splits (in ``dataset_dir``, default root/dataset) and the descriptor cache ``cache``.

    Returns paths ``index``, ``splits``, ``cache`` and the index DataFrame ``index_df``.
    """
    root = Path(root)
    (root / "frames").mkdir(exist_ok=True)
    ds = Path(dataset_dir) if dataset_dir is not None else root / "dataset"
    ds.mkdir(exist_ok=True)
    entries = []
    for name, frames in files.items():
        path = root / "frames" / f"{name}.extxyz"
        write_frames(path, frames)
        entries += [(path, fr.info["source_index"], fr) for fr in read_frames(path)]
    index = build_index(entries, root=ds, units=units)
    index.to_parquet(ds / "index.parquet", index=False)
    make_splits(index, **split_kw).to_parquet(ds / "splits.parquet", index=False)
    build_cache(ds / "index.parquet", cache, featureset, splits=ds / "splits.parquet", progress=False)
    return {"index": ds / "index.parquet", "splits": ds / "splits.parquet", "cache": Path(cache), "index_df": index}


def fd_stress(energy_of, atoms, h: float = 1e-5) -> np.ndarray:
    """(1/V) ∂E/∂ε by central differences of a homogeneous strain (cell and positions by I + ε)."""
    out = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = []
            for sign in (1, -1):
                deform = np.eye(3)
                deform[a, b] += sign * h
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ deform, scale_atoms=False)
                strained.positions = atoms.positions @ deform
                e.append(energy_of(strained))
            out[a, b] = (e[0] - e[1]) / (2 * h) / atoms.get_volume()
    return out


def emt_alni_frame(rng, n_ni: int, rattle: float = 0.12, shear: float = 0.0):
    """32-atom fcc cell (8.1 Å: periodic images needed at r_c > 4 Å), ``n_ni`` random Ni, rattled
    by ``rattle`` Å, optionally sheared, labelled with ASE's EMT and tagged as a liquid frame."""
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    if shear:
        cell = atoms.cell.array.copy()
        cell[2, 0] += shear
        atoms.set_cell(cell, scale_atoms=True)
    if n_ni:
        symbols = np.array(atoms.get_chemical_symbols())
        symbols[rng.choice(len(atoms), n_ni, replace=False)] = "Ni"
        atoms.set_chemical_symbols(symbols.tolist())
    atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
    atoms.calc = EMT()
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    return attach_labels(atoms, e, f, s, branch="", phase="liquid", T_target=1000.0, P_target=0.0,
                         composition=composition_string(atoms.get_chemical_symbols(), order=["Al", "Ni"]),
                         engine="ase:EMT", units="metal")


# ---------------------------------------------------------------- small random HDNNPs (model/export tests)
RC = 4.5


def make_featureset(elements, name="model-test", rc=RC, zetas=(1, 4)):
    return grid(list(elements), rc=rc, n_radial=2, n_shifted=2, zetas=zetas, lambdas=(-1, 1), name=name)


def make_frame(rng, alloy: bool, shear: float = 0.0, rattle: float = 0.12):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    if shear:
        cell = atoms.cell.array.copy()
        cell[2, 0] += shear
        cell[1, 0] += 0.4 * shear
        atoms.set_cell(cell, scale_atoms=True)
    if alloy:
        symbols = np.array(atoms.get_chemical_symbols())
        symbols[rng.choice(len(atoms), 10, replace=False)] = "Ni"
        atoms.set_chemical_symbols(symbols.tolist())
    atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
    return atoms


def labelled(atoms, state_id="s"):
    atoms = atoms.copy()
    atoms.calc = EMT()
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    return attach_labels(atoms, e, f, s, state_id=state_id, branch="", phase="liquid", T_target=1000.0,
                         P_target=0.0, composition=composition_string(atoms.get_chemical_symbols(),
                                                                       order=["Al", "Ni"]),
                         engine="ase:EMT", units="metal")


def random_model(fs, frames, seed=0, hidden=(8, 6), activation="tanh", refs=None) -> HDNNP:
    """Seeded random weights; scaling from the frames' features; reference energies set."""
    torch.manual_seed(seed)
    model = HDNNP(fs, hidden=hidden, activation=activation)
    desc = AtomsDescriptor(fs)
    per_el = {el: [] for el in fs.elements}
    for fr in frames:
        for el, G in desc.per_element(fr).items():
            per_el[el].append(G)
    mean, std = {}, {}
    for el in fs.elements:
        G = np.concatenate(per_el[el])
        mean[el], std[el] = G.mean(0), G.std(0)
    model.set_scaling(mean, std)
    model.set_reference_energies(refs or {"Al": -3.1, "Ni": -4.4})
    return model


def n2p2_types_featureset():
    """Al–Ni functions under n2p2's exp cutoff with an inner cutoff (α = 0.3), with the weighted (12,
    13) and compact (20, 21, 25) types beside the classic ones."""
    S = SymmetryFunction
    fns = [S("radial", eta=0.5, rc=5.2), S("radial", eta=1.0, rs=2.8, rc=4.8),
           S("angular_narrow", eta=0.02, zeta=2, lam=-1, rc=5.2),
           S("weighted_radial", eta=0.3, rs=2.5, rc=5.0), S("weighted_angular", eta=0.02, zeta=1, lam=1, rc=5.0),
           S("compact_radial", eta=0, rl=2.0, rc=5.2, subtype="p2"),
           S("compact_angular_narrow", eta=0, rl=-5.0, rc=5.0, angle_left=30, angle_right=150, subtype="p3a"),
           S("weighted_compact_angular_wide", eta=0, rl=1.8, rc=5.2, angle_left=-90, angle_right=90, subtype="e")]
    return FeatureSet.from_generic(fns, ["Al", "Ni"], cutoff="exp", cutoff_alpha=0.3, name="n2p2-types")


# ----------------------------------------------------------------------------- an interrupted MD run
class Killed(Exception):
    pass


class KilledAfter:
    """The engine, interrupted (as by a kill) right after its k-th frame was yielded."""

    def __init__(self, engine, k):
        self.engine, self.k = engine, k

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def md(self, *args, **kwargs):
        for i, item in enumerate(self.engine.md(*args, **kwargs)):
            if i == self.k:
                raise Killed()
            yield item
