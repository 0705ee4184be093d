"""Feature sets: presets, YAML round trip, element resolution, hashes, errors, grids."""

import pytest
import yaml

from meltpot.descriptors.featureset import (FeatureSet, SymmetryFunction, grid, load_featureset,
                                            preset_names)
from meltpot.errors import ConfigError


def test_thesis_presets_match_tables():
    assert {"al-thesis", "lj-thesis", "b-thesis"} <= set(preset_names())
    al = load_featureset("al-thesis", ["Al"])
    fns = al.per_element["Al"]
    assert len(fns) == 22 and sum(f.is_angular for f in fns) == 10
    assert al.cutoff == "polynomial" and al.cutoff_radius == 6.8
    # Table C.2 rows 7 and 22
    assert (fns[6].eta, fns[6].rs) == (1.85, 1.017)
    assert (fns[21].type, fns[21].eta, fns[21].zeta, fns[21].lam) == ("angular_narrow", 0.0013, 64.0, 1.0)
    lj = load_featureset("lj-thesis", ["Ar"]).per_element["Ar"]
    assert len(lj) == 22 and lj[11].rs == 2.3 and lj[-1].zeta == 16
    b = load_featureset("b-thesis", ["B"]).per_element["B"]
    assert len(b) == 60 and sum(f.rs == 4.85 for f in b) == 12


def test_element_resolution_for_alloys():
    fs = load_featureset("al-thesis", ["Al", "Ni"])
    # 12 radial × 2 neighbour elements + 10 angular × 3 unordered pairs
    assert fs.n_features("Al") == fs.n_features("Ni") == 54
    pairs = {f.neighbors for f in fs.per_element["Ni"] if f.is_angular}
    assert pairs == {("Al", "Al"), ("Al", "Ni"), ("Ni", "Ni")}
    assert fs.labels("Al")[0] == "G2(eta=0.0013,rs=0;Al)"


def test_yaml_round_trip_and_hash(tmp_path):
    fs = load_featureset("lj-thesis", ["Ar"])
    path = tmp_path / "fs.yaml"
    fs.save(path)
    back = load_featureset(path)
    assert back.per_element == fs.per_element and back.cutoff == fs.cutoff
    assert back.content_hash() == fs.content_hash()
    # every function carries its type explicitly on disk
    assert all("type" in f for f in yaml.safe_load(path.read_text())["per_element"]["Ar"])
    renamed = FeatureSet(fs.per_element, cutoff=fs.cutoff, name="other")
    assert renamed.content_hash() == fs.content_hash()
    assert FeatureSet(fs.per_element, cutoff="cosine").content_hash() != fs.content_hash()


def test_integer_parameters_save_and_load_with_the_same_hash(tmp_path):
    # zeta, lambda, eta, rc given as ints (as a user or n2p2 import writes them) must not change
    # the content hash after a YAML round trip (the saved file would otherwise not match its cache)
    fns = [SymmetryFunction("angular_narrow", eta=1, rc=6, zeta=1, lam=-1),
           SymmetryFunction("radial", eta=2, rc=6, rs=1)]
    fs = FeatureSet.from_generic(fns, ["Al"])
    fs.save(tmp_path / "int.yaml")
    back = load_featureset(tmp_path / "int.yaml")
    assert back.content_hash() == fs.content_hash()
    assert back.per_element == fs.per_element
    assert isinstance(fs.per_element["Al"][0].zeta, float)
    with pytest.raises(ConfigError, match="zeta must be a number"):
        SymmetryFunction("angular_narrow", eta=1, rc=6, zeta="x", lam=1)


def test_subset_keeps_order():
    fs = load_featureset("al-thesis", ["Al"])
    sub = fs.subset({"Al": [12, 0, 5]})
    assert [f.label() for f in sub.per_element["Al"]] == [fs.labels("Al")[i] for i in (0, 5, 12)]
    assert sub.content_hash() != fs.content_hash()


@pytest.mark.parametrize("bad, match", [
    ({"type": "G7", "eta": 1, "rc": 5}, "type 'G7' unknown"),
    ({"type": "angular_narrow", "eta": 1, "rc": 5, "zeta": 1, "lambda": 0.5}, "lambda"),
    ({"type": "angular_wide", "eta": 1, "rc": 5}, "needs zeta and lambda"),
    ({"type": "radial", "eta": 1, "rc": 5, "rs": 6}, "rs < rc"),
    ({"type": "radial", "eta": 1}, "missing rc"),
    ({"type": "radial", "eta": 1, "rc": 5, "sigma": 2}, "unknown key sigma"),
])
def test_bad_functions(bad, match):
    with pytest.raises(ConfigError, match=match):
        load_featureset({"functions": [bad]}, ["Al"])


def test_bad_sets(tmp_path):
    with pytest.raises(ConfigError, match="neither a file nor a preset"):
        load_featureset("al-thesys", ["Al"])
    with pytest.raises(ConfigError, match="Cu, not an element of the set"):
        FeatureSet({"Al": [SymmetryFunction("radial", eta=1, rc=5, neighbors=("Cu",))]})
    with pytest.raises(ConfigError, match="cutoff 'gauss' unknown"):
        load_featureset({"cutoff": "gauss", "functions": [{"type": "radial", "eta": 1, "rc": 5}]}, ["Al"])
    resolved = tmp_path / "r.yaml"
    load_featureset("al-thesis", ["Al"]).save(resolved)
    with pytest.raises(ConfigError, match="differ from the data"):
        load_featureset(resolved, ["Al", "Ni"])


def test_grid_generator():
    fs = grid(["Al", "Ni"], rc=6.0, n_radial=4, n_shifted=5, zetas=(1, 4), lambdas=(-1, 1))
    fns = fs.per_element["Al"]
    radial = [f for f in fns if not f.is_angular]
    assert len(radial) == (4 + 5) * 2 and len(fns) - len(radial) == 2 * 2 * 3
    shifted = sorted({f.rs for f in radial if f.rs > 0})
    assert len(shifted) == 5 and shifted[-1] < 6.0
    centred = sorted({f.eta for f in radial if f.rs == 0})
    assert len(centred) == 4 and centred[0] == pytest.approx(1 / (2 * 3.0**2))


def test_an_angular_pair_is_unordered():
    """(Al, Ni) and (Ni, Al) name the same angular function: listing both is a duplicate, and
    either spelling gives the same descriptor values."""
    import numpy as np
    from ase import Atoms

    from meltpot.descriptors.compute import AtomsDescriptor

    g = dict(type="angular_narrow", eta=0.01, rc=6.0, zeta=2.0, lam=-1.0)
    radial = [SymmetryFunction("radial", 0.1, 6.0, neighbors=(e,)) for e in ("Al", "Ni")]
    with pytest.raises(ConfigError, match=r"lists G.*twice.*unordered"):
        FeatureSet({"Al": radial + [SymmetryFunction(**g, neighbors=("Al", "Ni")),
                                    SymmetryFunction(**g, neighbors=("Ni", "Al"))], "Ni": radial})
    rng = np.random.default_rng(3)
    pos = np.array([[i, j, k] for i in range(3) for j in range(3) for k in range(3)], float) * 2.7
    atoms = Atoms(["Al", "Ni"] * 13 + ["Al"], positions=pos + rng.normal(0, 0.1, pos.shape), cell=[8.1] * 3, pbc=True)
    values = []
    for pair in (("Al", "Ni"), ("Ni", "Al")):
        fs = FeatureSet({el: radial + [SymmetryFunction(**g, neighbors=pair)] for el in ("Al", "Ni")})
        G, _ = AtomsDescriptor(fs).features(atoms)
        values.append(np.asarray(G))
    assert np.abs(values[0][:, -1]).max() > 0
    np.testing.assert_array_equal(values[0], values[1])


def test_lam_is_another_name_of_lambda():
    base = {"type": "angular_narrow", "eta": 0.01, "rc": 6.0, "zeta": 2}
    a = SymmetryFunction.from_dict({**base, "lambda": -1})
    assert SymmetryFunction.from_dict({**base, "lam": -1}) == a == SymmetryFunction(**base, lam=-1.0)
    assert a.to_dict()["lambda"] == -1.0 and "lam" not in a.to_dict()
    with pytest.raises(ConfigError, match="lambda 1 and lam -1 differ"):
        SymmetryFunction.from_dict({**base, "lambda": 1, "lam": -1})
