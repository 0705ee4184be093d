"""DeePMD npy folders and ASE databases in and out, checked against dpdata and ase.db
themselves (independent readers and writers), with energies, forces and virials."""
from __future__ import annotations


import numpy as np
import pytest
from ase.build import bulk
from ase.stress import voigt_6_to_full_3x3_stress

from meltpot.cli import main
from meltpot.data.frames import attach_labels, labels
from meltpot.data.io import guess_format, read_frames, write_frames
from meltpot.errors import FrameError

dpdata = pytest.importorskip("dpdata")


def _frames(n=4, seed=0, alloy=True):
    """Labelled frames of a small Al(–Ni) cell with made-up but consistent labels."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
        if alloy:
            atoms.symbols[[1, 5]] = "Ni"
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        atoms.cell[0, 1] = 0.2 * k
        s = rng.normal(0, 0.01, 6)
        attach_labels(atoms, -3.3 * len(atoms) + rng.normal(), rng.normal(0, 0.5, (len(atoms), 3)), s,
                      T=900.0 + k, phase="liquid")
        out.append(atoms)
    return out


def _same(a, b, stress=True):
    assert a.get_chemical_symbols() == b.get_chemical_symbols()
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.cell.array, a.cell.array, rtol=0, atol=1e-12)
    la, lb = labels(a), labels(b)
    assert float(lb["energy"]) == pytest.approx(float(la["energy"]), abs=1e-12)
    np.testing.assert_allclose(lb["forces"], la["forces"], rtol=0, atol=1e-12)
    if stress:
        np.testing.assert_allclose(lb["stress"], la["stress"], rtol=0, atol=1e-14)


def test_deepmd_round_trip_and_dpdata_reads_it(tmp_path):
    frames = _frames()
    write_frames(tmp_path / "dp", frames, format="deepmd-npy")
    assert guess_format(tmp_path / "dp") == "deepmd-npy"
    back = read_frames(tmp_path / "dp")
    assert len(back) == 4 and back[2].info["source_index"] == 2
    for a, b in zip(frames, back):
        _same(a, b)
    system = dpdata.LabeledSystem(str(tmp_path / "dp"), fmt="deepmd/npy")   # dpdata's own reader
    assert system.get_nframes() == 4 and system["atom_names"] == ["Al", "Ni"]
    for k, a in enumerate(frames):
        lab = labels(a)
        assert system["energies"][k] == pytest.approx(float(lab["energy"]), abs=1e-12)
        np.testing.assert_allclose(system["forces"][k], lab["forces"], atol=1e-12)
        sigma = voigt_6_to_full_3x3_stress(lab["stress"])     # virial = −V σ (ASE sign)
        np.testing.assert_allclose(system["virials"][k], -sigma * a.get_volume(), atol=1e-12)


def test_deepmd_written_by_dpdata_reads_back(tmp_path):
    """dpdata's ASE route (its own virial convention) writes; meltpot reads the same labels."""
    frames = _frames(3, seed=1)
    from ase.calculators.singlepoint import SinglePointCalculator

    systems = None
    for a in frames:
        c = a.copy()
        lab = labels(a)
        c.calc = SinglePointCalculator(c, energy=float(lab["energy"]), forces=lab["forces"], stress=lab["stress"])
        s = dpdata.LabeledSystem(c, fmt="ase/structure")
        systems = s if systems is None else systems + s
    systems.to("deepmd/npy", str(tmp_path / "dp"))
    back = read_frames(tmp_path / "dp", format="deepmd-npy")
    assert len(back) == 3
    for a, b in zip(frames, back):
        la, lb = labels(a), labels(b)
        assert float(lb["energy"]) == pytest.approx(float(la["energy"]), abs=1e-10)
        np.testing.assert_allclose(lb["forces"], la["forces"], atol=1e-10)
        np.testing.assert_allclose(lb["stress"], la["stress"], atol=1e-12)


def test_deepmd_several_compositions_become_several_systems(tmp_path):
    frames = _frames(2) + _frames(2, seed=3, alloy=False)
    write_frames(tmp_path / "multi", frames, format="deepmd-npy")
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == ["sys.000", "sys.001"]
    back = read_frames(tmp_path / "multi")
    assert [a.get_chemical_formula() for a in back] == [a.get_chemical_formula() for a in frames]
    # a folder that is not DeePMD data is never replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FrameError, match="not overwritten"):
        write_frames(tmp_path / "mine", frames, format="deepmd-npy")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_deepmd_bad_data_names_the_file(tmp_path):
    write_frames(tmp_path / "dp", _frames(2), format="deepmd-npy")
    np.save(tmp_path / "dp" / "set.000" / "force.npy", np.zeros((2, 5)))
    with pytest.raises(FrameError, match=r"set\.000/force\.npy.*shape \(2, 5\), expected \(2, 24\)"):
        read_frames(tmp_path / "dp")
    (tmp_path / "dp" / "type.raw").write_text("0\n7\n")
    with pytest.raises(FrameError, match=r"type\.raw.*do not fit type_map\.raw"):
        read_frames(tmp_path / "dp")


def test_ase_db_round_trip_and_ase_reads_it(tmp_path):
    import ase.db

    frames = _frames()
    write_frames(tmp_path / "frames.db", frames)
    back = read_frames(tmp_path / "frames.db")
    for a, b in zip(frames, back):
        _same(a, b)
        assert b.info["T"] == a.info["T"] and b.info["phase"] == "liquid"
    rows = list(ase.db.connect(str(tmp_path / "frames.db")).select())     # ASE's own reader
    assert [r.T for r in rows] == [900.0, 901.0, 902.0, 903.0]
    np.testing.assert_allclose(rows[1].forces, labels(frames[1])["forces"], atol=0)
    # written again: replaced whole, not appended
    write_frames(tmp_path / "frames.db", frames[:2])
    assert len(read_frames(tmp_path / "frames.db")) == 2
    # a database under another name is recognised by its SQLite header
    (tmp_path / "frames.db").rename(tmp_path / "frames.sqlite")
    assert guess_format(tmp_path / "frames.sqlite") == "ase-db"


def test_ase_db_rows_without_labels_and_broken_files(tmp_path):
    import ase.db

    with ase.db.connect(str(tmp_path / "bare.db")) as db:
        db.write(bulk("Al"))
    with pytest.raises(FrameError, match=r"bare\.db.*frame 0.*no energy and forces"):
        read_frames(tmp_path / "bare.db")
    (tmp_path / "broken.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)
    with pytest.raises(FrameError, match=r"broken\.db"):
        read_frames(tmp_path / "broken.db")


def test_frames_convert_between_the_formats(tmp_path, capsys):
    frames = _frames(3)
    write_frames(tmp_path / "a.extxyz", frames)
    assert main(["frames", "convert", str(tmp_path / "a.extxyz"), str(tmp_path / "dp"),
                 "--output-format", "deepmd-npy"]) == 0
    assert main(["frames", "convert", str(tmp_path / "dp"), str(tmp_path / "b.db")]) == 0
    assert main(["frames", "convert", str(tmp_path / "b.db"), str(tmp_path / "c.extxyz")]) == 0
    for a, b in zip(frames, read_frames(tmp_path / "c.extxyz")):
        _same(a, b)
