"""The compiled symmetry-function kernel against the torch reference: values, and derivatives
against autograd of :class:`SymmetryFunctions` (dG[:, f, :] = ∂(Σ_i G[i, f]) / ∂r_ij), both to
1e-10 relative in float64; forces of E = Σ w·G against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from meltpot.descriptors import FeatureSet, SymmetryFunction, load_featureset
from meltpot.descriptors.featureset import NoiseFeature
from meltpot.descriptors.kernel import KernelBuildError, KernelSymmetryFunctions, available, build_kernel
from meltpot.descriptors.neighbors import neighbor_pairs, pair_vectors
from meltpot.descriptors.symmetry import SymmetryFunctions
from meltpot.errors import ConfigError

pytestmark = pytest.mark.skipif(not available(), reason="the symmetry-function kernel does not build here (no g++?)")

AL_LIQUID = 2.3 / 26.98 * 6.02214076e23 / 1e24   # atoms per Å³ at 2.3 g/cm³
TRICLINIC = [[1.0, 0.0, 0.0], [0.45, 0.9, 0.0], [-0.3, 0.35, 0.8]]


# ============================================================================ structures and feature sets
def rattled_fcc(reps: int, seed: int = 0) -> Atoms:
    """fcc Al at liquid density, rattled by 0.3 Å (4·reps³ atoms)."""
    a = (4 / AL_LIQUID) ** (1 / 3)
    atoms = bulk("Al", "fcc", a=a, cubic=True).repeat(reps)
    atoms.rattle(0.3, seed=seed)
    return atoms


def random_cell(symbols, seed: int, cell_shape=TRICLINIC, density: float = AL_LIQUID, dmin: float = 2.2) -> Atoms:
    """Random sequential addition with a minimum-image distance ``dmin``: a liquid-like cell."""
    rng = np.random.default_rng(seed)
    shape = np.asarray(cell_shape, dtype=float)
    cell = shape * (len(symbols) / density / abs(np.linalg.det(shape))) ** (1 / 3)
    frac = np.zeros((0, 3))
    while len(frac) < len(symbols):
        trial = rng.uniform(0, 1, 3)
        df = frac - trial
        df -= np.round(df)
        if len(frac) == 0 or np.min(np.linalg.norm(df @ cell, axis=1)) >= dmin:
            frac = np.vstack([frac, trial])
    return Atoms(list(symbols), scaled_positions=frac, cell=cell, pbc=True)


def alloy_set(cutoff: str) -> FeatureSet:
    """Radial, narrow and wide functions with rs > 0, several rc, integer and non-integer ζ, over Al, Ni."""
    S = SymmetryFunction
    fns = [S("radial", eta=0.5, rc=6.0), S("radial", eta=1.2, rs=2.5, rc=5.5), S("radial", eta=0.8, rs=3.5, rc=6.0),
           S("angular_narrow", eta=0.01, zeta=1, lam=-1, rc=6.0),
           S("angular_narrow", eta=0.01, zeta=2, lam=1, rc=6.0),
           S("angular_narrow", eta=0.05, rs=1.0, zeta=3.5, lam=1, rc=5.5),
           S("angular_wide", eta=0.02, zeta=4, lam=-1, rc=6.0),
           S("angular_wide", eta=0.02, zeta=16, lam=1, rc=6.0),
           S("angular_wide", eta=0.1, rs=0.8, zeta=2.5, lam=1, rc=5.0)]
    return FeatureSet.from_generic(fns, ["Al", "Ni"], cutoff=cutoff, name=f"alloy-{cutoff}")


def alloy_atoms(n: int = 24, seed: int = 3, cell_shape=TRICLINIC) -> Atoms:
    symbols = ["Al", "Ni"] * (n // 2)
    np.random.default_rng(seed).shuffle(symbols)
    return random_cell(symbols, seed, cell_shape)


def pair_list(atoms: Atoms, fs: FeatureSet):
    index = {e: k for k, e in enumerate(fs.elements)}
    species = torch.tensor([index[s] for s in atoms.get_chemical_symbols()])
    pos, cell = torch.tensor(atoms.positions), torch.tensor(atoms.cell.array)
    i, j, s = neighbor_pairs(pos, cell, atoms.pbc, fs.cutoff_radius)
    return species, i, j, pair_vectors(pos, cell, i, j, s)


# ============================================================================ reference and comparison
def reference(fs, species, center, neighbor, rij, n_local):
    """G of the torch reference and dG by one backward pass per column."""
    r = rij.detach().clone().requires_grad_(True)
    G = SymmetryFunctions(fs)(species, center, neighbor, r, n_local)
    dG = torch.zeros(r.shape[0], G.shape[1], 3, dtype=torch.float64)
    for f in range(G.shape[1]):
        if G.requires_grad and r.shape[0]:
            (g,) = torch.autograd.grad(G[:, f].sum(), r, retain_graph=True, allow_unused=True)
            if g is not None:
                dG[:, f] = g
    return G.detach(), dG


def assert_matches(fs, species, center, neighbor, rij, n_local, rtol=1e-10, atol=1e-12, **kw):
    """Kernel vs reference: G elementwise (sums of positive terms), dG relative to each column's largest."""
    G, dG = KernelSymmetryFunctions(fs).compute(species, center, neighbor, rij, n_local, **kw)
    Gr, dGr = reference(fs, species, center, neighbor, rij, n_local)
    assert G.dtype == torch.float64 and G.shape == Gr.shape and dG.shape == dGr.shape
    err = (G - Gr).abs()
    assert bool((err <= rtol * Gr.abs() + atol).all()), f"G: max error {float(err.max()):.3g}"
    scale = dGr.abs().amax(dim=(0, 2), keepdim=True) if dGr.numel() else 0.0
    derr = (dG - dGr).abs()
    assert bool((derr <= rtol * scale + atol).all()), f"dG: max error {float(derr.max()) if derr.numel() else 0:.3g}"
    return G, dG


# ============================================================================ tests
@pytest.mark.parametrize("reps", [2, 1])
def test_al_thesis_liquid_small_cell(reps):
    """al-thesis (r_c 6.8 Å) on 32 atoms in an 8.5 Å cell (< 2 r_c: several images of one neighbour)
    and on 4 atoms in a 5.4 Å cell (< r_c: atoms meet their own images)."""
    fs = load_featureset("al-thesis", ["Al"])
    atoms = rattled_fcc(reps)
    species, i, j, rij = pair_list(atoms, fs)
    assert len(torch.unique(i * len(atoms) + j)) < len(i)          # repeated (i, j): periodic images
    assert bool((i == j).any()) == (reps == 1)                       # own images
    G, _ = assert_matches(fs, species, i, j, rij, len(atoms))
    assert G.shape == (4 * reps**3, 22) and bool((G > 0).all())


@pytest.mark.parametrize("cutoff", ["cosine", "polynomial"])
def test_alloy_triclinic_both_cutoffs(cutoff):
    fs = alloy_set(cutoff)
    atoms = alloy_atoms()
    species, i, j, rij = pair_list(atoms, fs)
    G, dG = assert_matches(fs, species, i, j, rij, len(atoms))
    assert G.shape == (24, 3 * 2 + 6 * 3)
    assert bool((G.abs().sum(0) > 0).all())                      # every function (and element block) exercised


def test_selected_subset_per_element():
    """Different selections per element (Al drops the whole narrow family): the gather path of dG."""
    full = alloy_set("polynomial")
    labels = [f.type for f in full.per_element["Al"]]
    al = [k for k, t in enumerate(labels) if t != "angular_narrow"][::2]
    ni = [0, 3, 5, 6, 8, 10, 13, 20]
    fs = full.subset({"Al": al, "Ni": ni})
    assert not any(f.type == "angular_narrow" for f in fs.per_element["Al"])
    atoms = alloy_atoms(seed=5)
    species, i, j, rij = pair_list(atoms, fs)
    G, dG = assert_matches(fs, species, i, j, rij, len(atoms))
    assert G.shape[1] == max(len(al), len(ni))
    is_al = species == 0
    assert bool((G[is_al, len(al):] == 0).all()) and bool((dG[is_al[i], len(al):] == 0).all())


def test_al_thesis_subset_without_narrow():
    """3 radial + 2 angular of al-thesis; then radial only (no triplet work at all)."""
    full = load_featureset("al-thesis", ["Al"])
    atoms = rattled_fcc(2, seed=4)
    for keep in ([0, 5, 8, 14, 19], [1, 2, 3]):
        fs = full.subset({"Al": keep})
        species, i, j, rij = pair_list(atoms, fs)
        assert_matches(fs, species, i, j, rij, len(atoms))


def test_ghost_atoms_and_unsorted_pairs():
    """The LAMMPS contract: neighbours are ghost atoms (species longer than n_local), pairs in any
    order; dG comes back in the caller's order."""
    fs = alloy_set("cosine")
    atoms = alloy_atoms(n=16, seed=9)
    species, i, j, rij = pair_list(atoms, fs)
    n = len(atoms)
    ghost = torch.arange(n, n + len(j))                          # one ghost per pair
    species_ext = torch.cat([species, species[j]])
    perm = torch.randperm(len(i), generator=torch.Generator().manual_seed(0))
    G, dG = assert_matches(fs, species_ext, i[perm], ghost[perm], rij[perm], n)
    G0, dG0 = KernelSymmetryFunctions(fs).compute(species, i, j, rij, n)
    # same sums in another order (each centre's pairs are summed in the order given)
    assert torch.allclose(G, G0, rtol=1e-13, atol=0) and torch.allclose(dG, dG0[perm], rtol=1e-12, atol=1e-14)


def test_isolated_atoms():
    """No pairs at all (one atom in vacuum), and one isolated atom among neighbours."""
    fs = alloy_set("polynomial")
    k = KernelSymmetryFunctions(fs)
    G, dG = k.compute(torch.tensor([1]), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                      torch.zeros(0, 3, dtype=torch.float64), 1)
    assert G.shape == (1, k.f_max) and bool((G == 0).all()) and dG.shape == (0, k.f_max, 3)
    atoms = Atoms("AlNiAl", positions=[[0, 0, 0], [2.5, 0.3, 0], [15, 15, 15]], cell=[40, 40, 40], pbc=False)
    species, i, j, rij = pair_list(atoms, fs)
    G, _ = assert_matches(fs, species, i, j, rij, len(atoms))
    assert bool((G[2] == 0).all()) and bool((G[0] > 0).any())


def test_threads_and_numpy_inputs():
    fs = alloy_set("polynomial")
    species, i, j, rij = pair_list(alloy_atoms(), fs)
    k = KernelSymmetryFunctions(fs)
    G1, dG1 = k.compute(species, i, j, rij, len(species), threads=1)
    G2, dG2 = k.compute(species.numpy(), i.numpy(), j.numpy(), rij.numpy(), len(species), threads=2)
    assert torch.equal(G1, G2) and torch.equal(dG1, dG2)        # one thread per centre: same sums
    G3, none = k.compute(species, i, j, rij, len(species), derivatives=False)
    assert none is None and torch.equal(G1, G3)


def test_float32_kernel():
    fs = alloy_set("cosine")
    species, i, j, rij = pair_list(alloy_atoms(), fs)
    k = KernelSymmetryFunctions(fs)
    G, dG = k.compute(species, i, j, rij, len(species))
    Gf, dGf = k.compute(species, i, j, rij, len(species), dtype=torch.float32)
    assert Gf.dtype == torch.float32
    assert float(((Gf.double() - G).abs() / G.abs().clamp(min=1e-6)).max()) < 1e-4
    assert float((dGf.double() - dG).abs().max()) < 1e-4 * float(dG.abs().max())


def kernel_and_fd_forces(fs: FeatureSet, atoms: Atoms, h: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Forces of E = Σ_i w[e_i]·G_i (random w): from the kernel's dG, F_i = Σ_p(i=c) g_p − Σ_p(i=n) g_p
    with g_p = Σ_f w_f dG[p, f], and by central differences of the kernel's E (step h, Å)."""
    k = KernelSymmetryFunctions(fs)
    w = torch.tensor(np.random.default_rng(0).normal(size=(2, k.f_max)))

    def energy(pos):
        a = atoms.copy()
        a.positions = pos
        species, i, j, rij = pair_list(a, fs)
        G, dG = k.compute(species, i, j, rij, len(a))
        return float((w[species] * G).sum()), species, i, j, dG

    _, species, i, j, dG = energy(atoms.positions)
    g = (w[species[i]][..., None] * dG).sum(1)                    # (P, 3) = ∂E/∂r_ij
    forces = torch.zeros(len(atoms), 3, dtype=torch.float64).index_add_(0, i, g).index_add_(0, j, -g)
    fd = np.zeros((len(atoms), 3))
    for a in range(len(atoms)):
        for c in range(3):
            pos = atoms.positions.copy()
            pos[a, c] += h
            ep = energy(pos)[0]
            pos[a, c] -= 2 * h
            fd[a, c] = -(ep - energy(pos)[0]) / (2 * h)
    return forces.numpy(), fd


def test_forces_finite_differences():
    """E = Σ_i w[e_i]·G_i: the kernel's forces against central differences."""
    fs = alloy_set("polynomial")
    atoms = alloy_atoms(n=8, seed=11)                             # cell ≈ 5.4 Å: many images
    forces, fd = kernel_and_fd_forces(fs, atoms)
    assert np.abs(forces - fd).max() < 1e-6 * np.abs(fd).max()


def test_noise_features_refused():
    fs = load_featureset("al-thesis", ["Al"])
    noisy = FeatureSet({"Al": [*fs.per_element["Al"], NoiseFeature(0, 1.0, 0.5, seed=1)]}, name="noisy")
    species, i, j, rij = pair_list(rattled_fcc(1), fs)
    with pytest.raises(ConfigError, match="noise"):
        KernelSymmetryFunctions(noisy).compute(species, i, j, rij, 4)


def test_bad_pairs_and_missing_compiler(tmp_path, monkeypatch):
    fs = load_featureset("al-thesis", ["Al"])
    species, i, j, rij = pair_list(rattled_fcc(1), fs)
    with pytest.raises(ValueError, match="centre index"):
        KernelSymmetryFunctions(fs).compute(species, i, j, rij, 3)   # centre 3 >= n_local
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    with pytest.raises(KernelBuildError, match="does not run"):
        build_kernel(out_dir=tmp_path)
