"""Frame validation: each bad frame gets an error naming file, frame and cause."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from meltpot.data.frames import attach_labels, labels
from meltpot.data.io import read_frames, write_frames
from meltpot.data.validate import ValidationSettings, cell_widths, check_frame, validate_frames
from meltpot.errors import FrameError

DATA = Path(__file__).parent / "data"
EXTXYZ = DATA / "AlNi_liquid.extxyz"
OUTCAR = DATA / "OUTCAR_Al4_md"
N2P2_ATOMIC = DATA / "input.data"

SETTINGS = ValidationSettings(elements=["Al", "Ni"], min_distance=1.5, min_cell_width=4.0)


def _relabel(atoms: Atoms, energy=None, forces=None) -> Atoms:
    lab = labels(atoms)
    info = dict(atoms.info)
    attach_labels(atoms, lab["energy"] if energy is None else energy,
                  lab["forces"] if forces is None else forces, lab.get("stress"))
    atoms.info.update(info)
    return atoms


def _bad_file(tmp_path: Path, name: str, edit, frame: int = 1) -> Path:
    """A copy of the extxyz fixture (written by meltpot) with frame ``frame`` edited."""
    frames = read_frames(EXTXYZ)
    edit(frames[frame])
    path = tmp_path / name
    write_frames(path, frames)
    return path


def _error(path: Path, settings=SETTINGS, **read_kw) -> FrameError:
    frames = read_frames(path, **read_kw)
    with pytest.raises(FrameError) as exc:
        validate_frames(frames, settings, str(path))
    return exc.value


def test_good_files_pass():
    for path, kw in ((EXTXYZ, {}), (OUTCAR, {}), (N2P2_ATOMIC, {"units": "atomic"})):
        frames = read_frames(path, **kw)
        kept, report = validate_frames(frames, SETTINGS, str(path))
        assert len(kept) == len(frames) == 2 and report == []
    strict = ValidationSettings(elements=["Al"], require_stress=True, max_force=5.0,
                                min_cell_width=4.0, min_distance=2.0)
    kept, _ = validate_frames(read_frames(OUTCAR), strict, str(OUTCAR))
    assert len(kept) == 2


def test_nan_energy(tmp_path):
    path = _bad_file(tmp_path, "nan_energy.extxyz", lambda a: _relabel(a, energy=float("nan")))
    err = _error(path)
    assert str(err) == f"{path}, frame 1: energy is nan"
    assert (err.source, err.index, err.reason) == (str(path), 1, "energy is nan")


def test_nonfinite_forces(tmp_path):
    def edit(a):
        f = labels(a)["forces"].copy()
        f[2, 1] = np.inf
        _relabel(a, forces=f)
    path = _bad_file(tmp_path, "inf_forces.extxyz", edit, frame=0)
    err = _error(path)
    assert f"{path}, frame 0: forces of atom 2 are not finite" in str(err)


def test_overlapping_atoms_across_the_boundary(tmp_path):
    def edit(a):
        # atom 3 sits 0.3 Å from atom 0 through the periodic boundary along x
        a.positions[3] = a.positions[0] + [a.cell[0, 0] - 0.3, 0.0, 0.0]
    path = _bad_file(tmp_path, "overlap.extxyz", edit)
    err = _error(path)
    assert err.index == 1 and err.source == str(path)
    assert "atoms 0 and 3 are 0.3000 Å apart, closer than min_distance 1.5 Å" in err.reason


def test_atom_overlapping_its_own_image():
    atoms = Atoms("Al", positions=[[0, 0, 0]], cell=np.eye(3) * 1.2, pbc=True)
    attach_labels(atoms, -3.0, np.zeros((1, 3)))
    with pytest.raises(FrameError, match="atom 0 and its own periodic image are 1.2000 Å"):
        check_frame(atoms, ValidationSettings(elements=None, min_distance=1.5), "gen", 7)


def test_unknown_element(tmp_path):
    def edit(a):
        a.symbols[2] = "Cu"
    path = _bad_file(tmp_path, "copper.extxyz", edit)
    err = _error(path)
    assert str(err) == f"{path}, frame 1: unknown element(s) Cu (allowed: Al, Ni)"


def test_missing_forces(tmp_path):
    path = tmp_path / "no_forces.extxyz"
    lines = EXTXYZ.read_text().splitlines()
    out = []
    for line in lines:
        if line.startswith("Lattice="):
            line = line.replace(":forces:R:3", "")
        elif len(line.split()) == 7:
            line = " ".join(line.split()[:4])
        out.append(line)
    path.write_text("\n".join(out) + "\n")
    err = _error(path)
    assert str(err) == f"{path}, frame 0: missing forces label"


def test_missing_energy():
    atoms = Atoms("Al2", positions=[[0, 0, 0], [2, 2, 2]], cell=np.eye(3) * 4, pbc=True)
    with pytest.raises(FrameError, match=r"^src\.xyz, frame 3: missing energy label$"):
        check_frame(atoms, ValidationSettings(elements=["Al"]), "src.xyz", 3)


def test_cell_too_small_names_the_axis(tmp_path):
    # b is 5.85 Å long, but the cell is only 2 Å wide perpendicular to the a-c plane
    atoms = Atoms("Al", positions=[[0.5, 0.5, 0.5]],
                  cell=[[6.0, 0, 0], [5.5, 2.0, 0], [0, 0, 6.0]], pbc=True)
    attach_labels(atoms, -3.0, np.zeros((1, 3)), state_id="s")
    path = tmp_path / "thin.data"
    write_frames(path, [atoms])
    np.testing.assert_allclose(cell_widths(atoms.cell), [6.0 * 2.0 / np.hypot(5.5, 2.0), 2.0, 6.0])
    err = _error(path, ValidationSettings(elements=["Al"], min_distance=0.5,
                                          min_cell_width=5.0))
    assert err.index == 0 and err.source == str(path)
    assert "cell width along b is 2 Å, below the required 5 Å" in err.reason
    assert "descriptor cutoff needs a larger cell" in err.reason


def test_non_periodic_frame(tmp_path):
    path = tmp_path / "input.data"
    good = (N2P2_ATOMIC.read_text())
    blocks = good.split("end\n")
    # second frame without its lattice lines: a cluster for n2p2, not for meltpot
    blocks[1] = "\n".join(l for l in blocks[1].splitlines() if not l.startswith("lattice")) + "\n"
    path.write_text("end\n".join(blocks))
    err = _error(path, units="atomic")
    assert f"{path}, frame 1: not periodic in all three directions" in str(err)


def test_zero_volume_cell():
    atoms = Atoms("Al2", positions=[[0, 0, 0], [2, 2, 0]], cell=[[4, 0, 0], [0, 4, 0], [0, 0, 0]],
                  pbc=True)
    attach_labels(atoms, -6.0, np.zeros((2, 3)))
    with pytest.raises(FrameError, match="zero volume"):
        check_frame(atoms, ValidationSettings(elements=["Al"]), "x", 0)


def test_require_stress_and_max_force():
    frames = read_frames(N2P2_ATOMIC, units="atomic")          # n2p2 has no stress
    with pytest.raises(FrameError, match=r"input\.data, frame 0: missing stress label"):
        validate_frames(frames, ValidationSettings(elements=["Al"], require_stress=True), "x")
    with pytest.raises(FrameError, match=r"frame 0: force on atom 1 is 0.3.* eV/Å, above "
                                         r"max_force 0.2 eV/Å"):
        validate_frames(frames, ValidationSettings(elements=["Al"], max_force=0.2), "x")


def test_drop_mode_keeps_good_frames_and_reports_bad(tmp_path, caplog):
    frames = read_frames(EXTXYZ) + read_frames(EXTXYZ)
    _relabel(frames[1], energy=float("nan"))
    frames[2].symbols[0] = "Cu"
    path = tmp_path / "mixed.xyz"
    write_frames(path, frames)
    loaded = read_frames(path)
    with caplog.at_level(logging.WARNING, logger="meltpot.data.validate"):
        kept, report = validate_frames(loaded, SETTINGS, str(path), on_error="drop")
    assert [a.info["source_index"] for a in kept] == [0, 3]
    assert report == [
        {"source": str(path), "index": 1, "reason": "energy is nan"},
        {"source": str(path), "index": 2, "reason": "unknown element(s) Cu (allowed: Al, Ni)"},
    ]
    assert "dropped 2 of 4 frames" in caplog.text
    # fail mode raises the first
    with pytest.raises(FrameError, match=r"mixed\.xyz, frame 1: energy is nan"):
        validate_frames(loaded, SETTINGS, str(path))
    # a selection keeps the frame numbers of the file
    kept, report = validate_frames(read_frames(path, index="2:"), SETTINGS, "ignored",
                                   on_error="drop")
    assert [r["index"] for r in report] == [2] and report[0]["source"] == str(path)


def test_frames_without_source_use_position():
    atoms = Atoms("Al", positions=[[0, 0, 0]], cell=np.eye(3) * 4, pbc=True)
    attach_labels(atoms, float("inf"), np.zeros((1, 3)))
    good = atoms.copy()
    attach_labels(good, -3.0, np.zeros((1, 3)))
    kept, report = validate_frames([good, atoms], ValidationSettings(), "memory", on_error="drop")
    assert len(kept) == 1 and report == [{"source": "memory", "index": 1, "reason": "energy is inf"}]
    with pytest.raises(ValueError, match="on_error"):
        validate_frames([good], ValidationSettings(), "memory", on_error="skip")
