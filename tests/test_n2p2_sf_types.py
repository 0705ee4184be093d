"""Every n2p2 cutoff type (0–8, with the inner cutoff α r_c) and the symmetry-function types 12,
13 and 20–25 (GitHub issue 18, item 1).

An independent evaluation written here from the formulas (plain Python loops over atoms,
neighbours and neighbour pairs; periodic images from ASE's neighbour list) is the reference for
the torch module and the compiled kernel (values to 1e-12 relative); the kernel's derivatives
are checked against torch autograd and its forces against finite differences. n2p2 lines go
through a feature set and back unchanged; a hand-written n2p2 potential with the new cutoffs and
types imports with :func:`model_from_n2p2`, whose energies equal the reference features fed to
the reader's own n2p2 evaluation and whose forces equal finite differences of that.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list

from meltpot.descriptors.featureset import N2P2_CUTOFF, FeatureSet, SymmetryFunction
from meltpot.descriptors.kernel import KernelSymmetryFunctions, available
from meltpot.descriptors.symmetry import SymmetryFunctions
from meltpot.errors import ConfigError
from meltpot.export.n2p2 import (N2p2FormatError, _weights_text, featureset_from_n2p2, n2p2_atomic_energies,
                                 n2p2_symfunction_lines, read_n2p2)
from meltpot.export.n2p2_import import model_from_n2p2
from meltpot.model.calculator import MeltpotCalculator
from test_kernel import alloy_atoms, kernel_and_fd_forces, pair_list, reference

S = SymmetryFunction
Z = {"Al": 13, "Ni": 28}
needs_kernel = pytest.mark.skipif(not available(), reason="the symmetry-function kernel does not build here")


# ============================================================================ independent reference
def core(x: float, code: str) -> float:
    """n2p2's core function of subtype ``code`` (p1 … p4, e; a trailing ``a``: asymmetric)."""
    if code.endswith("a"):
        x = (2.0 - x) * x
        code = code[:-1]
    if code == "p1":
        return 2 * x ** 3 - 3 * x ** 2 + 1
    if code == "p2":
        return -6 * x ** 5 + 15 * x ** 4 - 10 * x ** 3 + 1
    if code == "p3":
        return 20 * x ** 7 - 70 * x ** 6 + 84 * x ** 5 - 35 * x ** 4 + 1
    if code == "p4":
        return -70 * x ** 9 + 315 * x ** 8 - 540 * x ** 7 + 420 * x ** 6 - 126 * x ** 5 + 1
    assert code == "e"
    return math.exp(1.0 - 1.0 / (1.0 - x * x))


def fc(r: float, rc: float, kind: str, alpha: float) -> float:
    """n2p2's cutoff function (CutoffFunction.h) with inner cutoff α r_c."""
    if r >= rc:
        return 0.0
    if kind == "hard":
        return 1.0
    if kind in ("tanhu", "tanh"):
        t = math.tanh(1.0 - r / rc) ** 3
        return t / math.tanh(1.0) ** 3 if kind == "tanh" else t
    rci = alpha * rc
    if r < rci:
        return 1.0
    x = (r - rci) / (rc - rci)
    if kind == "cosine":
        return 0.5 * (math.cos(math.pi * x) + 1.0)
    return core(x, {"exp": "e", "poly1": "p1", "polynomial": "p2", "poly3": "p3", "poly4": "p4"}[kind])


def compact(a: float, left: float, right: float, code: str) -> float:
    """c(|a − centre| / half width) inside (left, right), 0 outside."""
    if not left < a < right:
        return 0.0
    x = abs(a - (left + right) / 2) / ((right - left) / 2)
    return core(x, code) if x < 1 else 0.0


def one_function(f: SymmetryFunction, symbols, nbs, kind: str, alpha: float) -> float:
    """G of one function for one atom; ``nbs``: [(element, vector r_ij)]."""
    total = 0.0
    if not f.is_angular:
        for el, v in nbs:
            r = float(np.linalg.norm(v))
            if f.is_weighted:
                w = Z[el]
            else:
                w = 1.0 if el == f.neighbors[0] else 0.0
            if f.is_compact:
                total += w * compact(r, f.rl, f.rc, f.subtype)
            else:
                total += w * math.exp(-f.eta * (r - f.rs) ** 2) * fc(r, f.rc, kind, alpha)
        return total
    for a in range(len(nbs)):
        for b in range(a + 1, len(nbs)):
            (ea, va), (eb, vb) = nbs[a], nbs[b]
            if f.is_weighted:
                w = Z[ea] * Z[eb]
            else:
                w = 1.0 if sorted((ea, eb)) == sorted(f.neighbors) else 0.0
            if w == 0.0:
                continue
            rij, rik, rjk = (float(np.linalg.norm(x)) for x in (va, vb, vb - va))
            cos = float(va @ vb) / (rij * rik)
            narrow = f.is_narrow
            if f.is_compact:
                if not -1.0 < cos < 1.0:
                    continue
                theta = math.degrees(math.acos(cos))
                ang = compact(theta, f.angle_left, f.angle_right, f.subtype.rstrip("a"))   # never asymmetric
                rad = compact(rij, f.rl, f.rc, f.subtype) * compact(rik, f.rl, f.rc, f.subtype)
                if narrow:
                    rad *= compact(rjk, f.rl, f.rc, f.subtype)
            else:
                ang = 2.0 ** (1 - f.zeta) * max(0.0, 1.0 + f.lam * cos) ** f.zeta
                d2 = (rij - f.rs) ** 2 + (rik - f.rs) ** 2
                rad = fc(rij, f.rc, kind, alpha) * fc(rik, f.rc, kind, alpha)
                if narrow:
                    d2 += (rjk - f.rs) ** 2
                    rad *= fc(rjk, f.rc, kind, alpha)
                rad *= math.exp(-f.eta * d2)
            total += w * ang * rad
    return total


def reference_features(atoms: Atoms, fs: FeatureSet) -> np.ndarray:
    """(n_atoms, F_max) in the feature set's order per element (zeros after), by loops."""
    symbols = atoms.get_chemical_symbols()
    i_list, j_list, d_list = neighbor_list("ijD", atoms, fs.cutoff_radius, self_interaction=False)
    f_max = max(len(v) for v in fs.per_element.values())
    out = np.zeros((len(atoms), f_max))
    for i in range(len(atoms)):
        nbs = [(symbols[j], np.asarray(d, float)) for ii, j, d in zip(i_list, j_list, d_list) if ii == i]
        for c, f in enumerate(fs.per_element[symbols[i]]):
            out[i, c] = one_function(f, symbols, nbs, fs.cutoff, fs.cutoff_alpha)
    return out


# ============================================================================ structures and sets
def cluster(n: int = 11, seed: int = 5) -> Atoms:
    """A non-periodic Al–Ni cluster with distances ≥ 2.1 Å."""
    rng = np.random.default_rng(seed)
    pos = np.zeros((0, 3))
    while len(pos) < n:
        trial = rng.uniform(-3.2, 3.2, 3)
        if len(pos) == 0 or np.min(np.linalg.norm(pos - trial, axis=1)) >= 2.1:
            pos = np.vstack([pos, trial])
    return Atoms(["Al", "Ni"] * (n // 2) + ["Al"] * (n % 2), positions=pos, pbc=False)


STRUCTURES = {"periodic": lambda: alloy_atoms(n=16, seed=7), "cluster": cluster}


def classic_and_weighted(cutoff: str, alpha: float) -> FeatureSet:
    """Types 2, 3, 9 (rs > 0 too), 12, 13 with two cutoff radii: every use of f_c."""
    fns = [S("radial", eta=0.4, rc=4.6), S("radial", eta=1.1, rs=2.6, rc=4.2),
           S("angular_narrow", eta=0.02, zeta=2, lam=-1, rc=4.6),
           S("angular_narrow", eta=0.05, rs=0.9, zeta=1, lam=1, rc=4.2),
           S("angular_wide", eta=0.03, zeta=4, lam=1, rc=4.6),
           S("weighted_radial", eta=0.6, rs=2.4, rc=4.4), S("weighted_radial", eta=0.1, rc=4.6),
           S("weighted_angular", eta=0.04, rs=0.5, zeta=2, lam=-1, rc=4.4),
           S("weighted_angular", eta=0.01, zeta=1, lam=1, rc=4.6)]
    return FeatureSet.from_generic(fns, ["Al", "Ni"], cutoff=cutoff, cutoff_alpha=alpha, name=f"{cutoff}-{alpha}")


def compact_set(sub: str, cutoff: str = "poly3", alpha: float = 0.25) -> FeatureSet:
    """Types 20–25 with subtype ``sub``: r_l > 0 and r_l = −r_c (centred at 0), angle windows inside
    [0°, 180°] and centred on 0° or 180°."""
    fns = [S("compact_radial", eta=0, rl=1.8, rc=4.6, subtype=sub), S("compact_radial", eta=0, rl=-4.2, rc=4.2,
                                                                   subtype=sub),
           S("compact_angular_narrow", eta=0, rl=-4.6, rc=4.6, angle_left=40, angle_right=140, subtype=sub),
           S("compact_angular_wide", eta=0, rl=1.5, rc=4.4, angle_left=90, angle_right=270, subtype=sub),
           S("weighted_compact_radial", eta=0, rl=2.0, rc=4.5, subtype=sub),
           S("weighted_compact_angular_narrow", eta=0, rl=-4.5, rc=4.5, angle_left=-70, angle_right=70, subtype=sub),
           S("weighted_compact_angular_wide", eta=0, rl=1.9, rc=4.6, angle_left=20, angle_right=110, subtype=sub),
           S("radial", eta=0.4, rc=4.6)]
    return FeatureSet.from_generic(fns, ["Al", "Ni"], cutoff=cutoff, cutoff_alpha=alpha, name=f"compact-{sub}")


def compare(atoms: Atoms, fs: FeatureSet):
    """Largest relative deviation of torch (scripted) and kernel G from the reference, and of the
    kernel's dG from autograd of the torch module (each relative to the array's largest)."""
    ref = reference_features(atoms, fs)
    assert np.abs(ref).max() > 0.1 and np.count_nonzero(ref) > ref.size // 2
    species, i, j, rij = pair_list(atoms, fs)
    G_torch = torch.jit.script(SymmetryFunctions(fs))(species, i, j, rij, len(atoms)).numpy()
    G_ad, dG_ad = reference(fs, species, i, j, rij, len(atoms))
    G_k, dG_k = KernelSymmetryFunctions(fs).compute(species, i, j, rij, len(atoms))
    scale = np.abs(ref).max()
    return (np.abs(G_torch - ref).max() / scale, np.abs(G_k.numpy() - ref).max() / scale,
            float((dG_k - dG_ad).abs().max() / dG_ad.abs().max()))


# ============================================================================ values and derivatives
@needs_kernel
@pytest.mark.parametrize("structure", list(STRUCTURES))
@pytest.mark.parametrize("alpha", [0.0, 0.35])
@pytest.mark.parametrize("cutoff", list(N2P2_CUTOFF))
def test_cutoff_types_torch_and_kernel_equal_the_reference(cutoff, alpha, structure):
    """Types 2, 3, 9, 12, 13 under every cutoff type and α: torch and kernel values to 1e-12 of
    the reference, kernel derivatives to 1e-10 of autograd."""
    atoms = STRUCTURES[structure]()
    d_torch, d_kernel, d_deriv = compare(atoms, classic_and_weighted(cutoff, alpha))
    assert d_torch < 1e-12 and d_kernel < 1e-12 and d_deriv < 1e-10, (d_torch, d_kernel, d_deriv)


@needs_kernel
@pytest.mark.parametrize("structure", list(STRUCTURES))
@pytest.mark.parametrize("sub", ["p1", "p2", "p3", "p4", "p2a", "p4a", "e"])
def test_compact_types_torch_and_kernel_equal_the_reference(sub, structure):
    atoms = STRUCTURES[structure]()
    d_torch, d_kernel, d_deriv = compare(atoms, compact_set(sub))
    assert d_torch < 1e-12 and d_kernel < 1e-12 and d_deriv < 1e-10, (d_torch, d_kernel, d_deriv)


@needs_kernel
@pytest.mark.parametrize("fs", [classic_and_weighted("exp", 0.3), classic_and_weighted("tanh", 0.0),
                                compact_set("p3a"), compact_set("e", cutoff="poly1", alpha=0.1)],
                         ids=["exp", "tanh", "compact-p3a", "compact-e"])
def test_kernel_forces_equal_finite_differences(fs):
    """E = Σ_i w[e_i]·G_i from the kernel: forces from dG against central differences (h = 1e-5 Å)."""
    forces, fd = kernel_and_fd_forces(fs, cluster(9, seed=2))
    assert np.abs(fd).max() > 1e-2
    assert np.abs(forces - fd).max() < 1e-7 * np.abs(fd).max()


def test_alpha_zero_sets_keep_their_yaml_and_hash():
    """cutoff_alpha 0 is not written: sets of the old cutoffs keep their content hash."""
    fs = classic_and_weighted("polynomial", 0.0)
    assert "cutoff_alpha" not in fs.to_dict()
    with_alpha = classic_and_weighted("polynomial", 0.2)
    assert with_alpha.to_dict()["cutoff_alpha"] == 0.2 and with_alpha.content_hash() != fs.content_hash()
    back = FeatureSet.from_dict(with_alpha.to_dict())
    assert back.cutoff_alpha == 0.2 and back.content_hash() == with_alpha.content_hash()
    c = compact_set("p2a")
    assert FeatureSet.from_dict(c.to_dict()).content_hash() == c.content_hash()
    with pytest.raises(ConfigError, match="cutoff_alpha must lie in"):
        classic_and_weighted("cosine", 1.0)
    with pytest.raises(ConfigError, match="subtype 'p5'"):
        S("compact_radial", eta=0, rl=1.0, rc=4.0, subtype="p5")
    with pytest.raises(ConfigError, match="weights all neighbours"):
        S("weighted_radial", eta=0.1, rc=4.0, neighbors=("Al",))
    with pytest.raises(ConfigError, match="leave"):
        S("compact_angular_wide", eta=0, rl=0, rc=4.0, angle_left=100, angle_right=200, subtype="p2",
          neighbors=("Al", "Al"))


# ============================================================================ n2p2 lines
LINES = """\
cutoff_type 4 0.25
symfunction_short Al 2 Ni 0.5 0.0 4.6
symfunction_short Al 3 Al Ni 0.02 -1.0 2.0 4.6 0.0
symfunction_short Al 12 0.1 0.0 4.4
symfunction_short Al 12 0.6 2.4 4.4
symfunction_short Al 13 0.04 0.5 -1.0 2.0 4.4
symfunction_short Al 13 0.04 0.5 1.0 2.0 4.4
symfunction_short Al 20 Al 1.8 4.6 p2
symfunction_short Al 20 Ni -4.2 4.2 p2
symfunction_short Al 20 Al 1.8 4.6 p3a
symfunction_short Al 21 Al Ni -4.6 4.6 40.0 140.0 e
symfunction_short Al 22 Al Al 1.5 4.4 90.0 270.0 p1
symfunction_short Al 23 2.0 4.5 p4
symfunction_short Al 24 -4.5 4.5 -70.0 70.0 p2
symfunction_short Al 25 1.9 4.6 20.0 110.0 p2a
symfunction_short Ni 2 Al 0.5 0.0 4.6
symfunction_short Ni 12 0.1 0.0 4.4
symfunction_short Ni 21 Ni Ni -4.6 4.6 40.0 140.0 p2
symfunction_short Ni 25 1.9 4.6 20.0 110.0 p2a
"""


def test_n2p2_lines_to_a_feature_set_and_back(tmp_path):
    """Lines in n2p2's sorted order come back identical; shuffled and with the pair written
    the other way round they come back sorted; the sort follows each type's operator<."""
    (tmp_path / "sf.nn").write_text(LINES)
    fs = featureset_from_n2p2(tmp_path / "sf.nn")
    assert (fs.cutoff, fs.cutoff_alpha) == ("exp", 0.25)
    assert n2p2_symfunction_lines(fs) == LINES.splitlines()
    al = fs.per_element["Al"]
    assert [f.type for f in al][2:6] == ["weighted_radial"] * 2 + ["weighted_angular"] * 2
    assert [(f.subtype, f.neighbors, f.rc) for f in al if f.type == "compact_radial"] == [
        ("p2", ("Al",), 4.6), ("p2", ("Ni",), 4.2), ("p3a", ("Al",), 4.6)]      # subtype, then e1, then rc
    body = LINES.splitlines()
    shuffled = [body[0], *reversed(body[1:])]
    shuffled[shuffled.index("symfunction_short Al 21 Al Ni -4.6 4.6 40.0 140.0 e")] = \
        "symfunction_short Al 21 Ni Al -4.6 4.6 40.0 140.0 e"
    (tmp_path / "shuffled.nn").write_text("\n".join(shuffled) + "\n")
    assert n2p2_symfunction_lines(featureset_from_n2p2(tmp_path / "shuffled.nn")) == body
    assert FeatureSet.from_dict(fs.to_dict()).content_hash() == fs.content_hash()


@pytest.mark.parametrize("line, message", [
    ("symfunction_short Al 26 1.9 4.6 20.0 110.0 p2", r"type 26 is not supported here"),
    ("symfunction_short Al 24 1.9 4.6 20.0 110.0", r"type 24 takes 5 values after the type \(rl rc angle_left "
                                                   r"angle_right subtype\), got 4"),
    ("symfunction_short Al 20 Al 4.6 1.8 p2", r"compact_radial needs rl < rc"),
    ("symfunction_short Al 22 Al Al 1.5 4.4 100.0 200.0 p1", r"leave \[0, 180\]"),
    ("symfunction_short Al 13 0.04 0.5 0.5 2.0 4.4", r"lambda = \+1 or -1"),
])
def test_unsupported_or_invalid_lines_name_file_line_and_key(line, message, tmp_path):
    (tmp_path / "bad.nn").write_text(f"cutoff_type 1 0.0\nsymfunction_short Al 2 Al 0.5 0.0 4.6\n{line}\n")
    with pytest.raises(N2p2FormatError, match=r"bad\.nn, line 3: symfunction_short: .*" + message):
        featureset_from_n2p2(tmp_path / "bad.nn")


# ============================================================================ an n2p2 potential
def _write_potential(d, fs: FeatureSet, frame: Atoms, hidden=(6, 4), seed=0):
    """input.nn (n2p2's keywords, the feature set's lines), scaling.data (sigma scaling from the
    reference features of ``frame``) and weights files with random weights."""
    rng = np.random.default_rng(seed)
    d.mkdir()
    lines = n2p2_symfunction_lines(fs)
    nodes = " ".join(map(str, hidden))
    (d / "input.nn").write_text("\n".join([
        "number_of_elements 2", "elements Ni Al", "atom_energy Al -3.5", "atom_energy Ni -5.25", lines[0],
        "scale_symmetry_functions_sigma", "scale_min_short 0.0", "scale_max_short 1.0",
        f"global_hidden_layers_short {len(hidden)}", f"global_nodes_short {nodes}", "global_activation_short t t l",
        *lines[1:]]) + "\n")
    fs = featureset_from_n2p2(d / "input.nn")        # n2p2's function order: the scaling rows' order
    G = reference_features(frame, fs)
    symbols = np.array(frame.get_chemical_symbols())
    scal = ["# scaling"]
    for e, el in enumerate(["Al", "Ni"]):
        g = G[symbols == el][:, :len(fs.per_element[el])]
        for k in range(g.shape[1]):
            col = g[:, k]
            scal.append(f"{e + 1} {k + 1} {float(col.min())!r} {float(col.max())!r} {float(col.mean())!r} "
                        f"{max(float(col.std()), 1e-3)!r}")
        sizes = [g.shape[1], *hidden, 1]
        layers = [(rng.normal(0, 0.4, (b, a)), rng.normal(0, 0.2, b)) for a, b in zip(sizes[:-1], sizes[1:])]
        (d / f"weights.{Z[el]:03d}.data").write_text(_weights_text(el, layers))
    (d / "scaling.data").write_text("\n".join(scal) + "\n")
    return fs


def _reference_energy(pot, fs, atoms) -> float:
    """Total energy from the reference features (``fs``: in n2p2's order) through the reader's n2p2
    evaluation."""
    G = reference_features(atoms, fs)
    symbols = np.array(atoms.get_chemical_symbols())
    return sum(float(n2p2_atomic_energies(pot, el, G[symbols == el][:, :len(fs.per_element[el])]).sum())
               for el in pot.elements if np.any(symbols == el))


@needs_kernel
@pytest.mark.parametrize("fs", [classic_and_weighted("poly4", 0.2), compact_set("p2a", cutoff="tanhu", alpha=0.0)],
                         ids=["poly4-alpha-weighted", "compact-tanhu"])
def test_imported_potential_equals_the_reference(fs, tmp_path):
    """model_from_n2p2 of a hand-written potential: energy and per-atom energies equal the
    reference features through n2p2's evaluation (1e-12), forces equal central differences of that
    energy (1e-7 relative)."""
    frame = alloy_atoms(n=16, seed=7)
    fs = _write_potential(tmp_path / "pot", fs, frame)
    pot = read_n2p2(tmp_path / "pot")
    model = model_from_n2p2(pot)
    assert model.featureset.cutoff == fs.cutoff and model.featureset.cutoff_alpha == fs.cutoff_alpha
    atoms = cluster(9, seed=2)
    atoms.calc = MeltpotCalculator(model)
    e, forces = atoms.get_potential_energy(), atoms.get_forces()
    e_ref = _reference_energy(pot, fs, atoms)
    assert abs(e - e_ref) < 1e-12 * abs(e_ref)
    h, fd = 1e-5, np.zeros((len(atoms), 3))
    for a in range(len(atoms)):
        for c in range(3):
            shifted = []
            for s in (h, -h):
                b = atoms.copy()
                b.positions[a, c] += s
                shifted.append(_reference_energy(pot, fs, b))
            fd[a, c] = -(shifted[0] - shifted[1]) / (2 * h)
    assert np.abs(fd).max() > 1e-2
    assert np.abs(forces - fd).max() < 1e-7 * np.abs(fd).max()


@needs_kernel
def test_meltpot_model_with_the_new_types_exports_and_imports_unchanged(tmp_path):
    """write_n2p2 of a model on the exp cutoff (α 0.3) with types 12, 13, 20, 21, 25, read back
    with model_from_n2p2: the same energies and forces (1e-12), the same files written again."""
    from helpers import n2p2_types_featureset, random_model
    from meltpot.descriptors.compute import AtomsDescriptor
    from meltpot.export.n2p2 import write_n2p2

    frame = alloy_atoms(n=16, seed=7)
    model = random_model(n2p2_types_featureset(), [frame], seed=8)
    G = AtomsDescriptor(model.featureset).per_element(frame)
    bounds = ({el: g.min(0) for el, g in G.items()}, {el: g.max(0) for el, g in G.items()})
    write_n2p2(model, tmp_path / "out", *bounds)
    text = (tmp_path / "out" / "input.nn").read_text()
    assert "cutoff_type 4 0.3" in text and "symfunction_short Al 25 1.8 5.2 -90.0 90.0 e" in text
    back = model_from_n2p2(read_n2p2(tmp_path / "out"))
    results = []
    for m in (model, back):
        atoms = frame.copy()
        atoms.calc = MeltpotCalculator(m)
        results.append((atoms.get_potential_energy(), atoms.get_forces()))
    (e1, f1), (e2, f2) = results
    assert abs(e1 - e2) < 1e-12 * abs(e1) and np.abs(f1 - f2).max() < 1e-12 * np.abs(f1).max()
    order = {el: [model.featureset.per_element[el].index(f) for f in back.featureset.per_element[el]]
             for el in back.elements}             # the imported model has n2p2's function order
    write_n2p2(back, tmp_path / "again", *({el: b[el][order[el]] for el in b} for b in bounds))
    for name in ("input.nn", "scaling.data"):
        body = [ln for ln in (tmp_path / "again" / name).read_text().splitlines() if ln and not ln.startswith("#")]
        assert body == [ln for ln in (tmp_path / "out" / name).read_text().splitlines()
                        if ln and not ln.startswith("#")]
