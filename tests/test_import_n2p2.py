"""`meltpot model import n2p2`: trained n2p2 potentials as meltpot models.

Checked against the models they were exported from (energies and forces through the ASE
calculator), against the reader's own n2p2 evaluation, and for files that use n2p2 features the
exporter never writes — normalisation (mean_energy, conv_energy, conv_length) and other scaling
modes — by rewriting an export into an equivalent potential by hand (the weights transformed so
that the physical energies stay the same) and importing that.
"""
from __future__ import annotations

import numpy as np
import pytest

from meltpot.cli import main
from meltpot.descriptors.compute import AtomsDescriptor
from meltpot.errors import MeltpotError
from meltpot.export.n2p2 import N2p2FormatError, _weights_text, n2p2_atomic_energies, read_n2p2, write_n2p2
from meltpot.export.n2p2_import import import_n2p2, model_from_n2p2
from meltpot.model import load_model
from meltpot.model.calculator import MeltpotCalculator
from test_export_n2p2 import CASES, _bounds, _edit, _frame, _generic, _model

from meltpot.descriptors.featureset import FeatureSet


def _export(case, tmp_path):
    elements, cutoff, activation, kind = CASES[case]
    frame = _frame(np.random.default_rng(1), kind)
    fs = FeatureSet.from_generic(_generic(), elements, cutoff=cutoff, name="m")
    model = _model(fs, frame, activation=activation)
    model.units = "lj" if kind == "lj" else "metal"
    write_n2p2(model, tmp_path / "n2p2", *_bounds(model, frame))
    return model, frame, tmp_path / "n2p2"


def _energy_forces(model, frame):
    atoms = frame.copy()
    atoms.calc = MeltpotCalculator(model)
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_potential_energies()


def _same(a, b, rtol=1e-12):
    (e1, f1, ea1), (e2, f2, ea2) = a, b
    assert e2 == pytest.approx(e1, rel=rtol, abs=1e-12)
    np.testing.assert_allclose(f2, f1, rtol=0, atol=rtol * max(1.0, np.abs(f1).max()))
    np.testing.assert_allclose(ea2, ea1, rtol=0, atol=rtol * max(1.0, np.abs(ea1).max()))


def _body(path):
    """The lines n2p2 reads (comments dropped)."""
    return [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_through_n2p2(case, tmp_path):
    model, frame, d = _export(case, tmp_path)
    res = import_n2p2(d, tmp_path / "imported.pt")
    back = load_model(tmp_path / "imported.pt")
    assert back.units == model.units and back.elements == sorted(model.elements, key=back.elements.index)
    _same(_energy_forces(model, frame), _energy_forces(back, frame),
          rtol=1e-12 if model.activation in ("tanh", "logistic") else 1e-11)
    assert res["potential"].scaling_type == "sigma"
    if model.activation in ("tanh", "logistic"):   # the same files again (shifted softplus comes back as softplus)
        write_n2p2(back, tmp_path / "again", *_bounds(back, frame))
        assert _body(tmp_path / "again" / "input.nn") == _body(d / "input.nn")
        assert _body(tmp_path / "again" / "scaling.data") == _body(d / "scaling.data")
        for w in d.glob("weights.*.data"):
            assert _body(tmp_path / "again" / w.name) == _body(w)


def test_normalised_potential(tmp_path):
    """mean_energy/conv_energy/conv_length as nnp-norm writes them: the network's output is in
    normalised units; the import gives the physical energies and forces."""
    model, frame, d = _export("AlNi-softplus-cosine", tmp_path)
    pot = read_n2p2(d)
    mean, conv_e, conv_l = -2.25, 37.5, 1.7
    for el in pot.elements:           # output' = (output − mean)·conv_energy: the same physical energies
        layers = [(W.copy(), b.copy()) for W, b in pot.layers[el]]
        W, b = layers[-1]
        layers[-1] = (W * conv_e, (b - mean) * conv_e)
        (d / f"weights.{'013' if el == 'Al' else '028'}.data").write_text(_weights_text(el, layers))
    _edit(d / "input.nn", "number_of_elements", f"mean_energy {mean!r}\nconv_energy {conv_e!r}\n"
                                                f"conv_length {conv_l!r}\nnumber_of_elements")
    norm = read_n2p2(d)
    assert (norm.mean_energy, norm.conv_energy, norm.conv_length) == (mean, conv_e, conv_l)
    G = AtomsDescriptor(model.featureset).per_element(frame)
    from meltpot.export.n2p2 import n2p2_columns

    for el in pot.elements:           # the reader's evaluation is unchanged by the rewrite
        cols = G[el][:, n2p2_columns(pot, el, model.featureset.per_element[el])]
        np.testing.assert_allclose(n2p2_atomic_energies(norm, el, cols), n2p2_atomic_energies(pot, el, cols),
                                   rtol=1e-13)
    back = model_from_n2p2(norm)
    _same(_energy_forces(model, frame), _energy_forces(back, frame), rtol=1e-11)


@pytest.mark.parametrize("mode", ["none", "scale"])
def test_other_scaling_modes(mode, tmp_path):
    """Files scaled as n2p2 also allows: no scaling (x = G), or min/max scaling to [S_min, S_max]
    = [−1, 1]; the first layer rewritten so the network computes the same function."""
    model, frame, d = _export("Al-tanh-polynomial", tmp_path)
    pot = read_n2p2(d)
    (W, b), *rest = pot.layers["Al"]
    mn, mx, mu, sigma = pot.scaling["Al"].T
    if mode == "none":               # x_sigma = (G − μ)/σ
        W2, b2 = W / sigma, b - (W / sigma) @ mu
        _edit(d / "input.nn", "scale_symmetry_functions_sigma\nscale_min_short 0.0\nscale_max_short 1.0\n", "")
    else:                            # x' = −1 + 2(G − min)/(max − min)
        a = (mx - mn) / (2 * sigma)
        W2, b2 = W * a, b + W @ ((mn + (mx - mn) / 2 - mu) / sigma)
        _edit(d / "input.nn", "scale_symmetry_functions_sigma\nscale_min_short 0.0\nscale_max_short 1.0\n",
              "scale_symmetry_functions\nscale_min_short -1.0\nscale_max_short 1.0\n")
    (d / "weights.013.data").write_text(_weights_text("Al", [(W2, b2), *rest]))
    assert read_n2p2(d).scaling_type == mode
    back = model_from_n2p2(read_n2p2(d))
    _same(_energy_forces(model, frame), _energy_forces(back, frame), rtol=1e-11)


@pytest.mark.parametrize("edit, message", [
    (("global_activation_short t t l", "global_activation_short t t l\nelement_activation_short Al 1 1 t"),
     "element_activation_short: not an n2p2 keyword"),
    (("global_activation_short t t l", "global_activation_short t t l\nelement_hidden_layers_short Al 3"),
     "element_hidden_layers_short: not an n2p2 keyword"),
])
def test_what_meltpot_cannot_represent_is_refused(edit, message, tmp_path):
    _, _, d = _export("Al-tanh-polynomial", tmp_path)
    _edit(d / "input.nn", *edit)
    with pytest.raises(MeltpotError, match=message):
        import_n2p2(d, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_partial_normalisation_names_the_missing_keywords(tmp_path):
    _, _, d = _export("Al-tanh-polynomial", tmp_path)
    _edit(d / "input.nn", "number_of_elements", "conv_energy 2.0\nnumber_of_elements")
    with pytest.raises(N2p2FormatError, match=r"input\.nn, line \d+: conv_energy: normalisation needs all of "
                                              r"mean_energy, conv_energy, conv_length; missing mean_energy, conv_length"):
        read_n2p2(d)


def test_cli(tmp_path, capsys):
    model, frame, d = _export("lj-Ar-tanh-cosine", tmp_path)
    assert main(["model", "import", "n2p2", str(d), "--out", str(tmp_path / "m.pt")]) == 0
    out = capsys.readouterr().out
    assert "elements Ar" in out and "scaling sigma" in out and "units lj" in out
    back = load_model(tmp_path / "m.pt")
    _same(_energy_forces(model, frame), _energy_forces(back, frame))
    from meltpot.descriptors.featureset import load_featureset

    fs = load_featureset(tmp_path / "m.featureset.yaml")      # for a descriptor cache of the model's functions
    assert fs.content_hash() == back.featureset.content_hash() and "m.featureset.yaml" in out


def test_symfunction_lines_to_and_from_a_feature_set(tmp_path, capsys):
    """al-thesis for Al–Ni as n2p2 lines and back: the same functions, the same lines again; an
    angular pair written either way round is one function."""
    from meltpot.descriptors.featureset import load_featureset
    from meltpot.export.n2p2 import featureset_from_n2p2

    assert main(["descriptors", "featureset", "--preset", "al-thesis", "--elements", "Al", "Ni", "--out",
                 str(tmp_path / "fs.yaml"), "--n2p2-lines", str(tmp_path / "sf.nn")]) == 0
    text = (tmp_path / "sf.nn").read_text()
    assert text.count("symfunction_short Al ") == text.count("symfunction_short Ni ") == 54
    assert "cutoff_type 6 0.0" in text
    assert main(["descriptors", "featureset", "--n2p2", str(tmp_path / "sf.nn"), "--out", str(tmp_path / "back.yaml"),
                 "--n2p2-lines", str(tmp_path / "again.nn")]) == 0
    fs, back = load_featureset(tmp_path / "fs.yaml"), load_featureset(tmp_path / "back.yaml")
    assert back.cutoff == "polynomial" and back.elements == ["Al", "Ni"]
    for el in ("Al", "Ni"):
        assert set(back.per_element[el]) == set(fs.per_element[el])
    assert _body(tmp_path / "again.nn") == _body(tmp_path / "sf.nn")
    # (Ni, Al) and (Al, Ni): one function, so both lines are a duplicate
    line = next(ln for ln in text.splitlines() if ln.startswith("symfunction_short Al 3 Al Ni"))
    w = line.split()
    swapped = " ".join(w[:3] + [w[4], w[3]] + w[5:])
    (tmp_path / "dup.nn").write_text(f"cutoff_type 6 0.0\n{line}\n{swapped}\nsymfunction_short Ni 2 Al 0.1 0.0 6.8\n")
    with pytest.raises(N2p2FormatError, match=r"dup\.nn, line 3: symfunction_short: element Al: this function is "
                                              r"given twice"):
        featureset_from_n2p2(tmp_path / "dup.nn")
    (tmp_path / "odd.nn").write_text("cutoff_type 9 0.0\n" + line + "\n")
    with pytest.raises(N2p2FormatError, match=r"odd\.nn, line 1: cutoff_type: 9 is not an n2p2 cutoff type"):
        featureset_from_n2p2(tmp_path / "odd.nn")
    (tmp_path / "odd.nn").write_text("cutoff_type 4 1.0\n" + line + "\n")
    with pytest.raises(N2p2FormatError, match=r"odd\.nn, line 1: cutoff_type: alpha 1\.0 outside \[0, 1\)"):
        featureset_from_n2p2(tmp_path / "odd.nn")


def test_imported_potential_as_a_sampling_reference(tmp_path):
    """The imported model labels and samples as a reference engine (ASE engine with the meltpot
    calculator): MD frames whose labels equal a direct evaluation of the original model."""
    from ase.build import bulk

    from meltpot.reference import MDSegment
    from meltpot.reference.ase_engine import AseEngine

    model, frame, d = _export("Al-tanh-polynomial", tmp_path)
    import_n2p2(d, tmp_path / "imported.pt")
    engine = AseEngine(["Al"], calculator="meltpot.model.calculator:MeltpotCalculator",
                       kwargs={"model": str(tmp_path / "imported.pt")})
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    frames = list(engine.md(atoms, [MDSegment("nvt", 600.0, 6, 0.002, sample_every=3)], seed=2))
    assert [f.info["step"] for _, f in frames] == [3, 6]
    for _, f in frames:
        _same(_energy_forces(model, f), (f.get_potential_energy(), f.get_forces(), _energy_forces(model, f)[2]))
