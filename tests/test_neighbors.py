"""Periodic neighbour search against ASE's neighbour list (independent implementation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list

from meltpot.descriptors.neighbors import cell_heights, neighbor_pairs, pair_vectors

DTYPES = [torch.float64, torch.float32]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def random_cell(rng, kind: str):
    """(cell, n_atoms, pbc, cutoff) for a family of awkward cells."""
    if kind == "cubic":
        return np.eye(3) * 7.0, 20, (True, True, True), 3.1
    if kind == "triclinic":
        cell = np.diag(rng.uniform(5.0, 7.0, 3)) + np.triu(rng.uniform(-2.0, 2.0, (3, 3)), 1)
        return cell, 15, (True, True, True), 4.0
    if kind == "tiny":          # cell far smaller than the cutoff: many images of each atom
        cell = np.diag([2.1, 2.5, 1.9]) + np.triu(rng.uniform(-0.5, 0.5, (3, 3)), 1)
        return cell, 3, (True, True, True), 5.2
    if kind == "one_atom":
        cell = np.array([[2.6, 0.0, 0.0], [1.3, 2.25, 0.0], [1.3, 0.75, 2.12]])  # fcc primitive
        return cell, 1, (True, True, True), 6.8
    if kind == "tilted":        # strongly sheared: perpendicular widths far below the edge lengths
        cell = np.array([[6.0, 0.0, 0.0], [5.7, 1.6, 0.0], [-5.2, 4.9, 1.8]])
        return cell, 6, (True, True, True), 4.5
    if kind == "rotated":       # general orientation, not lower-triangular
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        cell = (np.diag([4.0, 5.0, 4.5]) + np.triu(rng.uniform(-1.5, 1.5, (3, 3)), 1)) @ q.T
        return cell, 8, (True, True, True), 5.0
    if kind == "slab":          # mixed pbc: open along c
        cell = np.array([[5.0, 0.0, 0.0], [1.5, 4.5, 0.0], [0.5, 0.3, 9.0]])
        return cell, 10, (True, True, False), 4.0
    if kind == "wire":          # periodic along a only, thin along a
        cell = np.array([[2.5, 0.0, 0.0], [0.0, 8.0, 0.0], [0.3, 0.0, 8.0]])
        return cell, 6, (True, False, False), 5.5
    if kind == "cluster":       # no periodicity at all
        return np.eye(3) * 6.0, 12, (False, False, False), 3.5
    raise ValueError(kind)


KINDS = ["cubic", "triclinic", "tiny", "one_atom", "tilted", "rotated", "slab", "wire", "cluster"]


def make_atoms(kind: str, seed: int = 0, outside: bool = True) -> tuple[Atoms, float]:
    rng = np.random.default_rng(seed)
    cell, n, pbc, rc = random_cell(rng, kind)
    frac = rng.uniform(0.0, 1.0, (n, 3))
    if outside:  # positions outside the cell: by whole cells along periodic axes, by a bit along open ones
        frac += np.where(pbc, rng.integers(-2, 3, (n, 3)), -0.4)
    atoms = Atoms("X" * n, scaled_positions=np.zeros((n, 3)), cell=cell, pbc=pbc)
    atoms.positions = frac @ cell
    return atoms, rc


def ase_pairs(atoms: Atoms, rc: float) -> set:
    i, j, S = neighbor_list("ijS", atoms, rc, self_interaction=False)
    return {(int(a), int(b), tuple(int(x) for x in s)) for a, b, s in zip(i, j, S)}


def our_pairs(atoms: Atoms, rc: float, dtype=torch.float64, device="cpu", **kw):
    pos = torch.tensor(atoms.positions, dtype=dtype, device=device)
    cell = torch.tensor(atoms.cell.array, dtype=dtype, device=device)
    return pos, cell, neighbor_pairs(pos, cell, atoms.pbc, rc, **kw)


def as_set(i, j, s) -> set:
    return {(int(a), int(b), tuple(int(x) for x in c)) for a, b, c in zip(i.tolist(), j.tolist(), s.tolist())}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_pairs_equal_ase(kind, seed, dtype, device):
    atoms, rc = make_atoms(kind, seed)
    # the float32 search sees float32-rounded inputs: give ASE the same numbers
    atoms.positions = atoms.positions.astype(np.float32 if dtype == torch.float32 else np.float64).astype(float)
    atoms.cell = atoms.cell.array.astype(np.float32 if dtype == torch.float32 else np.float64).astype(float)
    pos, cell, (i, j, s) = our_pairs(atoms, rc, dtype, device)
    assert i.device.type == device and i.dtype == torch.long and s.shape == (len(i), 3)
    ours = as_set(i.cpu(), j.cpu(), s.cpu())
    assert len(ours) == len(i), "duplicate pairs"
    ref = ase_pairs(atoms, rc)
    assert len(ref) > 0
    assert ours == ref, (f"missing {sorted(ref - ours)[:5]}, extra {sorted(ours - ref)[:5]}")
    # sorted by centre, then neighbour
    key = i.cpu() * len(atoms) + j.cpu()
    assert bool((key[1:] >= key[:-1]).all())
    # pair vectors are x_j − x_i + S·cell, i.e. ASE's D
    d = pair_vectors(pos, cell, i, j, s).cpu().double().numpy()
    assert np.all(np.linalg.norm(d, axis=1) < rc)
    assert d.dtype == np.float64 and pair_vectors(pos, cell, i, j, s).dtype == dtype


def test_tiny_cell_counts_images():
    """One atom in a 2 Å cube with r_c = 5: every lattice vector within r_c is a neighbour."""
    a, rc = 2.0, 5.0
    atoms = Atoms("X", positions=[[0.3, 0.4, 0.5]], cell=np.eye(3) * a, pbc=True)
    _, _, (i, j, s) = our_pairs(atoms, rc)
    grid = np.array(np.meshgrid(*[np.arange(-3, 4)] * 3, indexing="ij")).reshape(3, -1).T
    r = np.linalg.norm(grid * a, axis=1)
    expected = {tuple(int(x) for x in g) for g, rr in zip(grid, r) if 0 < rr < rc}
    assert as_set(i, j, s) == {(0, 0, g) for g in expected}
    assert len(i) == len(expected)


def test_unwrapped_positions_same_distances():
    """Atoms far outside the cell give the same distances as wrapped ones; shifts compensate."""
    atoms, rc = make_atoms("triclinic", 3, outside=True)
    wrapped = atoms.copy()
    wrapped.wrap()
    _, _, (i1, j1, s1) = our_pairs(atoms, rc)
    p2, c2, (i2, j2, s2) = our_pairs(wrapped, rc)
    assert torch.equal(i1, i2) and torch.equal(j1, j2)
    d1 = pair_vectors(torch.tensor(atoms.positions), torch.tensor(atoms.cell.array), i1, j1, s1)
    d2 = pair_vectors(p2, c2, i2, j2, s2)
    # pairs are sorted by (i, j) only: compare sorted distances within each (i, j) group
    key = (i1 * len(atoms) + j1).double() * 1e3
    o1 = torch.argsort(key + d1.norm(dim=1))
    o2 = torch.argsort(key + d2.norm(dim=1))
    torch.testing.assert_close(d1[o1], d2[o2], rtol=0, atol=1e-10)


def test_small_chunks_same_result():
    atoms, rc = make_atoms("triclinic", 4)
    _, _, a = our_pairs(atoms, rc)
    _, _, b = our_pairs(atoms, rc, chunk=3)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize("axis,cell", [
    ("a", np.diag([5.0, 12.0, 12.0])),
    ("b", np.diag([12.0, 5.0, 12.0])),
    ("c", np.array([[12.0, 0.0, 0.0], [0.0, 12.0, 0.0], [8.0, 0.0, 5.0]])),  # tilted: height 5
])
def test_no_images_raises_naming_axis(axis, cell):
    atoms = Atoms("X2", positions=[[1.0, 1.0, 1.0], [3.0, 3.0, 3.0]], cell=cell, pbc=True)
    with pytest.raises(ValueError, match=f"along {axis}"):
        our_pairs(atoms, 3.0, allow_images=False)
    # the same search with images allowed works, and a cutoff within half the widths passes
    our_pairs(atoms, 3.0)
    our_pairs(atoms, 2.4, allow_images=False)


def test_no_images_ignores_open_axes():
    atoms = Atoms("X2", positions=[[1.0, 1.0, 1.0], [3.0, 3.0, 3.0]], cell=np.diag([12.0, 12.0, 2.0]),
                  pbc=(True, True, False))
    _, _, (i, j, s) = our_pairs(atoms, 4.0, allow_images=False)
    assert as_set(i, j, s) == ase_pairs(atoms, 4.0)


def test_cell_heights_and_degenerate_input():
    cell = torch.tensor([[6.0, 0.0, 0.0], [5.7, 1.6, 0.0], [-5.2, 4.9, 1.8]], dtype=torch.float64)
    h = cell_heights(cell)
    inv = np.linalg.inv(cell.numpy())  # heights are 1 / |columns of the inverse|
    np.testing.assert_allclose(h.numpy(), 1.0 / np.linalg.norm(inv, axis=0), rtol=1e-12)
    empty = neighbor_pairs(torch.zeros(0, 3, dtype=torch.float64), cell, (True,) * 3, 3.0)
    assert all(t.numel() == 0 for t in empty)
    with pytest.raises(ValueError, match="volume"):
        neighbor_pairs(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64),
                       (True,) * 3, 3.0)


def test_clusters_and_slabs_without_cell_vectors():
    """A cluster without a cell (all zeros, pbc False) and a slab whose open axis has no vector:
    the same pairs as the same atoms in a box, and a zero vector along a periodic axis is an error."""
    from ase.cluster import Icosahedron

    cluster = Icosahedron("Al", 2)
    cluster.rattle(0.05, seed=2)
    assert cluster.cell.volume == 0 and not cluster.pbc.any()
    boxed = cluster.copy()
    boxed.center(vacuum=8.0)
    _, _, (i, j, s) = our_pairs(cluster, 4.0)
    assert len(i) > 0 and as_set(i, j, s) == ase_pairs(boxed, 4.0)
    slab = Atoms("Al4", positions=[[0, 0, 0], [2, 0, 1], [0, 2, 2], [2, 2, 3]], cell=[[4, 0, 0], [0, 4, 0], [0, 0, 0]],
                 pbc=(True, True, False))
    padded = slab.copy()
    padded.cell[2] = [0, 0, 20.0]
    _, _, (i, j, s) = our_pairs(slab, 3.5)
    assert as_set(i, j, s) == ase_pairs(padded, 3.5)
    with pytest.raises(ValueError, match="vector c is zero but the axis is periodic"):
        neighbor_pairs(torch.zeros(2, 3, dtype=torch.float64), torch.tensor(slab.cell[:], dtype=torch.float64),
                       (True, True, True), 3.0)


def test_descriptors_and_calculator_of_a_cluster_equal_those_in_a_box():
    from ase.cluster import Icosahedron

    from meltpot.descriptors import load_featureset
    from meltpot.descriptors.compute import AtomsDescriptor
    from meltpot.model import HDNNP
    from meltpot.model.calculator import MeltpotCalculator

    fs = load_featureset("al-thesis", ["Al"])
    cluster = Icosahedron("Al", 3)
    cluster.rattle(0.05, seed=1)
    boxed = cluster.copy()
    boxed.center(vacuum=8.0)
    boxed.pbc = True                                  # vacuum wider than r_c: no image within reach
    G, _ = AtomsDescriptor(fs).features(cluster)
    G_box, _ = AtomsDescriptor(fs).features(boxed)
    np.testing.assert_allclose(np.asarray(G), np.asarray(G_box), rtol=0, atol=1e-12)
    torch.manual_seed(0)
    model = HDNNP(fs, hidden=(5,))
    for atoms in (cluster, boxed):
        atoms.calc = MeltpotCalculator(model)
    assert cluster.get_potential_energy() == pytest.approx(boxed.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(cluster.get_forces(), boxed.get_forces(), atol=1e-12)
    assert np.abs(cluster.get_forces().sum(0)).max() < 1e-12
