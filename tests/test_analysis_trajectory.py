"""Trajectory and log readers: round trips through LAMMPS-written files, bad input."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from meltpot.analysis.trajectory import (count_frames, iter_frames, pressure_tensor, read_log,
                                         require_elements, species_labels)
from meltpot.errors import FrameError

NSTEP, EVERY = 300, 50  # 7 frames per dump


@pytest.fixture(scope="module")
def lammps_run(tmp_path_factory):
    """A hot binary LJ liquid in a triclinic box, dumped in several formats, plus the final
    state as LAMMPS holds it (positions, image flags, box) and its log."""
    from meltpot.lammps_env import new_instance

    d = tmp_path_factory.mktemp("traj")
    lmp = new_instance(log=str(d / "log.lammps"))
    lmp.commands_string(f"""
units metal
atom_style atomic
lattice fcc 4.2
region b prism 0 3 0 3 0 3 0.9 -0.6 0.4
create_box 2 b
create_atoms 1 box
set type 1 type/fraction 2 0.3 7
mass 1 27
mass 2 58.7
pair_style lj/cut 6.0
pair_coeff * * 0.3 2.5
velocity all create 6000 1
timestep 0.004
fix 1 all nve
thermo_style custom step temp pe press pxx pyy pzz pxy pxz pyz
thermo 50
run 50
dump full all custom {EVERY} {d}/full.dump id type x y z ix iy iz xu yu zu vx
dump_modify full format float %20.15g
dump scaled all custom {EVERY} {d}/scaled.dump id type xs ys zs xsu ysu zsu
dump_modify scaled format float %20.15g
dump elem all custom {EVERY} {d}/elem.dump id element x y z type
dump_modify elem element Al Ni format float %20.15g time yes units yes
dump atomd all atom {EVERY} {d}/atom.dump
reset_timestep 0
run {NSTEP}
""")
    final = dict(
        x=lmp.numpy.extract_atom("x")[: lmp.get_natoms()].copy(),
        image=lmp.numpy.extract_atom("image")[: lmp.get_natoms()].copy(),
        id=lmp.numpy.extract_atom("id")[: lmp.get_natoms()].copy(),
        box=lmp.extract_box(),
    )
    lmp.close()
    return d, final


def _unpack_image(image):
    """LAMMPS packs image flags in one int (10 bits each, offset 512)."""
    image = image.astype(np.int64)
    return np.column_stack([(image & 1023) - 512, ((image >> 10) & 1023) - 512,
                            (image >> 20) - 512])


def test_dump_round_trip_triclinic_with_images(lammps_run):
    d, final = lammps_run
    frames = list(iter_frames(d / "full.dump"))
    assert len(frames) == count_frames(d / "full.dump") == NSTEP // EVERY + 1
    assert [f.info["timestep"] for f in frames] == list(range(0, NSTEP + 1, EVERY))
    assert [f.info["frame"] for f in frames] == list(range(len(frames)))
    last = frames[-1]
    assert last.info["source"] == str(d / "full.dump")
    assert last.pbc.all() and np.all(np.diff(last.arrays["id"]) > 0)

    boxlo, boxhi, xy, yz, xz, _, _ = final["box"]
    lo, hi = np.array(boxlo), np.array(boxhi)
    cell = np.array([[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]])
    np.testing.assert_allclose(np.asarray(last.cell), cell, atol=1e-9)
    order = np.argsort(final["id"])
    x = final["x"][order] - lo
    images = _unpack_image(final["image"][order])
    assert np.abs(images).max() >= 1  # atoms crossed the boundaries
    np.testing.assert_allclose(last.arrays["unwrapped"], x + images @ cell, atol=1e-8)
    # positions equal LAMMPS's up to a lattice vector (wrapping convention at the faces)
    delta = (last.positions - x) @ np.linalg.inv(cell)
    np.testing.assert_allclose(delta, np.round(delta), atol=1e-9)
    assert "vx" in last.arrays and "ix" not in last.arrays


def test_unwrapped_and_scaled_columns_agree(lammps_run):
    d, _ = lammps_run
    for a, b, c in zip(iter_frames(d / "full.dump"), iter_frames(d / "scaled.dump"),
                       iter_frames(d / "atom.dump")):
        cell = np.asarray(a.cell)
        np.testing.assert_allclose(np.asarray(b.cell), cell, atol=1e-9)
        np.testing.assert_allclose(b.arrays["unwrapped"], a.arrays["unwrapped"], atol=1e-8)
        for other, tol in ((b, 1e-8), (c, 1e-3)):  # dump atom prints 6 significant digits
            delta = (other.positions - a.positions) @ np.linalg.inv(cell)
            np.testing.assert_allclose(delta, np.round(delta), atol=tol)
        assert "unwrapped" not in c.arrays


def test_slicing_types_and_species(lammps_run):
    d, _ = lammps_run
    path = d / "full.dump"
    sel = list(iter_frames(path, start=1, stop=6, step=2))
    assert [f.info["frame"] for f in sel] == [1, 3, 5]
    assert [f.info["timestep"] for f in sel] == [50, 150, 250]

    plain = sel[0]
    assert set(plain.get_chemical_symbols()) == {"X"}
    assert set(species_labels(plain)) == {"1", "2"}
    with pytest.raises(FrameError, match=r"full\.dump, frame 1: .*types"):
        require_elements(plain, "neutron weighting")

    typed = next(iter_frames(path, types={1: "Al", 2: "Ni"}))
    sym = np.array(typed.get_chemical_symbols())
    assert np.all(sym[typed.arrays["type"] == 1] == "Al")
    assert np.all(sym[typed.arrays["type"] == 2] == "Ni")
    require_elements(typed)

    elem = list(iter_frames(d / "elem.dump", start=2, stop=3))[0]
    assert elem.info["time"] == pytest.approx(0.004 * elem.info["timestep"])
    assert elem.info["units"] == "metal"
    assert elem.get_chemical_symbols() == typed.get_chemical_symbols()
    with pytest.raises(FrameError, match=r"frame 0: LAMMPS type\(s\) \[2\] missing"):
        next(iter_frames(path, types={1: "Al"}))


def test_sorted_by_id_and_gzip(lammps_run, tmp_path):
    d, _ = lammps_run
    lines = (d / "full.dump").read_text().splitlines(keepends=True)
    n = int(lines[3])
    rng = np.random.default_rng(1)
    body = lines[9:9 + n]
    shuffled = lines[:9] + [body[i] for i in rng.permutation(n)] + lines[9 + n:]
    path = tmp_path / "shuffled.dump.gz"
    with gzip.open(path, "wt") as fh:
        fh.writelines(shuffled)
    a = next(iter_frames(path))
    b = next(iter_frames(d / "full.dump"))
    np.testing.assert_array_equal(a.arrays["id"], b.arrays["id"])
    np.testing.assert_allclose(a.positions, b.positions)
    assert count_frames(path) == NSTEP // EVERY + 1


def test_general_triclinic_header(lammps_run, tmp_path):
    """The 'BOX BOUNDS abc origin' header of LAMMPS ≥ 2024 (rows: vector, origin component)."""
    d, _ = lammps_run
    lines = (d / "full.dump").read_text().splitlines(keepends=True)
    n = int(lines[3])
    ref = next(iter_frames(d / "full.dump"))
    cell = np.asarray(ref.cell)
    (xlo_b, _, xy), (ylo_b, _, xz), (zlo, _, yz) = [np.array(ln.split(), float)
                                                   for ln in lines[5:8]]
    origin = [xlo_b - min(0, xy, xz, xy + xz), ylo_b - min(0, yz), zlo]
    box = [f"{v[0]:.17g} {v[1]:.17g} {v[2]:.17g} {o:.17g}\n" for v, o in zip(cell, origin)]
    path = tmp_path / "general.dump"
    path.write_text("".join(lines[:4] + ["ITEM: BOX BOUNDS abc origin pp pp pp\n"] + box
                            + lines[8:9 + n]))
    frame = next(iter_frames(path))
    np.testing.assert_allclose(np.asarray(frame.cell), cell, atol=1e-12)
    np.testing.assert_allclose(frame.arrays["unwrapped"], ref.arrays["unwrapped"], atol=1e-9)


def test_extxyz(lammps_run, tmp_path):
    import ase.io

    d, _ = lammps_run
    frames = list(iter_frames(d / "full.dump", types={1: "Al", 2: "Ni"}))
    out = tmp_path / "t.extxyz"
    for f in frames:
        f.info.pop("source")
        f.info.pop("frame")
        for key in list(f.arrays):
            if key not in ("numbers", "positions", "unwrapped"):
                del f.arrays[key]
    ase.io.write(out, frames, format="extxyz")
    back = list(iter_frames(out, step=3, types={1: "Al", 2: "Ni"}))
    assert count_frames(out) == len(frames)
    assert [f.info["frame"] for f in back] == [0, 3, 6]
    assert [f.info["timestep"] for f in back] == [0, 150, 300]
    np.testing.assert_allclose(back[1].positions, frames[3].positions, atol=1e-6)
    np.testing.assert_allclose(back[1].arrays["unwrapped"], frames[3].arrays["unwrapped"],
                               atol=1e-6)
    t = back[0].arrays["type"]
    assert set(np.array(back[0].get_chemical_symbols())[t == 2]) == {"Ni"}
    np.testing.assert_array_equal(back[0].arrays["id"], np.arange(1, len(t) + 1))


# ----------------------------------------------------------------------------- bad input
def _write(path, lines):
    path.write_text("".join(lines))
    return path


@pytest.fixture()
def dump_lines(lammps_run):
    d, _ = lammps_run
    return (d / "full.dump").read_text().splitlines(keepends=True)


def _frame_len(lines):
    return 9 + int(lines[3])


def test_truncated_last_frame(dump_lines, tmp_path):
    path = _write(tmp_path / "trunc.dump", dump_lines[:-5])
    last = NSTEP // EVERY
    with pytest.raises(FrameError, match=rf"trunc\.dump, frame {last}: truncated") as exc:
        list(iter_frames(path))
    assert exc.value.source == str(path) and exc.value.index == last
    with pytest.raises(FrameError, match=rf"frame {last}"):
        count_frames(path)
    # a frame cut inside its header, and a partial last line
    k = _frame_len(dump_lines)
    with pytest.raises(FrameError, match=r"frame 1: file ends inside the frame header"):
        list(iter_frames(_write(tmp_path / "h.dump", dump_lines[:k + 5])))
    cut = dump_lines[:2 * k - 1] + [dump_lines[2 * k - 1][:12]]
    with pytest.raises(FrameError, match=r"frame 1: "):
        list(iter_frames(_write(tmp_path / "p.dump", cut)))


def test_atom_count_change(dump_lines, tmp_path):
    k = _frame_len(dump_lines)
    n = int(dump_lines[3])
    second = dump_lines[k:2 * k]
    second = second[:3] + [f"{n - 1}\n"] + second[4:-1]
    path = _write(tmp_path / "count.dump", dump_lines[:k] + second)
    with pytest.raises(FrameError, match=rf"count\.dump, frame 1: {n - 1} atoms, the first "
                                         rf"frame has {n}"):
        list(iter_frames(path))


@pytest.mark.parametrize("drop, what", [("type", "'type'"), ("id", "'id'"),
                                        ("x", "coordinate")])
def test_missing_columns(dump_lines, tmp_path, drop, what):
    k = _frame_len(dump_lines)
    header = dump_lines[8].split()
    cols = header[2:]
    j = cols.index(drop)
    keep = [i for i in range(len(cols)) if i != j]
    if drop == "x":  # also drop xu so that no coordinate set is complete
        keep = [i for i in keep if cols[i] != "xu"]
    new_header = "ITEM: ATOMS " + " ".join(cols[i] for i in keep) + "\n"
    body = [" ".join(np.array(ln.split())[keep]) + "\n" for ln in dump_lines[9:k]]
    path = _write(tmp_path / f"no_{drop}.dump", dump_lines[:8] + [new_header] + body)
    with pytest.raises(FrameError, match=rf"no_{drop}\.dump, frame 0: .*{what}"):
        next(iter_frames(path))


def test_malformed_rows_and_missing_file(dump_lines, tmp_path):
    bad = list(dump_lines)
    bad[12] = "7 1 1.0 2.0\n"
    with pytest.raises(FrameError, match=r"frame 0: atom line 4 has 4 values"):
        next(iter_frames(_write(tmp_path / "rows.dump", bad)))
    with pytest.raises(FrameError, match=r"nothere\.dump: .*does not exist"):
        iter_frames(tmp_path / "nothere.dump")


# ----------------------------------------------------------------------------- logs
def test_read_log_blocks_and_pressure(lammps_run, tmp_path):
    d, _ = lammps_run
    table = read_log(d / "log.lammps")
    assert list(table["run"].unique()) == [0, 1]
    assert table["Step"].dtype == np.int64
    assert len(table[table.run == 1]) == NSTEP // 50 + 1
    p = pressure_tensor(table)
    assert p.shape == (len(table), 3) and np.isfinite(p).all()
    np.testing.assert_allclose(p[:, 0], table["Pxy"])

    text = (d / "log.lammps").read_text().splitlines(keepends=True)
    i = next(k for k, ln in enumerate(text) if ln.split()[:1] == ["Step"]) + 2
    text.insert(i, "WARNING: Communication cutoff is shorter than a bond length (src/x.cpp:1)\n")
    warned = read_log(_write(tmp_path / "warn.log", text))
    assert len(warned) == len(table)

    no_pxy = table.drop(columns=["Pxy"])
    with pytest.raises(FrameError, match=r"log\.lammps: thermo output has no 'pxy' column"):
        pressure_tensor(no_pxy)
    with pytest.raises(FrameError, match=r"empty\.log: no thermo block"):
        read_log(_write(tmp_path / "empty.log", ["LAMMPS (22 Jul 2025)\n"]))


# ----------------------------------------------------------------------------- step numbers of extxyz frames
def _random_walk_frames(n_frames=60, n_atoms=10, seed=3):
    from ase import Atoms

    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 8, size=(1, n_atoms, 3)) + rng.normal(scale=0.1, size=(n_frames, n_atoms, 3)).cumsum(axis=0)
    return [Atoms("Al" + str(n_atoms), positions=p, cell=[8.0] * 3, pbc=True) for p in pos]


def test_float_timestep_of_extxyz_is_not_truncated(tmp_path, capsys):
    """Regression: ``timestep=0.002`` (the MD time step) in every extxyz frame became step 0 for
    every frame (int(0.002)), and msd then said the frames were "not equally spaced in time"."""
    from ase.io import write

    from meltpot.cli import main

    frames = _random_walk_frames()
    for k, fr in enumerate(frames):
        fr.info.update(timestep=0.002, step=10 * k)
    write(tmp_path / "dt.extxyz", frames, format="extxyz")
    back = list(iter_frames(tmp_path / "dt.extxyz"))
    assert [f.info["timestep"] for f in back] == [10 * k for k in range(len(frames))]
    assert all(f.info["dt"] == 0.002 for f in back)
    # without a step key: the frame numbers; whole-number timesteps stay the step counter
    for k, fr in enumerate(frames):
        del fr.info["step"]
    write(tmp_path / "dt_only.extxyz", frames, format="extxyz")
    assert [f.info["timestep"] for f in iter_frames(tmp_path / "dt_only.extxyz")] == list(range(len(frames)))
    for k, fr in enumerate(frames):
        fr.info["timestep"] = 100.0 * k
    write(tmp_path / "whole.extxyz", frames, format="extxyz")
    assert [f.info["timestep"] for f in iter_frames(tmp_path / "whole.extxyz")] == [100 * k for k in range(60)]
    assert "dt" not in next(iter_frames(tmp_path / "whole.extxyz")).info
    # msd runs on the float-timestep file, with the same D as on the whole-number one (10 vs 100 steps per frame)
    for name, ts in (("dt", "0.01"), ("whole", "0.001")):
        assert main(["analyze", "msd", str(tmp_path / f"{name}.extxyz"), "--timestep", ts, "--out-dir",
                     str(tmp_path / name), "--no-progress"]) == 0
    import pandas as pd

    a, b = (pd.read_csv(tmp_path / n / "diffusion.csv") for n in ("dt", "whole"))
    assert a["D"].iloc[0] == pytest.approx(b["D"].iloc[0], rel=1e-12)


def test_steps_that_do_not_advance_are_named_as_such(tmp_path):
    """Frames with one and the same step number are not "unequally spaced": the message says
    that the step numbers do not advance."""
    from ase.io import write

    from meltpot.analysis.trajectory import read_trajectory
    from meltpot.analysis.transport import frame_spacing

    frames = _random_walk_frames(n_frames=5)
    for fr in frames:
        fr.info["timestep"] = 7
    write(tmp_path / "same.extxyz", frames, format="extxyz")
    rep = read_trajectory(tmp_path / "same.extxyz", progress=False)
    with pytest.raises(FrameError, match=r"frame 1: step 7 again .*do not advance") as err:
        frame_spacing(rep)
    assert "not equally spaced" not in str(err.value)
    rep["steps"] = np.array([0, 10, 20, 5, 15])
    with pytest.raises(FrameError, match=r"frame 3: step 5 after step 20: the step numbers go back"):
        frame_spacing(rep)
    rep["steps"] = np.array([0, 10, 20, 35, 45])
    with pytest.raises(FrameError, match=r"frame 3: step 35: 15 steps after the previous frame, 10 .*not equally"):
        frame_spacing(rep)
    rep["steps"] = np.array([0, 10, 20, 30, 40])
    assert frame_spacing(rep) == 10
