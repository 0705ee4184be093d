"""Reading and writing frames: extxyz, n2p2 input.data, VASP OUTCAR and vasprun.xml."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk

from meltpot.data.frames import TAG_KEYS, attach_labels, labels
from meltpot.data.io import (
    file_sha256,
    guess_format,
    read_frames,
    read_n2p2,
    write_frames,
    write_n2p2,
)
from meltpot.errors import FrameError

DATA = Path(__file__).parent / "data"
EXTXYZ = DATA / "AlNi_liquid.extxyz"
OUTCAR = DATA / "OUTCAR_Al4_md"
VASPRUN = DATA / "vasprun_Al4_md.xml"
N2P2_ATOMIC = DATA / "input.data"

# values written into the VASP fixtures (2 MD steps of Al4, Fermi smearing 0.17 eV)
VASP_TOTEN = [-14.91478567, -14.87654321]
VASP_SIGMA0 = [-14.91450510, -14.87622222]
VASP_KB = [[-12.34567, -11.23456, -13.45678, 0.12345, -0.23456, 0.34567],   # XX YY ZZ XY YZ ZX
           [5.43210, 6.54321, 4.32109, -0.98765, 0.87654, -0.76543]]
VASP_POS = [[[0.0, 0.0, 0.0], [0.12, 2.025, 2.025], [2.025, 0.0, 2.025], [2.025, 2.025, 4.0]],
            [[0.01234, 4.04, 0.0089], [0.13579, 2.03, 2.015], [2.031, 0.0095, 2.033],
             [2.019, 2.02, 3.992]]]
VASP_FORCES = [[[0.123456, -0.234567, 0.034567], [-0.087654, 0.145678, -0.056789],
                [0.011111, 0.022222, 0.033333], [-0.046913, 0.066667, -0.011111]],
               [[0.101010, -0.202020, 0.030303], [-0.070707, 0.121212, -0.050505],
                [0.0, 0.040404, 0.040404], [-0.030303, 0.040404, -0.020202]]]


def _kb_to_ase_voigt(kb):
    """VASP 'in kB' line (XX YY ZZ XY YZ ZX, positive = pressure) → ASE Voigt
    (xx yy zz yz xz xy) in eV/Å³ with ASE's sign (stress = −pressure)."""
    xx, yy, zz, xy, yz, zx = kb
    return -np.array([xx, yy, zz, yz, zx, xy]) * 0.1 * units.GPa


def _truncate(src: Path, dst: Path, fraction: float | None = None, *, lines: int | None = None):
    text = src.read_text()
    if lines is not None:
        cut = "".join(text.splitlines(keepends=True)[:lines])
    else:
        cut = text[: int(len(text) * fraction)]
    dst.write_text(cut)
    return dst


def _assert_same_frames(a: list[Atoms], b: list[Atoms], atol=0.0):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.get_chemical_symbols() == y.get_chemical_symbols()
        np.testing.assert_allclose(y.positions, x.positions, rtol=0, atol=atol)
        np.testing.assert_allclose(y.cell.array, x.cell.array, rtol=0, atol=atol)
        assert list(y.pbc) == list(x.pbc)
        lx, ly = labels(x), labels(y)
        assert set(lx) == set(ly)
        assert abs(float(ly["energy"]) - float(lx["energy"])) <= atol
        np.testing.assert_allclose(ly["forces"], lx["forces"], rtol=0, atol=atol)
        if "stress" in lx:
            np.testing.assert_allclose(ly["stress"], lx["stress"], rtol=0, atol=atol)
        for key in TAG_KEYS:
            vx, vy = x.info.get(key), y.info.get(key)
            if isinstance(vx, float) and math.isnan(vx):
                assert isinstance(vy, float) and math.isnan(vy), key
            else:
                assert vy == vx and type(vy) is type(vx), (key, vx, vy)


# ---------------------------------------------------------------- extxyz and n2p2


def test_extxyz_fixture_reads_labels_and_tags():
    frames = read_frames(EXTXYZ)
    assert len(frames) == 2
    a = frames[1]
    assert a.get_chemical_symbols() == ["Al", "Al", "Ni", "Al"]
    assert labels(a)["energy"] == pytest.approx(-16.39876543, abs=0)
    np.testing.assert_array_equal(labels(a)["forces"][2], [-0.01234567, -0.21098765, 0.06543210])
    # extxyz stores the 3x3 stress; Voigt order xx yy zz yz xz xy
    np.testing.assert_array_equal(labels(a)["stress"],
                                  [-0.00398112, -0.00405678, -0.00387654, -0.00003456,
                                   0.00009876, -0.00011234])
    assert a.info["state_id"] == "AlNi_1400K" and a.info["T_target"] == 1400.0
    assert a.info["source"] == str(EXTXYZ) and a.info["source_index"] == 1


def test_extxyz_to_n2p2_and_back_is_exact(tmp_path):
    frames = read_frames(EXTXYZ)
    out = tmp_path / "input.data"
    write_frames(out, frames)
    back = read_frames(out)
    _assert_same_frames(frames, back, atol=0.0)
    assert [b.info["source_index"] for b in back] == [0, 1]
    assert all(b.info["source"] == str(out) for b in back)
    # and back to extxyz (ASE writes 8 decimals for per-atom columns)
    out2 = tmp_path / "again.extxyz"
    write_frames(out2, back)
    _assert_same_frames(frames, read_frames(out2), atol=1e-12)


def test_n2p2_written_format(tmp_path):
    frames = read_frames(EXTXYZ)
    out = tmp_path / "input.data"
    write_n2p2(out, frames)
    lines = out.read_text().splitlines()
    assert lines[0] == "begin"
    assert lines[1].startswith("comment ")
    assert 'state_id="AlNi_1400K"' in lines[1] and "T_target=1400.0" in lines[1]
    assert "stress=[" in lines[1]
    for k in range(3):
        parts = lines[2 + k].split()
        assert parts[0] == "lattice" and len(parts) == 4
        assert float(parts[1 + k]) == 4.1
    atom = lines[5].split()
    assert atom[0] == "atom" and len(atom) == 10 and atom[4] == "Al"
    assert [float(x) for x in atom[1:4]] == [0.03125, 0.01879, 4.07611]
    assert float(atom[5]) == 0.0 and float(atom[6]) == 0.0       # charge, atomic energy
    assert [float(x) for x in atom[7:10]] == [0.21456321, -0.11234567, 0.05432109]
    assert lines[9].split()[0] == "energy" and float(lines[9].split()[1]) == -16.48213379
    assert lines[10].split() == ["charge", "0.0000000000000000E+00"]
    assert lines[11] == "end" and lines[12] == "begin"


def test_n2p2_atomic_units_conversion(tmp_path):
    raw = read_n2p2(N2P2_ATOMIC, units="metal")           # numbers as in the file
    conv = read_frames(N2P2_ATOMIC, units="atomic")
    assert len(conv) == 2
    for r, c in zip(raw, conv):
        np.testing.assert_allclose(c.positions, r.positions * units.Bohr, rtol=1e-15)
        np.testing.assert_allclose(c.cell.array, r.cell.array * units.Bohr, rtol=1e-15)
        assert labels(c)["energy"] == pytest.approx(labels(r)["energy"] * units.Hartree,
                                                    rel=1e-15)
        np.testing.assert_allclose(labels(c)["forces"],
                                   labels(r)["forces"] * units.Hartree / units.Bohr,
                                   rtol=1e-15)
    # the fixture: a 4.05 Å Al cell, energy ≈ −14.9 eV
    assert conv[0].cell.lengths() == pytest.approx([4.05] * 3, abs=1e-4)
    assert labels(conv[0])["energy"] == pytest.approx(-0.54810972 * 27.211386, rel=1e-6)
    assert conv[0].info["comment"].startswith("Al4 liquid")
    # writing in atomic units gives back the file's numbers
    out = tmp_path / "atomic.data"
    write_n2p2(out, conv, units="atomic")
    _assert_same_frames(raw, read_n2p2(out, units="metal"), atol=1e-12)
    _assert_same_frames(conv, read_frames(out, units="atomic"), atol=1e-12)


def test_extxyz_roundtrip_keeps_tags_energy_zero_and_free_energy(tmp_path):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.positions += np.random.default_rng(0).normal(0, 0.05, (4, 3))
    forces = np.random.default_rng(1).normal(0, 0.3, (4, 3))
    attach_labels(atoms, -14.123456789012345, forces, np.arange(1, 7) * 1e-3,
                  state_id="0001", branch="", phase="liquid", T_target=1500.0,
                  P_target=float("nan"), composition="Al1", engine="vasp", units="metal",
                  energy_zero=-14.2)
    atoms.info["flag"] = "T"
    out = tmp_path / "frames.xyz"
    write_frames(out, [atoms])
    (b,) = read_frames(out)
    _assert_same_frames([atoms], [b], atol=1e-8)
    assert b.info["state_id"] == "0001" and b.info["branch"] == "" and b.info["flag"] == "T"
    assert b.info["energy_zero"] == -14.2
    assert labels(b)["energy"] == -14.123456789012345
    # a frame whose calculator distinguishes free energy and sigma->0 keeps the free energy
    (v,) = read_frames(OUTCAR, index="0")
    write_frames(tmp_path / "v.extxyz", [v])
    (w,) = read_frames(tmp_path / "v.extxyz")
    assert labels(w)["energy"] == VASP_TOTEN[0] and w.info["energy_zero"] == VASP_SIGMA0[0]


def test_n2p2_nonperiodic_frame_reads_with_pbc_false(tmp_path):
    path = tmp_path / "cluster.data"
    path.write_text("begin\ncomment a dimer\n"
                    "atom 0.0 0.0 0.0 Al 0.0 0.0 0.1 0.0 0.0\n"
                    "atom 2.7 0.0 0.0 Al 0.0 0.0 -0.1 0.0 0.0\n"
                    "energy -6.5\ncharge 0.0\nend\n")
    (a,) = read_frames(path)
    assert not a.pbc.any()
    assert labels(a)["energy"] == -6.5


# ---------------------------------------------------------------- VASP


@pytest.mark.parametrize("path", [OUTCAR, VASPRUN], ids=["OUTCAR", "vasprun"])
def test_vasp_frames(path):
    frames = read_frames(path)
    assert len(frames) == 2
    for i, a in enumerate(frames):
        lab = labels(a)
        assert a.get_chemical_symbols() == ["Al"] * 4
        assert a.pbc.all()
        np.testing.assert_allclose(a.cell.array, np.eye(3) * 4.05, atol=1e-12)
        # vasprun.xml stores fractional coordinates with 8 digits
        np.testing.assert_allclose(a.positions, VASP_POS[i], atol=1e-7)
        np.testing.assert_allclose(lab["forces"], VASP_FORCES[i], atol=1e-12)
        assert lab["energy"] == pytest.approx(VASP_TOTEN[i], abs=1e-10)       # free energy
        assert a.info["energy_zero"] == pytest.approx(VASP_SIGMA0[i], abs=1e-10)
        np.testing.assert_allclose(lab["stress"], _kb_to_ase_voigt(VASP_KB[i]), rtol=1e-12)
        assert a.info["source"] == str(path) and a.info["source_index"] == i
    # 1 kB of tension (negative VASP pressure) is a positive ASE stress
    assert labels(frames[0])["stress"][0] == pytest.approx(12.34567 * 1e-4 / 1.602176634e-1,
                                                            rel=1e-6)


def test_vasp_index_selection_keeps_file_index():
    (last,) = read_frames(OUTCAR, index=-1)
    assert last.info["source_index"] == 1
    assert labels(last)["energy"] == VASP_TOTEN[1]
    assert [a.info["source_index"] for a in read_frames(VASPRUN, index="1:")] == [1]


def test_vasp_to_n2p2_keeps_free_energy_and_stress(tmp_path):
    frames = read_frames(OUTCAR)
    write_frames(tmp_path / "input.data", frames)
    back = read_frames(tmp_path / "input.data")
    _assert_same_frames(frames, back)
    assert [b.info["energy_zero"] for b in back] == VASP_SIGMA0
    assert [b.info["engine"] for b in back] == ["vasp", "vasp"]


# ---------------------------------------------------------------- errors


def test_guess_format_and_unknown_name(tmp_path):
    assert guess_format("run/OUTCAR") == "vasp-out"
    assert guess_format("OUTCAR_step3") == "vasp-out"
    assert guess_format("vasprun.xml") == "vasp-xml"
    assert guess_format("a/vasprun_12.xml") == "vasp-xml"
    assert guess_format("x.xyz") == guess_format("x.extxyz") == "extxyz"
    assert guess_format("input.data") == guess_format("train.data") == "n2p2"
    assert guess_format("input.data.train") == guess_format("run/input.data-old") == "n2p2"
    odd = tmp_path / "frames.pdb"
    odd.write_text("")
    with pytest.raises(FrameError, match=r"frames\.pdb.*cannot tell the file format.*--format"):
        read_frames(odd)


def test_the_format_of_an_unknown_name_comes_from_the_content(tmp_path):
    """Files under names that say nothing are read by content: n2p2, OUTCAR, vasprun.xml, extxyz."""
    import shutil

    data = Path(__file__).parent / "data"
    for src, fmt in (("input.data", "n2p2"), ("OUTCAR_Al4_md", "vasp-out"), ("vasprun_Al4_md.xml", "vasp-xml"),
                     ("AlNi_liquid.extxyz", "extxyz")):
        blind = tmp_path / f"frames_{fmt}.txt"
        shutil.copy(data / src, blind)
        assert guess_format(blind) == fmt, src
        got, want = read_frames(blind), read_frames(data / src)
        assert len(got) == len(want) > 0
        assert got[0].get_potential_energy() == want[0].get_potential_energy()
    with pytest.raises(ValueError, match="unknown format"):
        read_frames(EXTXYZ, format="cif")


def test_missing_file(tmp_path):
    with pytest.raises(FrameError, match=r"nope\.xyz: no such file"):
        read_frames(tmp_path / "nope.xyz")


def test_empty_file(tmp_path):
    (tmp_path / "empty.xyz").write_text("")
    with pytest.raises(FrameError, match="no frames"):
        read_frames(tmp_path / "empty.xyz")


def test_truncated_extxyz(tmp_path):
    lines = EXTXYZ.read_text().splitlines(keepends=True)
    bad = tmp_path / "cut.extxyz"
    bad.write_text("".join(lines[:8]) + lines[8][:30])     # frame 1: 2 of 4 atoms, half a line
    with pytest.raises(FrameError) as exc:
        read_frames(bad)
    assert exc.value.source == str(bad) and exc.value.index == 1
    assert "cut.extxyz, frame 1" in str(exc.value) and "extxyz" in exc.value.reason


def test_truncated_n2p2(tmp_path):
    frames = read_frames(EXTXYZ)
    good = tmp_path / "good.data"
    write_n2p2(good, frames)
    text = good.read_text().splitlines(keepends=True)
    cut = _truncate(good, tmp_path / "cut.data", lines=len(text) - 4)   # frame 1 w/o energy..end
    with pytest.raises(FrameError, match=r"cut\.data, frame 1: .*truncated") as exc:
        read_frames(cut)
    assert exc.value.index == 1
    half = tmp_path / "half.data"
    half.write_text("".join(text[:19]) + text[19][:40] + "\n")          # half an atom line
    with pytest.raises(FrameError, match=r"half\.data, frame 1: line 20: .*10 fields"):
        read_frames(half)


def test_n2p2_bad_lines(tmp_path):
    bad = tmp_path / "input.data"
    bad.write_text("begin\nlattice 4 0 0\nlattice 0 4 0\nlattice 0 0 4\n"
                   "atom 0 0 0 Xx 0 0 0 0 0\nenergy 1\ncharge 0\nend\n")
    with pytest.raises(FrameError, match=r"frame 0: line 5: unknown element symbol 'Xx'"):
        read_frames(bad)
    bad.write_text("begin\natom 0 0 0 Al 0 0 0 0 0\ncharge 0\nend\n")
    with pytest.raises(FrameError, match=r"frame 0: .*no 'energy' line"):
        read_frames(bad)
    bad.write_text("begin\natom 0 0 0 Al 0 0 0 0 x\nenergy 1\ncharge 0\nend\n")
    with pytest.raises(FrameError, match=r"line 2: cannot read numbers"):
        read_frames(bad)


def _line_of(path: Path, needle: str, occurrence: int) -> int:
    hits = [i for i, line in enumerate(path.read_text().splitlines()) if needle in line]
    return hits[occurrence]


@pytest.mark.parametrize("where", ["scf", "positions", "energy_block"])
def test_truncated_outcar(tmp_path, where):
    if where == "scf":                       # killed during the SCF loop of step 1
        n = _line_of(OUTCAR, "Iteration    2(   1)", 0) + 10
    elif where == "positions":               # inside the POSITION/TOTAL-FORCE block of step 1
        n = _line_of(OUTCAR, "POSITION  ", 1) + 4
    else:                                    # inside the FREE ENERGIE block of step 1
        n = _line_of(OUTCAR, "FREE ENERGIE", 1) + 2
    cut = _truncate(OUTCAR, tmp_path / "OUTCAR", lines=n)
    with pytest.raises(FrameError, match=r"OUTCAR, frame 1: .*truncated") as exc:
        read_frames(cut)
    assert exc.value.index == 1


def test_truncated_outcar_header(tmp_path):
    cut = _truncate(OUTCAR, tmp_path / "OUTCAR", lines=200)
    with pytest.raises(FrameError, match=r"OUTCAR, frame 0: cannot parse as vasp-out.*Incomplete"):
        read_frames(cut)


def test_truncated_vasprun(tmp_path):
    n = _line_of(VASPRUN, "<calculation>", 1) + 30
    cut = _truncate(VASPRUN, tmp_path / "vasprun.xml", lines=n)
    with pytest.raises(FrameError, match=r"vasprun\.xml, frame 1: .*truncated") as exc:
        read_frames(cut)
    assert exc.value.index == 1


def test_file_sha256(tmp_path):
    path = tmp_path / "blob.bin"
    data = np.random.default_rng(3).bytes(3_000_000)
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert file_sha256(path, chunk_size=1000) == hashlib.sha256(data).hexdigest()


def test_extxyz_with_free_energy_and_sigma0(tmp_path):
    """A third-party extxyz holding both: free_energy is the label, energy goes to energy_zero."""
    path = tmp_path / "dft.xyz"
    path.write_text(
        "2\n"
        'Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0" Properties=species:S:1:pos:R:3:forces:R:3 '
        'energy=-7.40 free_energy=-7.45 pbc="T T T"\n'
        "Al 0.0 0.0 0.0 0.1 0.0 0.0\n"
        "Al 2.0 2.0 2.0 -0.1 0.0 0.0\n")
    (a,) = read_frames(path, format="xyz")
    assert labels(a)["energy"] == -7.45 and a.info["energy_zero"] == -7.40
