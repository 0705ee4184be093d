"""n2p2 export (``meltpot.export.n2p2``): the exported directory, read back the way n2p2 reads
it, reproduces the model's atomic energies from meltpot descriptors put into n2p2's sorted
order and scaled with n2p2's formula (GitHub issue 6, item 3).

Models have seeded random weights, non-trivial scaling (from the frame's own features) and
reference energies; frames are rattled periodic cells (Al, Al+Ni, LJ "Ar" in σ units). The
function order n2p2 uses is checked against a hand-sorted list, the ``symfunction_short``
lines against hand-written strings.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from helpers import assemble_dataset, emt_alni_frame
from meltpot.cli import main
from meltpot.descriptors.cache import DescriptorCache
from meltpot.descriptors.compute import AtomsDescriptor
from meltpot.descriptors.featureset import FeatureSet, NoiseFeature, SymmetryFunction
from meltpot.errors import MeltpotError
from meltpot.export.n2p2 import (N2p2FormatError, check_export, n2p2_atomic_energies, n2p2_columns, n2p2_scale,
                                 read_n2p2, write_n2p2)
from meltpot.model import HDNNP, load_model, save_model
from meltpot.model.calculator import MeltpotCalculator

RC = 4.5


def _generic(rc=RC, rc2=3.8, rs=2.6, rs_angular=1.5):
    """Radial (centred and shifted), narrow (one shifted) and wide functions, two cutoff radii."""
    S = SymmetryFunction
    return [S("angular_wide", eta=0.05, rc=rc, zeta=2.0, lam=1.0), S("radial", eta=1.2, rs=rs, rc=rc),
            S("angular_narrow", eta=0.02, rc=rc, zeta=4.0, lam=-1.0), S("radial", eta=0.3, rc=rc2),
            S("angular_narrow", eta=0.02, rc=rc, zeta=1.0, lam=1.0), S("radial", eta=0.3, rc=rc),
            S("angular_narrow", eta=0.1, rs=rs_angular, rc=rc, zeta=1.0, lam=-1.0),
            S("angular_wide", eta=0.05, rc=rc, zeta=1.0, lam=-1.0)]


def _frame(rng, kind: str):
    if kind == "lj":
        atoms = bulk("Ar", "fcc", a=1.55, cubic=True).repeat((3, 3, 3))
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        return atoms
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    if kind == "alni":
        symbols = np.array(atoms.get_chemical_symbols())
        symbols[rng.choice(len(atoms), 11, replace=False)] = "Ni"
        atoms.set_chemical_symbols(symbols.tolist())
    cell = atoms.cell.array.copy()
    cell[2, 0] += 0.3
    atoms.set_cell(cell, scale_atoms=True)
    atoms.positions += rng.normal(0.0, 0.15, atoms.positions.shape)
    return atoms


def _model(fs, frame, activation="tanh", hidden=(7, 5), seed=0, refs=None) -> HDNNP:
    """Random weights (biases too), scaling from the frame's features, reference energies."""
    torch.manual_seed(seed)
    model = HDNNP(fs, hidden=hidden, activation=activation)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.15)
    G = AtomsDescriptor(fs).per_element(frame)
    model.set_scaling({el: G[el].mean(0) + 0.01 for el in fs.elements}, {el: 1.3 * G[el].std(0) for el in fs.elements})
    model.set_reference_energies(refs or {el: -1.5 - 0.7 * k for k, el in enumerate(fs.elements)})
    return model


def _bounds(model, frame):
    G = AtomsDescriptor(model.featureset).per_element(frame)
    return {el: g.min(0) for el, g in G.items()}, {el: g.max(0) for el, g in G.items()}


CASES = {
    "Al-tanh-polynomial": (["Al"], "polynomial", "tanh", "al"),
    "NiAl-shifted_softplus": (["Ni", "Al"], "polynomial", "shifted_softplus", "alni"),
    "AlNi-softplus-cosine": (["Al", "Ni"], "cosine", "softplus", "alni"),
    "lj-Ar-tanh-cosine": (["Ar"], "cosine", "tanh", "lj"),
    "Al-logistic-polynomial": (["Al"], "polynomial", "logistic", "al"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_export_reproduces_atomic_energies(case, tmp_path):
    """Export → read back → meltpot descriptors reordered by the parsed definitions only →
    n2p2 scaling and network → the model's per-atom energies (pair-list route) to 1e-12."""
    elements, cutoff, activation, kind = CASES[case]
    rng = np.random.default_rng(3)
    frame = _frame(rng, kind)
    generic = _generic(2.5, 2.1, 1.4, 0.8) if kind == "lj" else _generic()
    fs = FeatureSet.from_generic(generic, elements, cutoff=cutoff, name=case)
    model = _model(fs, frame, activation)
    if kind == "lj":
        model.units = "lj"
    lo, hi = _bounds(model, frame)
    paths = write_n2p2(model, tmp_path, lo, hi)
    pot = read_n2p2(tmp_path)

    assert pot.elements == sorted(elements, key=["Al", "Ar", "Ni"].index)   # by atomic number
    assert pot.cutoff == cutoff and pot.cutoff_alpha == 0.0 and pot.scaling_type == "sigma"
    assert (pot.smin, pot.smax) == (0.0, 1.0) and pot.hidden == [7, 5]
    assert pot.activations == [{"tanh": "t", "logistic": "s"}.get(activation, "p")] * 2 + ["l"]
    assert pot.units == model.units and f"units: {model.units}" in paths["input.nn"].read_text()
    z = {"Al": "013", "Ni": "028", "Ar": "018"}
    assert sorted(p.name for p in paths["weights"].values()) == sorted(f"weights.{z[el]}.data" for el in elements)
    for k, el in enumerate(model.elements):
        assert pot.atom_energy[el] == float(model.reference_energy[k])

    # reference: the model's per-atom energies through the pair-list route (HDNNP.forward)
    frame.calc = MeltpotCalculator(model)
    e_model = frame.get_potential_energies()
    G, species = AtomsDescriptor(fs).features(frame)
    with torch.no_grad():
        e_feat = model.atomic_energies(G, species).numpy()
    np.testing.assert_allclose(e_feat, e_model, rtol=0, atol=1e-12)

    e_n2p2 = np.zeros(len(frame))
    symbols = np.array(frame.get_chemical_symbols())
    worst = 0.0
    for k, el in enumerate(model.elements):
        rows = symbols == el
        nf = fs.n_features(el)
        G_el = G[torch.as_tensor(rows)][:, :nf].numpy()
        cols = n2p2_columns(pot, el, fs.per_element[el])   # from the parsed SF parameters only
        assert sorted(cols) == list(range(nf))
        # n2p2's scaling of the reordered raw features = the model's standardisation, reordered
        scaled = n2p2_scale(pot, el, G_el[:, cols])
        np.testing.assert_allclose(scaled, model.scale(k, torch.as_tensor(G_el)).numpy()[:, cols], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(pot.scaling[el][:, 0], lo[el][cols])
        np.testing.assert_array_equal(pot.scaling[el][:, 1], hi[el][cols])
        e_n2p2[rows] = n2p2_atomic_energies(pot, el, G_el[:, cols])
        per_atom = n2p2_atomic_energies(pot, el, G_el[:, cols], with_offset=False)
        np.testing.assert_allclose(per_atom + pot.atom_energy[el], e_n2p2[rows], rtol=0, atol=1e-14)
        worst = max(worst, float(np.abs(e_n2p2[rows] - e_model[rows]).max()))
    assert worst < 1e-12, worst
    assert np.ptp(e_model) > 1e-3                      # the networks do something
    assert abs(e_n2p2.sum() - frame.get_potential_energy()) < 1e-11


def test_function_lines_and_sort_order_hand_checked(tmp_path):
    """input.nn lines (hand-written strings) in n2p2's operator< order: type, r_c, η, r_s, ζ, λ,
    then neighbour elements by atomic number; re-reading with shuffled lines gives the same
    order (n2p2 sorts, the line order does not matter)."""
    S = SymmetryFunction
    extra = [S("radial", eta=2.5, rs=1.0, rc=RC), S("radial", eta=2.0, rc=3.8)]   # r_c before η before r_s
    fs = FeatureSet.from_generic(extra + _generic(), ["Al"], cutoff="polynomial", name="hand")
    frame = _frame(np.random.default_rng(0), "al")
    model = _model(fs, frame)
    write_n2p2(model, tmp_path, *_bounds(model, frame))
    text = (tmp_path / "input.nn").read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("symfunction_short")]
    assert lines == [
        "symfunction_short Al 2 Al 0.3 0.0 3.8",
        "symfunction_short Al 2 Al 2.0 0.0 3.8",
        "symfunction_short Al 2 Al 0.3 0.0 4.5",
        "symfunction_short Al 2 Al 1.2 2.6 4.5",
        "symfunction_short Al 2 Al 2.5 1.0 4.5",
        "symfunction_short Al 3 Al Al 0.02 1.0 1.0 4.5 0.0",
        "symfunction_short Al 3 Al Al 0.02 -1.0 4.0 4.5 0.0",
        "symfunction_short Al 3 Al Al 0.1 -1.0 1.0 4.5 1.5",
        "symfunction_short Al 9 Al Al 0.05 -1.0 1.0 4.5 0.0",
        "symfunction_short Al 9 Al Al 0.05 1.0 2.0 4.5 0.0",
    ]
    for key in ("number_of_elements 1", "elements Al", "cutoff_type 6 0.0", "scale_symmetry_functions_sigma",
                "scale_min_short 0.0", "scale_max_short 1.0", "global_hidden_layers_short 2",
                "global_nodes_short 7 5", "global_activation_short t t l",
                f"atom_energy Al {float(model.reference_energy[0])!r}"):
        assert f"\n{key}\n" in text
    assert "center_symmetry_functions" not in text     # it would switch n2p2 to ST_CENTER
    pot = read_n2p2(tmp_path)
    first = text.splitlines().index(lines[0]) + 1
    assert [f["line"] for f in pot.functions["Al"]] == list(range(first, first + len(lines)))
    # shuffle the function lines: n2p2 (and the reader) sort them again
    body = [ln for ln in text.splitlines() if not ln.startswith("symfunction_short")]
    (tmp_path / "input.nn").write_text("\n".join(body + lines[::-1][3:] + lines[::-1][:3]) + "\n")
    again = read_n2p2(tmp_path)
    strip = [{k: v for k, v in f.items() if k != "line"} for f in pot.functions["Al"]]
    assert [{k: v for k, v in f.items() if k != "line"} for f in again.functions["Al"]] == strip
    # two elements: neighbour pairs are written and sorted by atomic number, not by list order
    fs2 = FeatureSet({"Ni": [S("radial", 0.5, RC, 1.25, neighbors=("Ni",)),
                             S("radial", 0.5, RC, 1.25, neighbors=("Al",)),
                             S("angular_narrow", 0.02, RC, zeta=2.0, lam=1.0, neighbors=("Ni", "Al"))],
                      "Al": [S("radial", 0.5, RC, 1.25, neighbors=("Al",))]}, name="pair")
    m2 = _model(fs2, _frame(np.random.default_rng(1), "alni"))
    write_n2p2(m2, tmp_path / "pair", *_bounds(m2, _frame(np.random.default_rng(1), "alni")))
    lines2 = [ln for ln in (tmp_path / "pair" / "input.nn").read_text().splitlines()
              if ln.startswith("symfunction_short")]
    assert lines2 == ["symfunction_short Al 2 Al 0.5 1.25 4.5",
                      "symfunction_short Ni 2 Al 0.5 1.25 4.5",
                      "symfunction_short Ni 2 Ni 0.5 1.25 4.5",
                      "symfunction_short Ni 3 Al Ni 0.02 1.0 2.0 4.5 0.0"]
    assert "elements Al Ni" in (tmp_path / "pair" / "input.nn").read_text()


def test_weights_file_layout(tmp_path):
    """weights.NNN.data: per layer all weights with the target neuron running fastest, then
    the biases (n2p2's setConnections); the input columns in n2p2's function order."""
    frame = _frame(np.random.default_rng(2), "al")
    fs = FeatureSet.from_generic(_generic(), ["Al"], name="w")
    model = _model(fs, frame, hidden=(3, 2))
    write_n2p2(model, tmp_path, *_bounds(model, frame))
    vals = [float(ln.split()[0]) for ln in (tmp_path / "weights.013.data").read_text().splitlines()
            if ln and not ln.startswith("#")]
    pot = read_n2p2(tmp_path)
    cols = n2p2_columns(pot, "Al", fs.per_element["Al"])
    W0 = model.nets[0].layers[0].weight.detach().numpy()[:, cols]
    assert len(vals) == 8 * 3 + 3 + 3 * 2 + 2 + 2 + 1
    assert vals[:3] == list(W0[:, 0]) and vals[3:6] == list(W0[:, 1])    # source 1 → targets 1..3, source 2 …
    assert vals[24:27] == list(model.nets[0].layers[0].bias.detach().numpy())
    assert vals[-1] == float(model.nets[0].layers[2].bias.detach()[0])


def test_selected_subset_lists_only_its_functions(tmp_path):
    """A model on a subset (as after feature selection) exports only those functions, and the
    export still reproduces it."""
    rng = np.random.default_rng(5)
    frame = _frame(rng, "alni")
    full = FeatureSet.from_generic(_generic(), ["Al", "Ni"], name="full")
    keep = {"Al": [0, 3, 7, 12], "Ni": [1, 2, 5]}
    sub = full.subset(keep, name="selected")
    model = _model(sub, frame, activation="shifted_softplus")
    write_n2p2(model, tmp_path, *_bounds(model, frame))
    pot = read_n2p2(tmp_path)
    for el in ("Al", "Ni"):
        assert len(pot.functions[el]) == len(keep[el])
        assert sorted(n2p2_columns(pot, el, sub.per_element[el])) == list(range(len(keep[el])))
        assert pot.layers[el][0][0].shape == (7, len(keep[el]))
        dropped = [f for i, f in enumerate(full.per_element[el]) if i not in keep[el]]
        with pytest.raises(MeltpotError, match="matches 0 meltpot functions"):
            n2p2_columns(pot, el, dropped)
    text = (tmp_path / "input.nn").read_text()
    assert text.count("symfunction_short") == 7
    diff = check_export(model, pot, AtomsDescriptor(sub).per_element(frame))
    assert max(diff.values()) < 1e-12


def test_unexportable_models_are_refused(tmp_path):
    frame = _frame(np.random.default_rng(0), "al")
    fs = FeatureSet.from_generic(_generic(), ["Al"], name="x")
    model = _model(fs, frame, activation="silu")
    with pytest.raises(MeltpotError, match="silu"):
        write_n2p2(model, tmp_path / "silu", *_bounds(model, frame))
    assert not (tmp_path / "silu" / "input.nn").exists()
    noisy = FeatureSet({"Al": [*fs.per_element["Al"], NoiseFeature(0, 1.0, 0.5, seed=1)]}, name="noisy")
    m = HDNNP(noisy)
    with pytest.raises(MeltpotError, match="noise0"):
        write_n2p2(m, tmp_path / "noisy", {"Al": np.zeros(9)}, {"Al": np.ones(9)})


@pytest.fixture()
def exported(tmp_path):
    frame = _frame(np.random.default_rng(0), "alni")
    model = _model(FeatureSet.from_generic(_generic(), ["Al", "Ni"], name="m"), frame)
    write_n2p2(model, tmp_path, *_bounds(model, frame))
    read_n2p2(tmp_path)
    return tmp_path


def _edit(path, old, new, count=1):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))


@pytest.mark.parametrize("damage, message", [
    (lambda d: _edit(d / "input.nn", "symfunction_short Al 2 Al 0.3 0.0 3.8", "symfunction_short Al 2 Al 0.3 x 3.8"),
     r"input\.nn, line \d+: symfunction_short: 'x' is not a number"),
    (lambda d: _edit(d / "input.nn", "symfunction_short Ni 3 Al Ni", "symfunction_short Ni 3 Al Cu"),
     r"input\.nn, line \d+: symfunction_short: neighbour element 'Cu'"),
    (lambda d: _edit(d / "input.nn", "global_nodes_short 7 5", "global_nodes_short 7"),
     r"input\.nn, line \d+: global_nodes_short: needs 2 value"),
    (lambda d: _edit(d / "input.nn", "global_nodes_short 7 5", "global_nodes_short 7 5 3"),
     r"input\.nn, line \d+: global_nodes_short: 3 values for 2 hidden layers"),
    (lambda d: _edit(d / "input.nn", "global_activation_short t t l", "global_activation_short t t"),
     r"input\.nn, line \d+: global_activation_short: needs 3 value"),
    (lambda d: _edit(d / "input.nn", "global_activation_short t t l", "global_activation_short t t l l"),
     r"input\.nn, line \d+: global_activation_short: 4 letters: one per layer, the output layer included, makes 3"),
    (lambda d: _edit(d / "input.nn", "global_activation_short t t l", "global_activation_short t t x"),
     r"input\.nn, line \d+: global_activation_short: letter 'x' is not an n2p2 activation"),
    (lambda d: _edit(d / "input.nn", "cutoff_type 6 0.0", "cutoff_type 9 0.0"),
     r"input\.nn, line \d+: cutoff_type: 9 is not an n2p2 cutoff type \(0 … 8"),
    (lambda d: _edit(d / "input.nn", "cutoff_type 6 0.0", "cutoff_type 6 -0.1"),
     r"input\.nn, line \d+: cutoff_type: alpha -0\.1 outside \[0, 1\)"),
    (lambda d: _edit(d / "input.nn", "symfunction_short Al 2 Al 0.3 0.0 3.8", "symfunction_short Al 5 Al 0.3 0.0 3.8"),
     r"input\.nn, line \d+: symfunction_short: type 5 is not supported here \(types 2, 3, 9, 12, 13, 20"),
    (lambda d: _edit(d / "input.nn", "symfunction_short Al 2 Al 0.3 0.0 3.8", "symfunction_short Al 20 Al 0.3 3.8 q2"),
     r"input\.nn, line \d+: symfunction_short: subtype 'q2' of type 20 is not supported here"),
    (lambda d: _edit(d / "input.nn", "symfunction_short Al 2 Al 0.3 0.0 3.8", "symfunction_short Al 12 0.3 0.0"),
     r"input\.nn, line \d+: symfunction_short: type 12 takes 3 values after the type \(eta rs rc\), got 2"),
    (lambda d: _edit(d / "input.nn", "number_of_elements 2\n", ""), r"input\.nn: number_of_elements: keyword missing"),
    (lambda d: _edit(d / "scaling.data", "\n   1     2 ", "\n\n   1     2 "),
     r"scaling\.data, line 4: row: empty line"),
    (lambda d: _edit(d / "scaling.data", "\n   2     1 ", "\n   2     7 "),
     r"scaling\.data, line \d+: row: expected element 2 \(Ni\) function 1"),
    (lambda d: (d / "weights.028.data").write_text("\n".join((d / "weights.028.data").read_text().splitlines()[:-1])),
     r"weights\.028\.data: connections: 199 values, the architecture 21-7-5-1 needs 200"),
])
def test_malformed_files_name_file_line_and_key(exported, damage, message):
    damage(exported)
    with pytest.raises(N2p2FormatError, match=message):
        read_n2p2(exported)


def test_the_output_layer_letter_is_read_and_evaluated_linear_as_n2p2_does(exported):
    """n2p2's Mode::setupNeuralNetwork reads the hidden layers' letters only and makes the output
    layer AF_IDENTITY whatever global_activation_short names there: a file with ``t`` on the output
    gives the same energies as with ``l`` (the letter is kept as written)."""
    from meltpot.export.n2p2 import n2p2_atomic_energies

    pot = read_n2p2(exported)
    assert pot.activations == ["t", "t", "l"] and pot.layer_letters == ["t", "t", "l"]
    G = np.random.default_rng(5).uniform(0.0, 2.0, (4, len(pot.functions["Al"])))
    linear = n2p2_atomic_energies(pot, "Al", G, with_offset=False)
    _edit(exported / "input.nn", "global_activation_short t t l", "global_activation_short t t t")
    other = read_n2p2(exported)
    assert other.activations == ["t", "t", "t"] and other.layer_letters == ["t", "t", "l"]
    np.testing.assert_array_equal(n2p2_atomic_energies(other, "Al", G, with_offset=False), linear)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    """Six EMT Al–Ni frames, their index, splits and descriptor cache (the _generic feature set)."""
    root = tmp_path_factory.mktemp("n2p2_cache")
    rng = np.random.default_rng(11)
    frames = [emt_alni_frame(rng, n_ni=int(n)) for n in (6, 9, 12, 8, 10, 7)]
    for i, fr in enumerate(frames):
        fr.info["state_id"] = f"s{i % 2}"
    fs = FeatureSet.from_generic(_generic(), ["Al", "Ni"], name="cli")
    paths = assemble_dataset(root, {"liquid": frames}, fs, root / "cache.h5",
                             dict(train=0.67, validation=0.17, test=0.16, seed=1))
    return paths["cache"], fs


def _cache_model(cache_path, fs, keep=None, activation="tanh") -> HDNNP:
    with DescriptorCache(cache_path) as cache:
        stats = {el: cache.stats(el) for el in fs.elements}
    sub = fs.subset(keep) if keep else fs
    idx = keep or {el: list(range(fs.n_features(el))) for el in fs.elements}
    torch.manual_seed(4)
    model = HDNNP(sub, hidden=(6, 4), activation=activation)
    model.set_scaling({el: stats[el]["mean"][idx[el]] for el in fs.elements},
                      {el: stats[el]["std"][idx[el]] for el in fs.elements})
    model.set_reference_energies({"Al": -3.2, "Ni": -4.1})
    return model


def test_cli_export_from_cache(tiny_cache, tmp_path, capsys):
    """`meltpot export n2p2 MODEL --cache --out-dir`: bounds from the cache's training-split
    statistics, scaling from the model; a selected model exports from the full cache; the
    command's own read-back check passes; a SiLU model exits 2 with one line."""
    cache_path, fs = tiny_cache
    keep = {"Al": [0, 2, 4, 6, 9, 15], "Ni": [1, 3, 8]}
    for name, kw in (("dense", {}), ("selected", {"keep": keep, "activation": "shifted_softplus"})):
        model = _cache_model(cache_path, fs, **kw)
        save_model(model, tmp_path / f"{name}.pt", units="metal")
        out = tmp_path / name
        assert main(["export", "n2p2", str(tmp_path / f"{name}.pt"), "--cache", str(cache_path),
                     "--out-dir", str(out)]) == 0
        printed = capsys.readouterr().out
        assert "check: max |E_n2p2 - E_model| per atom" in printed and "pair_style hdnnp 4.5" in printed
        assert "note:" not in printed
        pot = read_n2p2(out)
        loaded = load_model(tmp_path / f"{name}.pt")
        features = {}
        with DescriptorCache(cache_path) as cache:
            for el in ("Al", "Ni"):
                st = cache.stats(el)
                idx = np.array(kw.get("keep", {}).get(el, range(fs.n_features(el))))
                assert len(pot.functions[el]) == len(idx)
                cols = n2p2_columns(pot, el, loaded.featureset.per_element[el])
                np.testing.assert_array_equal(pot.scaling[el][:, 0], st["min"][idx][cols])
                np.testing.assert_array_equal(pot.scaling[el][:, 1], st["max"][idx][cols])
                features[el] = cache.features(el)[:, idx]
        assert min(len(g) for g in features.values()) > 20
        assert max(check_export(loaded, pot, features).values()) < 1e-12   # every cached atom
    save_model(_cache_model(cache_path, fs, activation="silu"), tmp_path / "silu.pt")
    assert main(["export", "n2p2", str(tmp_path / "silu.pt"), "--cache", str(cache_path),
                 "--out-dir", str(tmp_path / "silu")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("meltpot: error:") and "silu" in err and len(err.splitlines()) == 1
