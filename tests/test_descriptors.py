"""Symmetry functions: agreement with DScribe's ACSF and with a plain loop implementation,
forces and stress against finite differences, invariances, and the pair-list contract
with ghost atoms that the LAMMPS pair style relies on."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers

from helpers import fd_stress
from meltpot.descriptors import FeatureSet, SymmetryFunction, load_featureset
from meltpot.descriptors.compute import AtomsDescriptor, forces_and_stress
from meltpot.descriptors.featureset import preset_names
from meltpot.descriptors.neighbors import neighbor_pairs
from meltpot.descriptors.symmetry import SymmetryFunctions, cutoff_fn
from meltpot.errors import ConfigError, FrameError

from reference_acsf import cutoff as ref_cutoff
from reference_acsf import reference_features

dscribe = pytest.importorskip("dscribe")
from dscribe.descriptors import ACSF  # noqa: E402

# density of liquid Al near the melting point, ≈ 2.3 g/cm³
AL_LIQUID = 2.3 / 26.98 * 6.02214076e23 / 1e24   # atoms per Å³


# ============================================================================ structures
def liquid_like(symbols, density: float, seed: int = 0, dmin: float = 2.2, cell_shape=None) -> Atoms:
    """Random sequential addition with a minimum (minimum-image) distance: a liquid-like cell."""
    rng = np.random.default_rng(seed)
    n = len(symbols)
    shape = np.eye(3) if cell_shape is None else np.asarray(cell_shape, dtype=float)
    cell = shape * (n / density / abs(np.linalg.det(shape))) ** (1 / 3)
    frac = np.zeros((0, 3))
    while len(frac) < n:
        trial = rng.uniform(0.0, 1.0, 3)
        if len(frac):
            df = frac - trial
            df -= np.round(df)
            if np.min(np.linalg.norm(df @ cell, axis=1)) < dmin:
                continue
        frac = np.vstack([frac, trial])
    return Atoms(list(symbols), scaled_positions=frac, cell=cell, pbc=True)


def alloy(symbols_cycle, n: int, seed: int, density=AL_LIQUID, cell_shape=None, dmin=2.2) -> Atoms:
    rng = np.random.default_rng(seed + 100)
    symbols = [symbols_cycle[k % len(symbols_cycle)] for k in range(n)]
    rng.shuffle(symbols)
    return liquid_like(symbols, density, seed, dmin=dmin, cell_shape=cell_shape)


def scramble_images(atoms: Atoms, seed: int = 7) -> Atoms:
    """Move each atom by a random lattice vector (a different periodic image of the same system)."""
    out = atoms.copy()
    shifts = np.random.default_rng(seed).integers(-3, 4, (len(atoms), 3)) * np.asarray(atoms.pbc)
    out.positions = atoms.positions + shifts @ atoms.cell.array
    return out


TRICLINIC = [[1.0, 0.0, 0.0], [0.45, 0.9, 0.0], [-0.3, 0.35, 0.8]]


def features(atoms: Atoms, fs: FeatureSet, dtype=torch.float64) -> np.ndarray:
    G, _ = AtomsDescriptor(fs, dtype=dtype).features(atoms)
    return G.double().numpy()


def assert_rel_close(actual, expected, rtol, what=""):
    """Per feature (column): |actual − expected| ≤ rtol × max |expected| over atoms."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert np.all(np.isfinite(actual))
    scale = np.abs(expected).max(axis=0)
    err = np.abs(actual - expected)
    bad = err > rtol * scale
    if bad.any():
        col = int(np.argmax((err / np.where(scale > 0, scale, 1e-300)).max(0)))
        raise AssertionError(f"{what}: feature {col} differs by {err[:, col].max():.3g} "
                             f"(scale {scale[col]:.3g}, rtol {rtol:g}); {bad.sum()} entries off")


# ============================================================================ DScribe
RC_DS = 5.5
G2_PARAMS = [(0.0, 0.0), (0.05, 0.0), (0.6, 0.0), (2.0, 2.5), (1.2, 3.7), (0.8, 4.9)]
ANG_PARAMS = [(0.004, 1, 1), (0.004, 1, -1), (0.03, 2, 1), (0.03, 4, -1), (0.1, 16, 1), (0.001, 64, -1),
              (0.02, 64, 1)]


def generic_functions(types=("angular_narrow", "angular_wide"), rc=RC_DS):
    fns = [SymmetryFunction("radial", eta=e, rs=r, rc=rc) for e, r in G2_PARAMS]
    for t in types:
        fns += [SymmetryFunction(t, eta=e, zeta=float(z), lam=float(lam), rc=rc) for e, z, lam in ANG_PARAMS]
    return fns


def dscribe_pair_block(zi_a: int, zi_b: int) -> int:
    """DScribe's block index of an unordered species pair (indices in the Z-sorted species
    list): lower-triangular row-major, (0,0),(1,0),(1,1),(2,0),(2,1),(2,2),… — not the
    documented combinations order (0,0),(0,1),(0,2),(1,1),… once there are 3 species."""
    hi, lo = max(zi_a, zi_b), min(zi_a, zi_b)
    return hi * (hi + 1) // 2 + lo


def dscribe_columns(fs: FeatureSet, element: str, g2, g4, g5) -> list[int]:
    """For each of ``element``'s functions in ``fs``: its DScribe output column.

    DScribe's layout: for each species s (sorted by Z) a block [G1, G2(g2_params)...]; then
    for each species-pair block (see :func:`dscribe_pair_block`) [G4(g4_params)...,
    G5(g5_params)...]. Our narrow angular is DScribe's G4, our wide angular its G5."""
    species = sorted(fs.elements, key=lambda e: atomic_numbers[e])
    zi = {e: k for k, e in enumerate(species)}
    n_rad = 1 + len(g2)
    cols = []
    for f in fs.per_element[element]:
        if f.type == "radial":
            cols.append(zi[f.neighbors[0]] * n_rad + 1 + g2.index((f.eta, f.rs)))
        else:
            block = dscribe_pair_block(zi[f.neighbors[0]], zi[f.neighbors[1]])
            key = (f.eta, f.zeta, f.lam)
            within = g4.index(key) if f.type == "angular_narrow" else len(g4) + g5.index(key)
            cols.append(len(species) * n_rad + block * (len(g4) + len(g5)) + within)
    return cols


def dscribe_features(atoms: Atoms, fs: FeatureSet) -> np.ndarray:
    """DScribe ACSF mapped onto our (N, F_max) layout."""
    fns = {f for v in fs.per_element.values() for f in v}
    assert {f.rc for f in fns} == {fs.cutoff_radius} and fs.cutoff == "cosine"
    assert all(f.rs == 0 for f in fns if f.is_angular)
    g2 = sorted({(f.eta, f.rs) for f in fns if f.type == "radial"})
    g4 = sorted({(f.eta, f.zeta, f.lam) for f in fns if f.type == "angular_narrow"})
    g5 = sorted({(f.eta, f.zeta, f.lam) for f in fns if f.type == "angular_wide"})
    acsf = ACSF(species=fs.elements, r_cut=fs.cutoff_radius, g2_params=[list(p) for p in g2] or None,
                g4_params=[list(p) for p in g4] or None, g5_params=[list(p) for p in g5] or None,
                periodic=bool(atoms.pbc.any()))
    wrapped = atoms.copy()
    wrapped.wrap()   # DScribe does not wrap: atoms outside the cell silently lose neighbours
    raw = acsf.create(wrapped)
    f_max = max(len(v) for v in fs.per_element.values())
    out = np.zeros((len(atoms), f_max))
    symbols = atoms.get_chemical_symbols()
    for e in fs.elements:
        rows = [i for i, s in enumerate(symbols) if s == e]
        cols = dscribe_columns(fs, e, g2, g4, g5)
        out[np.ix_(rows, range(len(cols)))] = raw[np.ix_(rows, cols)]
    return out


def test_dscribe_pair_block_order_by_probing():
    """Probe DScribe with a 3-atom molecule whose centre sees exactly one species pair: the
    non-zero angular block sits where :func:`dscribe_pair_block` says (Z order Al < Ni < Cu)."""
    acsf = ACSF(species=["Cu", "Al", "Ni"], r_cut=5.0, g2_params=[[0.1, 0.0]], g4_params=[[0.1, 1, 1]],
                g5_params=[[0.1, 1, 1]], periodic=False)
    species = ["Al", "Ni", "Cu"]                                   # sorted by Z: 13, 28, 29
    n_radial = len(species) * 2                                    # [G1, G2] per species
    found = {}
    for a, b in itertools.combinations_with_replacement(species, 2):
        mol = Atoms(["Al", a, b], positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.6, 0.3]])
        nz = np.nonzero(acsf.create(mol, centers=[0])[0])[0]
        ang = sorted({int(c - n_radial) // 2 for c in nz if c >= n_radial})
        assert len(ang) == 1
        found[(a, b)] = ang[0]
        assert ang[0] == dscribe_pair_block(species.index(a), species.index(b))
        # radial blocks: [G1, G2] of each neighbour species, in Z order
        rad = sorted({int(c) // 2 for c in nz if c < n_radial})
        assert rad == sorted({species.index(a), species.index(b)})
    # the documented order would be the combinations order: it is not
    assert [found[p] for p in itertools.combinations_with_replacement(species, 2)] == [0, 1, 3, 2, 4, 5]


DS_CASES = {
    "Al-cubic": lambda: liquid_like(["Al"] * 32, AL_LIQUID, seed=1),
    "Al-triclinic-small": lambda: liquid_like(["Al"] * 5, AL_LIQUID, seed=2, cell_shape=TRICLINIC),
    "Al-fcc-primitive": lambda: bulk("Al", "fcc", a=4.05),       # one atom, ~140 images within r_c
    "AlNi-cubic": lambda: alloy(["Al", "Ni"], 24, seed=3),
    "AlNi-triclinic-small": lambda: alloy(["Ni", "Al", "Al"], 6, seed=4, cell_shape=TRICLINIC),
    "AlCuNi-cubic": lambda: alloy(["Al", "Cu", "Ni", "Al"], 30, seed=5),
    "AlCuNi-triclinic-small": lambda: alloy(["Cu", "Ni", "Al"], 7, seed=6, cell_shape=TRICLINIC),
}


@pytest.mark.parametrize("case", list(DS_CASES))
def test_agrees_with_dscribe(case):
    atoms = DS_CASES[case]()
    elements = sorted(set(atoms.get_chemical_symbols()))
    if case.startswith("AlCuNi"):
        elements = ["Ni", "Al", "Cu"]     # our order is free: not Z-sorted, not alphabetical
    fs = FeatureSet.from_generic(generic_functions(), elements, cutoff="cosine")
    theirs = dscribe_features(atoms, fs)
    ours = features(scramble_images(atoms), fs)      # unwrapped input for us, wrapped for DScribe
    assert np.abs(theirs).max() > 0
    assert_rel_close(ours, theirs, 1e-10, case)


def test_dscribe_g1_is_our_eta0_radial():
    atoms = alloy(["Al", "Ni"], 10, seed=9)
    fs = FeatureSet.from_generic(generic_functions(types=()), ["Al", "Ni"], cutoff="cosine")
    acsf = ACSF(species=["Al", "Ni"], r_cut=RC_DS, periodic=True)
    g1 = acsf.create(atoms)                              # G1 per neighbour species: Σ f_c
    ours = features(atoms, fs)
    cols = [k for k, f in enumerate(fs.per_element["Al"]) if f.eta == 0.0]
    assert_rel_close(ours[:, cols], g1, 1e-12, "G1")


# ============================================================================ loop reference
RC_REF = 5.0


def loop_functions(rc=RC_REF):
    """What DScribe lacks: shifted angular terms (narrow and wide), non-integer ζ, shifted radial."""
    return [
        SymmetryFunction("radial", eta=0.3, rs=0.0, rc=rc),
        SymmetryFunction("radial", eta=1.7, rs=2.6, rc=rc),
        SymmetryFunction("radial", eta=4.0, rs=4.1, rc=rc),
        SymmetryFunction("angular_narrow", eta=0.01, zeta=1.0, lam=-1.0, rc=rc),
        SymmetryFunction("angular_narrow", eta=0.2, zeta=2.0, lam=1.0, rs=2.8, rc=rc),
        SymmetryFunction("angular_narrow", eta=0.5, zeta=3.7, lam=-1.0, rs=4.0, rc=rc),
        SymmetryFunction("angular_narrow", eta=0.05, zeta=1.5, lam=1.0, rc=rc),
        SymmetryFunction("angular_wide", eta=0.01, zeta=4.0, lam=1.0, rc=rc),
        SymmetryFunction("angular_wide", eta=0.3, zeta=1.0, lam=-1.0, rs=2.9, rc=rc),
        SymmetryFunction("angular_wide", eta=0.8, zeta=2.5, lam=1.0, rs=3.6, rc=rc),
        SymmetryFunction("angular_wide", eta=0.02, zeta=16.0, lam=-1.0, rs=1.0, rc=rc),
    ]


LOOP_CASES = {
    "Al-poly": (lambda: liquid_like(["Al"] * 4, AL_LIQUID, seed=11), "polynomial"),
    "Al-cos-triclinic": (lambda: liquid_like(["Al"] * 4, AL_LIQUID, seed=12, cell_shape=TRICLINIC), "cosine"),
    "Al-poly-one-atom": (lambda: bulk("Al", "fcc", a=4.05), "polynomial"),   # collinear own images
    "AlNi-poly": (lambda: alloy(["Al", "Ni"], 4, seed=13), "polynomial"),
    "AlCuNi-poly-triclinic": (lambda: alloy(["Al", "Cu", "Ni"], 5, seed=14, cell_shape=TRICLINIC), "polynomial"),
}


@pytest.mark.parametrize("case", list(LOOP_CASES))
def test_agrees_with_loop_reference(case):
    make, cutoff = LOOP_CASES[case]
    atoms = make()
    elements = sorted(set(atoms.get_chemical_symbols()))
    fs = FeatureSet.from_generic(loop_functions(), elements, cutoff=cutoff)
    ref = reference_features(atoms, fs)
    assert np.all(np.abs(ref).max(0) > 0) or len(elements) > 1
    assert_rel_close(features(scramble_images(atoms), fs), ref, 1e-12, case)


@pytest.mark.parametrize("second_angular", ["angular_wide", "angular_narrow"])
def test_mixed_cutoff_radii_against_loop_reference(second_angular):
    """Functions with different r_c in one set (the neighbour search uses the largest);
    with only narrow angular functions, pairs are pruned at the largest angular r_c."""
    fns = [SymmetryFunction("radial", eta=0.5, rs=1.5, rc=3.5), SymmetryFunction("radial", eta=0.1, rc=6.0),
           SymmetryFunction("angular_narrow", eta=0.05, zeta=2.0, lam=-1.0, rc=3.9),
           SymmetryFunction(second_angular, eta=0.05, zeta=2.0, lam=-1.0, rc=5.2, rs=1.0)]
    atoms = alloy(["Al", "Ni"], 4, seed=15)
    fs = FeatureSet.from_generic(fns, ["Al", "Ni"], cutoff="polynomial")
    assert_rel_close(features(atoms, fs), reference_features(atoms, fs), 1e-12, "mixed rc")


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_chunk_size_does_not_change_results(chunk_size):
    atoms = alloy(["Al", "Ni"], 12, seed=16)
    fs = FeatureSet.from_generic(loop_functions(), ["Al", "Ni"], cutoff="polynomial")
    G, _ = AtomsDescriptor(fs, chunk_size=chunk_size).features(atoms)
    assert_rel_close(G.numpy(), features(atoms, fs), 1e-13, f"chunk {chunk_size}")


def test_cutoff_functions():
    r = torch.linspace(0.0, 7.0, 141, dtype=torch.float64)
    rc = torch.tensor(5.0, dtype=torch.float64)
    for kind in ("cosine", "polynomial"):
        ours = cutoff_fn(r, rc, kind).numpy()
        ref = np.array([ref_cutoff(float(x), 5.0, kind) for x in r])
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-15)
    # polynomial: f(0)=1, f(rc)=0, f'(rc)=f''(rc)=0 (n2p2 type 6)
    x = torch.tensor([4.999999], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(cutoff_fn(x, rc, "polynomial").sum(), x)
    assert abs(float(g)) < 1e-9


# ============================================================================ presets
PRESET_SYSTEMS = {
    "al-thesis": ("Al", AL_LIQUID, 2.2),
    "lj-thesis": ("Ar", 0.9, 0.85),                   # reduced units: ρσ³ = 0.9
    "b-thesis": ("B", 2.34 / 10.81 * 6.02214076e23 / 1e24, 1.5),
}


def test_preset_names():
    assert {"al-thesis", "lj-thesis", "b-thesis"} <= set(preset_names())
    fs = load_featureset("b-thesis", ["B"])
    assert fs.n_features("B") == 60
    assert sum(f.is_angular and f.rs == 4.85 for f in fs.per_element["B"]) == 12
    assert load_featureset("al-thesis", ["Al"]).n_features("Al") == 22
    assert load_featureset("lj-thesis", ["Ar"]).n_features("Ar") == 22


@pytest.mark.parametrize("preset", list(PRESET_SYSTEMS))
def test_preset_finite_on_liquid(preset):
    symbol, density, dmin = PRESET_SYSTEMS[preset]
    fs = load_featureset(preset, [symbol])
    atoms = liquid_like([symbol] * 64, density, seed=21, dmin=dmin)
    G = features(atoms, fs)
    assert G.shape == (64, fs.n_features(symbol))
    assert np.all(np.isfinite(G))
    assert np.all(G >= 0)                              # every term is a product of non-negative factors
    assert np.all(G.max(0) > 0)                        # every function sees something in a liquid


@pytest.mark.parametrize("preset", list(PRESET_SYSTEMS))
def test_preset_agrees_with_loop_reference(preset):
    symbol, density, dmin = PRESET_SYSTEMS[preset]
    fs = load_featureset(preset, [symbol])
    atoms = liquid_like([symbol] * (2 if preset == "b-thesis" else 3), density, seed=22, dmin=dmin,
                        cell_shape=TRICLINIC)
    assert_rel_close(features(atoms, fs), reference_features(atoms, fs), 1e-12, preset)


# ============================================================================ forces and stress
def energy_model(G: torch.Tensor, species: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """A simple nonlinear energy: Σ_i tanh(G_i · w_{element(i)})."""
    return torch.tanh((G * W[species]).sum(1)).sum()


def weights_for(fs: FeatureSet, atoms: Atoms, seed=0) -> torch.Tensor:
    """Random weights scaled so that G·w is of order one (tanh in its nonlinear range)."""
    G, species = AtomsDescriptor(fs).features(atoms)
    scale = G.abs().max(0).values.clamp(min=1e-12)
    rng = np.random.default_rng(seed)
    W = torch.tensor(rng.normal(size=(len(fs.elements), G.shape[1])), dtype=torch.float64)
    return W / scale / G.shape[1] ** 0.5 * 2.0


def energy_of(atoms: Atoms, fs: FeatureSet, W) -> float:
    G, species = AtomsDescriptor(fs).features(atoms)
    return float(energy_model(G, species, W))


FORCE_CASES = {
    "Al-thesis": (lambda: liquid_like(["Al"] * 8, AL_LIQUID, seed=31, cell_shape=TRICLINIC),
                  lambda: load_featureset("al-thesis", ["Al"])),
    "AlNi-loop-set": (lambda: alloy(["Al", "Ni"], 6, seed=32),
                      lambda: FeatureSet.from_generic(loop_functions(), ["Al", "Ni"], cutoff="polynomial")),
    "AlCuNi-cosine": (lambda: alloy(["Al", "Cu", "Ni"], 6, seed=33, cell_shape=TRICLINIC),
                      lambda: FeatureSet.from_generic(generic_functions(), ["Al", "Cu", "Ni"], cutoff="cosine")),
}


@pytest.mark.parametrize("case", list(FORCE_CASES))
def test_forces_and_stress_match_finite_differences(case):
    make, make_fs = FORCE_CASES[case]
    atoms, fs = make(), make_fs()
    W = weights_for(fs, atoms)
    desc = AtomsDescriptor(fs)
    G, species, pos, strain = desc.with_gradients(atoms)
    E = energy_model(G, species, W)
    assert abs(float(E.detach()) - energy_of(atoms, fs, W)) < 1e-12
    forces, stress = forces_and_stress(E, pos, strain, atoms.get_volume())
    forces, stress = forces.numpy(), stress.numpy()
    assert np.abs(forces).max() > 1e-3                 # a non-trivial test
    h = 1e-5   # central differences: error ∝ h² (ζ = 64 terms make third derivatives large)
    fd = np.zeros_like(forces)
    for a in range(len(atoms)):
        for x in range(3):
            e = []
            for sgn in (1, -1):
                moved = atoms.copy()
                moved.positions[a, x] += sgn * h
                e.append(energy_of(moved, fs, W))
            fd[a, x] = -(e[0] - e[1]) / (2 * h)
    np.testing.assert_allclose(forces, fd, rtol=0, atol=1e-7 * np.abs(forces).max())
    assert np.abs(forces.sum(0)).max() < 1e-10 * np.abs(forces).max()   # no net force
    fd_s = fd_stress(lambda a_: energy_of(a_, fs, W), atoms, h)
    np.testing.assert_allclose(stress, fd_s, rtol=0, atol=1e-7 * np.abs(stress).max())
    np.testing.assert_allclose(stress, stress.T, rtol=0, atol=1e-10 * np.abs(stress).max())


def test_float32_agrees_with_float64():
    for atoms, fs in [
        (liquid_like(["Al"] * 64, AL_LIQUID, seed=41), load_featureset("al-thesis", ["Al"])),
        (alloy(["Al", "Ni", "Cu"], 30, seed=42, cell_shape=TRICLINIC),
         FeatureSet.from_generic(loop_functions(), ["Al", "Ni", "Cu"], cutoff="polynomial")),
    ]:
        G64 = features(atoms, fs)
        G32, _ = AtomsDescriptor(fs, dtype=torch.float32).features(atoms)
        assert G32.dtype == torch.float32
        # float32 positions alone move distances by ~1e-6 Å; steep terms (η = 0.5, r_s = 4,
        # three distances in the exponent) turn that into ~1e-5 relative: allow 3e-5
        assert_rel_close(G32.double().numpy(), G64, 3e-5, "float32")


def test_float32_forces_agree_with_float64():
    atoms, fs = liquid_like(["Al"] * 16, AL_LIQUID, seed=43), load_featureset("al-thesis", ["Al"])
    W = weights_for(fs, atoms)
    out = {}
    for dtype in (torch.float64, torch.float32):
        G, species, pos, strain = AtomsDescriptor(fs, dtype=dtype).with_gradients(atoms)
        E = energy_model(G, species, W.to(dtype))
        out[dtype] = [t.double().numpy() for t in forces_and_stress(E, pos, strain, atoms.get_volume())]
    for a, b in zip(out[torch.float32], out[torch.float64]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * np.abs(b).max())


# ============================================================================ invariances
def inv_system():
    atoms = alloy(["Al", "Cu", "Ni", "Al"], 12, seed=51, cell_shape=TRICLINIC)
    fs = FeatureSet.from_generic(loop_functions(), ["Al", "Cu", "Ni"], cutoff="polynomial")
    return atoms, fs


def random_rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_rotation_invariance():
    atoms, fs = inv_system()
    G = features(atoms, fs)
    for seed in range(3):
        R = random_rotation(seed)
        rot = atoms.copy()
        rot.set_cell(atoms.cell.array @ R.T, scale_atoms=False)
        rot.positions = atoms.positions @ R.T
        assert_rel_close(features(rot, fs), G, 1e-12, "rotation")
    mirror = atoms.copy()                               # and a reflection
    mirror.set_cell(atoms.cell.array * [1, 1, -1])
    mirror.positions = atoms.positions * [1, 1, -1]
    assert_rel_close(features(mirror, fs), G, 1e-12, "reflection")


def test_translation_invariance():
    atoms, fs = inv_system()
    G = features(atoms, fs)
    for t in ([0.3, -1.7, 2.9], [123.4, -55.5, 0.01]):
        moved = atoms.copy()
        moved.positions += t
        assert_rel_close(features(moved, fs), G, 1e-11, "translation")


def test_permutation_of_atoms():
    atoms, fs = inv_system()
    G = features(atoms, fs)
    perm = np.random.default_rng(3).permutation(len(atoms))
    assert_rel_close(features(atoms[perm], fs), G[perm], 1e-12, "permutation")
    # swapping the positions of two like atoms swaps their feature rows, nothing else
    symbols = atoms.get_chemical_symbols()
    a, b = [i for i, s in enumerate(symbols) if s == "Al"][:2]
    swapped = atoms.copy()
    swapped.positions[[a, b]] = atoms.positions[[b, a]]
    expected = G.copy()
    expected[[a, b]] = G[[b, a]]
    assert_rel_close(features(swapped, fs), expected, 1e-12, "swap")


def test_choice_of_periodic_image():
    atoms, fs = inv_system()
    G = features(atoms, fs)
    for seed in (1, 2):
        assert_rel_close(features(scramble_images(atoms, seed), fs), G, 1e-11, "images")
    wrapped = scramble_images(atoms, 5)
    wrapped.wrap()
    assert_rel_close(features(wrapped, fs), G, 1e-11, "wrapped")


@pytest.mark.parametrize("rep", [(2, 1, 1), (1, 2, 3)])
def test_supercell_consistency(rep):
    atoms, fs = inv_system()
    G = features(atoms, fs)
    sup = atoms * rep
    Gs = features(sup, fs)
    n_copies = int(np.prod(rep))
    assert_rel_close(Gs, np.tile(G, (n_copies, 1)), 1e-11, f"supercell {rep}")


# ============================================================================ ghost-atom pair list
def ghost_pair_list(atoms: Atoms, r_list: float):
    """A LAMMPS-like view: local atoms 0..N−1, then ghost atoms (periodic images within
    ``r_list`` of a local atom, as explicit copies), and a full pair list up to ``r_list``
    (cutoff + skin: pairs beyond the cutoff included) built by brute force in numpy."""
    n = len(atoms)
    cell = atoms.cell.array
    heights = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
    reach = [int(np.ceil(r_list / h)) + 1 for h in heights]
    shifts = [s for s in itertools.product(*(range(-k, k + 1) for k in reach)) if any(s)]
    x_loc = atoms.positions
    ghosts_x, ghosts_owner, ghosts_shift = [], [], []
    for s in shifts:
        img = x_loc + np.asarray(s) @ cell
        d = np.linalg.norm(img[:, None, :] - x_loc[None, :, :], axis=-1).min(1)
        for a in np.nonzero(d < r_list)[0]:
            ghosts_x.append(img[a])
            ghosts_owner.append(a)
            ghosts_shift.append(s)
    x_all = np.vstack([x_loc, np.array(ghosts_x).reshape(-1, 3)])
    owner = np.concatenate([np.arange(n), np.array(ghosts_owner, dtype=int)])
    d = np.linalg.norm(x_all[None, :n, :] - x_all[:, None, :], axis=-1)   # (all, local)
    nb, ce = np.nonzero((d < r_list) & (d > 0))
    return x_all, owner, ce, nb


@pytest.mark.parametrize("skin", [0.0, 1.0])
def test_forward_with_ghost_atoms_equals_periodic(skin):
    atoms = alloy(["Al", "Ni"], 5, seed=61, cell_shape=TRICLINIC)
    fs = FeatureSet.from_generic(loop_functions(), ["Al", "Ni"], cutoff="polynomial")
    desc = AtomsDescriptor(fs)
    W = weights_for(fs, atoms)
    # periodic reference: features and forces
    G, species, pos, strain = desc.with_gradients(atoms)
    E = energy_model(G, species, W)
    f_ref = forces_and_stress(E, pos, strain, atoms.get_volume())[0].numpy()

    x_all, owner, ce, nb = ghost_pair_list(atoms, fs.cutoff_radius + skin)
    n = len(atoms)
    assert len(x_all) > 5 * n and nb.max() >= n
    perm = np.random.default_rng(0).permutation(len(ce))        # pair order is arbitrary
    ce, nb = torch.tensor(ce[perm]), torch.tensor(nb[perm])
    species_all = species[torch.tensor(owner)]
    x = torch.tensor(x_all, requires_grad=True)
    rij = x[nb] - x[ce]
    G_ghost = desc.sf(species_all, ce, nb, rij, n)
    assert_rel_close(G_ghost.detach().numpy(), G.detach().numpy(), 1e-12, "ghosts")
    # forces on ghosts, reverse-communicated to their owners, give the periodic forces
    (g,) = torch.autograd.grad(energy_model(G_ghost, species_all[:n], W), x)
    f = np.zeros((n, 3))
    np.add.at(f, owner, -g.numpy())
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-12 * np.abs(f_ref).max())


def test_forward_without_pairs_and_isolated_atoms():
    fs = FeatureSet.from_generic(loop_functions(), ["Al", "Ni"], cutoff="polynomial")
    sf = SymmetryFunctions(fs)
    species = torch.tensor([0, 1, 0])
    empty = torch.zeros(0, dtype=torch.long)
    G = sf(species, empty, empty, torch.zeros(0, 3, dtype=torch.float64), 3)
    assert G.shape == (3, fs.n_features("Al")) and not G.any()
    # an atom with no neighbours inside a populated frame gets zeros
    atoms = Atoms(["Al", "Ni", "Al"], positions=[[0, 0, 0], [2.5, 0, 0], [20, 20, 20]], cell=[40] * 3, pbc=False)
    Gf = features(atoms, fs)
    assert not Gf[2].any() and Gf[0].any()
    G1, _ = AtomsDescriptor(fs, chunk_size=1).features(atoms)     # a chunk without any pair
    assert np.array_equal(G1.numpy(), Gf)
    assert_rel_close(Gf, reference_features(atoms, fs), 1e-12, "cluster")


# ============================================================================ bad input
def test_unknown_element_in_frame_is_a_clear_error():
    fs = FeatureSet.from_generic(loop_functions(), ["Al", "Ni"])
    atoms = alloy(["Al", "Cu"], 4, seed=71)
    with pytest.raises(FrameError, match="Cu"):
        AtomsDescriptor(fs).features(atoms, source="data.extxyz", frame=3)


def test_featureset_naming_missing_element_is_a_clear_error():
    f = SymmetryFunction("radial", eta=0.1, rc=5.0, neighbors=("Cu",))
    with pytest.raises(ConfigError, match="Cu"):
        FeatureSet({"Al": [f]})
    with pytest.raises(ConfigError, match="differ"):
        load_featureset({"per_element": {"Al": [{"type": "radial", "eta": 0.1, "rc": 5.0, "neighbors": ["Al"]}]}},
                        elements=["Al", "Ni"])


def test_neighbor_pairs_without_images_rejects_small_cell():
    atoms = liquid_like(["Al"] * 4, AL_LIQUID, seed=72)
    pos, cell = torch.tensor(atoms.positions), torch.tensor(atoms.cell.array)
    with pytest.raises(ValueError, match="along a"):
        neighbor_pairs(pos, cell, atoms.pbc, 6.8, allow_images=False)
