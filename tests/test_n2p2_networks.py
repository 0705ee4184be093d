"""n2p2 networks in and out (issue 18, item 1): every n2p2 activation, per layer; element-specific
topologies (``element_nodes_short``); the round trip import → export; the rest of the chain
(model files, training, an AGL λ step, TorchScript, ML-IAP, the LAMMPS plugin) on such models.

The potentials are written here in n2p2's format by this file's own writer (random weights,
sigma scaling from the frame's features) and evaluated by this file's own numpy code from the
formulas of n2p2's ``NeuralNetwork.h`` — not by ``meltpot.export.n2p2``: scaling, layer by
layer ``f(W x + b)``, the output layer linear (n2p2's ``Mode::setupNeuralNetwork`` makes it
AF_IDENTITY whatever its letter). Forces: 4-point central differences of that energy.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from meltpot.descriptors.compute import AtomsDescriptor
from meltpot.descriptors.featureset import FeatureSet
from meltpot.errors import ConfigError, MeltpotError
from meltpot.export.n2p2 import (n2p2_atomic_energies, n2p2_permutation, n2p2_symfunction_lines, read_n2p2,
                                 write_n2p2)
from meltpot.export.n2p2_import import import_n2p2, model_from_n2p2
from meltpot.model import HDNNP, load_model, save_model
from meltpot.model.calculator import MeltpotCalculator
from test_export_n2p2 import _frame, _generic

#: n2p2's activations (NeuralNetwork.h, ActivationFunction), written from their formulas
FORMULAS = {
    "l": lambda x: x,
    "t": np.tanh,
    "s": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "p": lambda x: np.log(1.0 + np.exp(x)),
    "r": lambda x: np.maximum(x, 0.0),
    "g": lambda x: np.exp(-0.5 * x ** 2),
    "c": np.cos,
    "S": lambda x: 1.0 - 1.0 / (1.0 + np.exp(-x)),
    "e": lambda x: np.exp(-x),
    "h": lambda x: x ** 2,
}
NAMES = {"l": "linear", "t": "tanh", "s": "logistic", "p": "softplus", "r": "relu", "g": "gaussian", "c": "cos",
         "S": "revlogistic", "e": "negexp", "h": "harmonic"}
Z = {"Al": 13, "Ni": 28}
NETWORK_KEYS = ("global_hidden_layers_short", "global_nodes_short", "global_activation_short", "element_nodes_short")


# ------------------------------------------------------------------------------ the test's n2p2 files
class Potential:
    """An n2p2 potential as this test writes and evaluates it."""

    def __init__(self, elements, letters, glob, element_nodes=(), seed=0, weight_scale=0.3, normalize=False):
        self.fs = FeatureSet.from_generic(_generic(), elements, cutoff="polynomial", name="t")
        self.frame = _frame(np.random.default_rng(seed), "alni" if len(elements) > 1 else "al")
        self.elements = sorted(elements, key=Z.get)
        self.letters, self.glob, self.element_nodes = list(letters), list(glob), list(element_nodes)
        self.normalize = normalize
        sizes = {el: list(glob) for el in self.elements}
        for el, layer, n in self.element_nodes:
            sizes[el][layer - 1] = n
        self.sizes = sizes
        rng = np.random.default_rng(seed + 1)
        G = self.features(self.frame)
        self.mean = {el: G[el].mean(0) + 0.01 for el in self.elements}
        self.sigma = {el: 1.3 * G[el].std(0) for el in self.elements}
        self.lo = {el: G[el].min(0) for el in self.elements}
        self.hi = {el: G[el].max(0) for el in self.elements}
        self.offset = {el: -1.5 - 0.75 * k for k, el in enumerate(self.elements)}
        self.layers = {}
        for el in self.elements:
            dims = [G[el].shape[1], *sizes[el], 1]
            self.layers[el] = [(rng.normal(0.0, weight_scale, (b, a)), rng.normal(0.0, weight_scale, b))
                               for a, b in zip(dims[:-1], dims[1:])]

    def features(self, atoms) -> dict:
        """Raw symmetry functions per element, columns in n2p2's sorted order (the network's)."""
        G = AtomsDescriptor(self.fs).per_element(atoms)
        return {el: G[el][:, n2p2_permutation(self.fs.per_element[el], self.fs.elements)] for el in self.elements}

    def input_nn(self) -> str:
        lines = [f"number_of_elements {len(self.elements)}", f"elements {' '.join(reversed(self.elements))}",
                 *[f"atom_energy {el} {self.offset[el]!r}" for el in self.elements],
                 "scale_symmetry_functions_sigma", "scale_min_short 0.0", "scale_max_short 1.0",
                 f"global_hidden_layers_short {len(self.glob)}", f"global_nodes_short {' '.join(map(str, self.glob))}",
                 *[f"element_nodes_short {el} {layer} {n}" for el, layer, n in self.element_nodes],
                 f"global_activation_short {' '.join(self.letters)}",
                 *(["normalize_nodes"] if self.normalize else []),
                 *n2p2_symfunction_lines(self.fs)]
        return "\n".join(lines) + "\n"

    @staticmethod
    def weights_text(el, layers) -> str:
        rows, count = [f"# weights of {el}"], 0
        for i, (W, b) in enumerate(layers, start=1):
            for j in range(W.shape[1]):              # source neuron, then target neuron fastest
                for k in range(W.shape[0]):
                    count += 1
                    rows.append(f"{W[k, j]:24.16E} a {count:9d} {i - 1:5d} {j + 1:5d} {i:5d} {k + 1:5d}")
            for k in range(W.shape[0]):
                count += 1
                rows.append(f"{b[k]:24.16E} b {count:9d} {i:5d} {k + 1:5d}")
        return "\n".join(rows) + "\n"

    def write(self, d):
        d.mkdir(parents=True, exist_ok=True)
        (d / "input.nn").write_text(self.input_nn())
        rows = ["# scaling"]
        for e, el in enumerate(self.elements):
            rows += [f"{e + 1:4d} {i + 1:5d} {a:24.16E} {b:24.16E} {m:24.16E} {s:24.16E}" for i, (a, b, m, s) in
                     enumerate(zip(self.lo[el], self.hi[el], self.mean[el], self.sigma[el]))]
        (d / "scaling.data").write_text("\n".join(rows) + "\n")
        for el in self.elements:
            (d / f"weights.{Z[el]:03d}.data").write_text(self.weights_text(el, self.layers[el]))
        return d

    def atomic_energies(self, atoms) -> np.ndarray:
        """n2p2's per-atom energies with the atom_energy offsets, in the frame's atom order."""
        G = self.features(atoms)
        symbols = np.array(atoms.get_chemical_symbols())
        out = np.zeros(len(atoms))
        hidden = [FORMULAS[c] for c in self.letters[:-1]] + [FORMULAS["l"]]   # output: AF_IDENTITY
        for el in self.elements:
            x = (G[el] - self.mean[el]) / self.sigma[el]
            for (W, b), f in zip(self.layers[el], hidden):
                n = x.shape[1] if self.normalize else 1       # normalize_nodes: (W x + b)/n_previous
                x = f((x @ W.T + b) / n)
            out[symbols == el] = x[:, 0] + self.offset[el]
        return out

    def forces(self, atoms, atoms_idx, h=1e-3) -> np.ndarray:
        """−∂E/∂r by 4-point central differences for the atoms ``atoms_idx``."""
        out = np.zeros((len(atoms_idx), 3))
        for n, i in enumerate(atoms_idx):
            for c in range(3):
                e = {}
                for step in (-2, -1, 1, 2):
                    moved = atoms.copy()
                    moved.positions[i, c] += step * h
                    e[step] = self.atomic_energies(moved).sum()
                out[n, c] = -(e[-2] - 8 * e[-1] + 8 * e[1] - e[2]) / (12 * h)
        return out


def _energy_forces(model, atoms):
    a = atoms.copy()
    a.calc = MeltpotCalculator(model)
    return a.get_potential_energies(), a.get_forces()


def _body(path, keys=None):
    rows = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return [ln for ln in rows if keys is None or ln.split()[0] in keys]


def _values(path):
    return [float(ln.split()[0]) for ln in _body(path)]


def _check_against_reference(pot, model, n_fd=3, tol_e=1e-12, tol_f=1e-10):
    e_ref = pot.atomic_energies(pot.frame)
    e, f = _energy_forces(model, pot.frame)
    de = float(np.abs(e - e_ref).max())
    assert de < tol_e * max(1.0, np.abs(e_ref).max()), de
    assert np.ptp(e_ref) > 1e-3                                   # the networks do something
    idx = list(range(0, len(pot.frame), max(1, len(pot.frame) // n_fd)))[:n_fd]
    f_ref = pot.forces(pot.frame, idx)
    df = float(np.abs(f[idx] - f_ref).max())
    assert np.abs(f_ref).max() > 1e-2 and df < tol_f * max(1.0, np.abs(f_ref).max()), df
    return de, df


# ------------------------------------------------------------------------------ every activation
@pytest.mark.parametrize("letter", list(FORMULAS))
def test_every_n2p2_activation_imports_and_exports_unchanged(letter, tmp_path):
    """``global_activation_short X X X`` (the output letter too): the import evaluates n2p2's
    energies (output linear, as n2p2) and forces, and exports the same network keys and weights."""
    pot = Potential(["Al"], [letter] * 3, [6, 4], seed=2)
    d = pot.write(tmp_path / "n2p2")
    res = import_n2p2(d, tmp_path / "imported.pt")
    model = load_model(tmp_path / "imported.pt")
    assert model.activation == NAMES[letter] and model.hidden == (6, 4)
    assert torch.load(tmp_path / "imported.pt", weights_only=True)["version"] == 1   # as before: one name
    assert model.metadata["n2p2"] == {"output_letter": letter, "global_nodes_short": [6, 4]}
    _check_against_reference(pot, model)
    assert res["potential"].layer_letters == [letter, letter, "l"]
    G = pot.features(pot.frame)["Al"]                          # the reader's own numpy evaluation agrees
    np.testing.assert_allclose(n2p2_atomic_energies(res["potential"], "Al", G), pot.atomic_energies(pot.frame),
                               rtol=1e-13, atol=1e-13)
    write_n2p2(model, tmp_path / "again", pot.lo, pot.hi)
    assert _body(tmp_path / "again" / "input.nn", NETWORK_KEYS) == _body(d / "input.nn", NETWORK_KEYS)
    assert _body(tmp_path / "again" / "weights.013.data") == _body(d / "weights.013.data")
    np.testing.assert_array_equal(_values(tmp_path / "again" / "scaling.data"), _values(d / "scaling.data"))


def test_mixed_letters_give_a_per_layer_activation(tmp_path):
    """Different letters per hidden layer: one meltpot name per layer (the output linear)."""
    pot = Potential(["Al"], ["c", "p", "h", "l"], [5, 6, 3], seed=4)
    model = model_from_n2p2(read_n2p2(pot.write(tmp_path / "n2p2")))
    assert model.activation == ["cos", "softplus", "harmonic", "linear"]
    _check_against_reference(pot, model)
    save_model(model, tmp_path / "m.pt")
    back = load_model(tmp_path / "m.pt")
    assert back.activation == model.activation and back.describe() == model.describe()
    # version 2: readers of version 1 (one activation name) say so instead of failing to build it
    assert torch.load(tmp_path / "m.pt", weights_only=True)["version"] == 2
    write_n2p2(back, tmp_path / "again", pot.lo, pot.hi)
    assert _body(tmp_path / "again" / "input.nn", NETWORK_KEYS) == _body(tmp_path / "n2p2" / "input.nn", NETWORK_KEYS)
    assert _body(tmp_path / "again" / "weights.013.data") == _body(tmp_path / "n2p2" / "weights.013.data")


def test_normalize_nodes_is_folded_into_the_weights(tmp_path, capsys):
    """``normalize_nodes``: every layer's pre-activation divided by the previous layer's size; the
    import folds 1/n into W and b (the same energies and forces), the export writes those weights
    without the keyword (an equivalent potential, read back with the same energies)."""
    from meltpot.cli import main

    pot = Potential(["Al", "Ni"], ["t", "p", "l"], [6, 4], element_nodes=[("Al", 2, 5)], seed=8, weight_scale=1.5,
                    normalize=True)
    d = pot.write(tmp_path / "n2p2")
    assert read_n2p2(d).normalize_nodes
    assert main(["model", "import", "n2p2", str(d), "--out", str(tmp_path / "m.pt")]) == 0
    assert "normalize_nodes folded into the weights" in capsys.readouterr().out
    model = load_model(tmp_path / "m.pt")
    assert model.metadata["imported_from"]["normalize_nodes"] is True
    _check_against_reference(pot, model)
    write_n2p2(model, tmp_path / "again", pot.lo, pot.hi)
    again = read_n2p2(tmp_path / "again")
    assert not again.normalize_nodes and "normalize_nodes" not in (tmp_path / "again" / "input.nn").read_text()
    G = pot.features(pot.frame)
    symbols = np.array(pot.frame.get_chemical_symbols())
    for el in ("Al", "Ni"):
        ref = pot.atomic_energies(pot.frame)[symbols == el]
        for p in (again, read_n2p2(d)):           # the export without the keyword; the original with it
            np.testing.assert_allclose(n2p2_atomic_energies(p, el, G[el]), ref, rtol=1e-13, atol=1e-13)


# ------------------------------------------------------------------------------ element topologies
@pytest.fixture(scope="module")
def alni(tmp_path_factory):
    """Al–Ni with Ni's hidden layers 9 and 3 instead of 7 and 5 (element_nodes_short), hidden
    letters s g, output letter t (ignored by n2p2), imported."""
    root = tmp_path_factory.mktemp("alni")
    pot = Potential(["Al", "Ni"], ["s", "g", "t"], [7, 5], element_nodes=[("Ni", 1, 9), ("Ni", 2, 3)], seed=6)
    d = pot.write(root / "n2p2")
    import_n2p2(d, root / "imported.pt")
    return pot, d, load_model(root / "imported.pt")


def test_element_topology_imports_with_its_energies_and_forces(alni):
    pot, d, model = alni
    assert model.hidden == {"Al": (7, 5), "Ni": (9, 3)}
    assert model.activation == ["logistic", "gaussian", "linear"]
    assert [n.layers[1].weight.shape[0] for n in model.nets] == [5, 3]
    assert model.describe()["hidden"] == {"Al": [7, 5], "Ni": [9, 3]}
    assert model.architecture_text() == "Al 7-5, Ni 9-3 logistic gaussian linear"
    _check_against_reference(pot, model, n_fd=4)


def test_cli_names_the_topology_and_the_ignored_output_letter(alni, tmp_path, capsys):
    from meltpot.cli import main

    _, d, model = alni
    assert main(["model", "import", "n2p2", str(d), "--out", str(tmp_path / "m.pt")]) == 0
    out = capsys.readouterr().out
    assert "Al 7-5, Ni 9-3 logistic gaussian linear" in out
    assert "output layer's letter 't' is evaluated as l (linear)" in out
    assert load_model(tmp_path / "m.pt").describe() == model.describe()
    assert torch.load(tmp_path / "m.pt", weights_only=True)["version"] == 2     # per-element sizes


def test_element_topology_exports_the_same_files(alni, tmp_path):
    pot, d, model = alni
    paths = write_n2p2(model, tmp_path / "again", pot.lo, pot.hi)
    assert _body(paths["input.nn"], NETWORK_KEYS) == _body(d / "input.nn", NETWORK_KEYS)
    assert "element_nodes_short Ni 1 9" in paths["input.nn"].read_text()
    for el in ("Al", "Ni"):
        name = f"weights.{Z[el]:03d}.data"
        assert _body(tmp_path / "again" / name) == _body(d / name)
    np.testing.assert_array_equal(_values(tmp_path / "again" / "scaling.data"), _values(d / "scaling.data"))
    # and a meltpot export of its own is read back as the same model, file for file
    back = model_from_n2p2(read_n2p2(tmp_path / "again"))
    paths2 = write_n2p2(back, tmp_path / "third", pot.lo, pot.hi)
    for p in ("input.nn", "scaling.data", "weights.013.data", "weights.028.data"):
        assert _body(tmp_path / "third" / p) == _body(tmp_path / "again" / p), p
    assert paths2["weights"]["Ni"].name == "weights.028.data"


def test_global_sizes_are_chosen_per_layer_by_the_writer(alni, tmp_path):
    """Without the imported file's global line: the elements' most common size per layer, a tie
    going to the lighter element; the other element gets element_nodes_short lines."""
    pot, d, model = alni
    fresh = HDNNP(model.featureset, hidden={"Ni": [9, 5], "Al": [7, 5]}, activation="tanh")
    assert fresh.hidden == {"Al": (7, 5), "Ni": (9, 5)}
    text = write_n2p2(fresh, tmp_path / "w", pot.lo, pot.hi)["input.nn"].read_text()
    assert "global_nodes_short 7 5\nelement_nodes_short Ni 1 9\nglobal_activation_short t t l\n" in text
    back = read_n2p2(tmp_path / "w")
    assert back.element_hidden == {"Al": [7, 5], "Ni": [9, 5]}
    same = HDNNP(model.featureset, hidden={"Al": [4], "Ni": [4]})
    assert same.hidden == (4,)


def test_element_nodes_short_errors_name_file_line_and_keyword(alni, tmp_path):
    pot, _, _ = alni
    for line, message in [("element_nodes_short Cu 1 4", "element 'Cu' is not in the elements line"),
                          ("element_nodes_short Ni 3 4", "layer 3: only hidden layers 1 … 2"),
                          ("element_nodes_short Ni 0 4", "layer 0: only hidden layers"),
                          ("element_nodes_short Ni 1", "needs an element, a hidden layer"),
                          ("element_nodes_short Ni 1 x", "'x' is not an integer")]:
        d = pot.write(tmp_path / line.replace(" ", "_"))
        text = (d / "input.nn").read_text().replace("element_nodes_short Ni 2 3", line)
        (d / "input.nn").write_text(text)
        n = text.splitlines().index(line) + 1
        with pytest.raises(MeltpotError, match=rf"input\.nn, line {n}: element_nodes_short: {message}"):
            read_n2p2(d)


def test_element_topology_model_trains_and_takes_an_agl_step(alni, tmp_path):
    """A short training run and one λ step of the AGL path (shrinking the input layers) keep the
    per-element topology; the results are model files that load with it."""
    from meltpot.selection.path import SelectionSettings, lambda_path
    from meltpot.train.data import EnergyDataset
    from meltpot.train.settings import TrainSettings
    from meltpot.train.trainer import Trainer

    pot, _, imported = alni
    model = HDNNP(imported.featureset, hidden=imported.hidden, activation=imported.activation)
    model.load_state_dict(imported.state_dict())
    rng = np.random.default_rng(9)
    frames = [_frame(rng, "alni") for _ in range(8)]
    G = [AtomsDescriptor(model.featureset).per_element(f) for f in frames]
    symbols = [np.array(f.get_chemical_symbols()) for f in frames]

    def dataset(ids):
        feats = [np.concatenate([G[i][el] for i in ids]) for el in model.elements]
        rows = [np.concatenate([np.full((symbols[i] == el).sum(), n) for n, i in enumerate(ids)])
                for el in model.elements]
        energy = [pot.atomic_energies(frames[i]).sum() + 0.01 * rng.normal() for i in ids]
        return EnergyDataset.from_arrays(model.elements, feats, rows, energy)

    train, val = dataset(range(6)), dataset(range(6, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = TrainSettings(max_epochs=3, batch_size=2, progress=False, log_every=10_000)
    Trainer(model, settings, train, val).fit()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [n.layers[1].weight.shape[0] for n in model.nets] == [5, 3]
    sel = SelectionSettings(lambdas=[1e-3], gl_epochs=2, agl_epochs=2, retrain_epochs=2)
    table = lambda_path(model, train, val, settings, sel, out_dir=tmp_path / "path", stop_after=0)
    assert len(table) == 1 and np.isfinite(table["val_rmse_retrained"].iloc[0])
    for name in ("gl.pt", "agl.pt", "retrained.pt"):
        m = load_model(tmp_path / "path" / "lambda_00" / name)
        assert m.hidden == {"Al": (7, 5), "Ni": (9, 3)} and m.activation == ["logistic", "gaussian", "linear"]
        kept = json.loads(table["kept"].iloc[0])
        assert m.n_features == [len(kept[el]) for el in m.elements]


def test_element_topology_model_exports_to_torchscript_and_mliap(alni, tmp_path):
    from meltpot.export.mliap import read_mliap, write_mliap
    from meltpot.export.torchscript import check_export, load_torchscript, script_potential, write_torchscript

    _, _, model = alni
    assert check_export(script_potential(model), model) < 5e-9
    path = write_torchscript(model, tmp_path / "ts.pt")
    assert load_torchscript(path).elements == ["Al", "Ni"]
    write_mliap(model, tmp_path / "m.pkl")
    assert read_mliap(tmp_path / "m.pkl").model.hidden == model.hidden


def test_element_topology_model_in_the_lammps_plugin(alni, tmp_path):
    """The imported Al–Ni model (per-element sizes, logistic/gaussian layers) through TorchScript
    in LAMMPS's meltpot pair style (serial): the Python model's numbers (as the plugin tests)."""
    from lammps_points import python_reference, rel, single_point
    from meltpot.export.torchscript import write_torchscript
    from meltpot.plugin.build import build_plugin, pair_commands

    _, _, model = alni
    export = write_torchscript(model, tmp_path / "ts.pt")
    atoms = _frame(np.random.default_rng(11), "alni")
    lmp = single_point(tmp_path / "lmp", atoms, pair_commands(export, ["Al", "Ni"], plugin=build_plugin()),
                       ["Al", "Ni"])
    ref = python_reference(model, lmp["atoms"])
    assert abs(lmp["energy"] - ref["energy"]) / abs(ref["energy"]) < 1e-10
    assert rel(lmp["energies"], ref["energies"]) < 1e-10
    assert rel(lmp["forces"], ref["forces"]) < 1e-9 and np.abs(ref["forces"]).max() > 1e-2
    assert rel(lmp["stress"], ref["stress"]) < 1e-9


def test_numpy_reference_activations_follow_n2p2_formulas():
    """meltpot.export.n2p2's reference evaluation against this file's formulas, and n2p2's
    EXP_LIMIT branches of s and p beyond |x| = 35."""
    from meltpot.export.n2p2 import EXP_LIMIT, _activate

    x = np.linspace(-30.0, 30.0, 601)
    for letter, f in FORMULAS.items():
        np.testing.assert_allclose(_activate(letter, x), f(x), rtol=1e-14, atol=1e-300, err_msg=letter)
    big = np.array([-40.0, -EXP_LIMIT - 1e-9, EXP_LIMIT + 1e-9, 40.0])
    np.testing.assert_array_equal(_activate("s", big), [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(_activate("p", big), [0.0, 0.0, big[2], 40.0])
    with pytest.raises(MeltpotError, match="letter 'x' unknown"):
        _activate("x", x)


# ------------------------------------------------------------------------------ meltpot's own per-layer models
def test_a_non_linear_output_layer_runs_everywhere_but_n2p2(tmp_path):
    """A per-layer activation with a non-linear output: the network is f_out(W h + b) (checked by
    hand), it survives a model file and TorchScript, and the n2p2 writer refuses it with why."""
    from meltpot.export.torchscript import check_export, script_potential

    pot = Potential(["Al"], ["t", "t", "l"], [6, 4], seed=3)
    model = HDNNP(pot.fs, hidden=(6, 4), activation=["relu", "tanh", "harmonic"])
    x = torch.randn(5, pot.fs.n_features("Al"), dtype=torch.float64)
    net = model.nets[0]
    hand = torch.relu(net.layers[0](x))
    hand = torch.tanh(net.layers[1](hand))
    hand = net.layers[2](hand).squeeze(-1) ** 2
    torch.testing.assert_close(net(x), hand, rtol=0, atol=0)
    save_model(model, tmp_path / "m.pt")
    back = load_model(tmp_path / "m.pt")
    assert back.activation == ["relu", "tanh", "harmonic"]
    torch.testing.assert_close(back.nets[0](x), hand, rtol=0, atol=0)
    assert check_export(script_potential(model), model) < 5e-9
    with pytest.raises(MeltpotError, match="output layer's activation 'harmonic' has no n2p2 equivalent"):
        write_n2p2(model, tmp_path / "n2p2", pot.lo, pot.hi)
    assert not (tmp_path / "n2p2" / "input.nn").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"activation": ["tanh", "linear"]}, "2 names for 2 hidden layers"),
    ({"activation": "swish"}, "activation 'swish' unknown"),
    ({"hidden": {"Al": [4]}}, r"missing \['Ni'\]"),
    ({"hidden": {"Al": [4], "Ni": [4], "Cu": [4]}}, r"not in the model \['Cu'\]"),
])
def test_bad_architectures_are_refused(kwargs, message):
    fs = FeatureSet.from_generic(_generic(), ["Al", "Ni"], name="x")
    with pytest.raises(ConfigError, match=message):
        HDNNP(fs, **{"hidden": (4, 4), **kwargs})


def test_depths_differing_per_element_are_not_n2p2(tmp_path):
    pot = Potential(["Al", "Ni"], ["t", "t", "l"], [4, 4], seed=1)
    model = HDNNP(pot.fs, hidden={"Al": [4, 4], "Ni": [6]}, activation="tanh")
    assert model.hidden == {"Al": (4, 4), "Ni": (6,)}
    assert check_export_ok(model)
    with pytest.raises(MeltpotError, match=r"networks have \[1, 2\] hidden layers"):
        write_n2p2(model, tmp_path / "n2p2", pot.lo, pot.hi)


def check_export_ok(model) -> bool:
    from meltpot.export.torchscript import check_export, script_potential

    return check_export(script_potential(model), model) < 5e-9


def test_config_accepts_per_element_sizes_and_per_layer_activations():
    from pathlib import Path

    import yaml

    from meltpot.config import validate_config

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    raw["model"] = {"hidden": {"Al": [10, 10], "Ni": [15, 10]}, "activation": ["tanh", "negexp", "linear"]}
    cfg = validate_config(raw)
    assert cfg["model"]["hidden"] == {"Al": [10, 10], "Ni": [15, 10]}
    assert cfg["model"]["activation"] == ["tanh", "negexp", "linear"]
    raw["model"] = {"activation": ["tanh", "swish"]}
    with pytest.raises(ConfigError, match="model.activation"):
        validate_config(raw)
