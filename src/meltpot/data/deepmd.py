"""DeePMD-kit training data (the ``deepmd/npy`` layout that dpdata writes), read and written.

A *system* is a folder with ``type_map.raw`` (element names, one per line), ``type.raw`` (one
type index per atom, the same for every frame), an optional ``nopbc`` marker and ``set.NNN/``
folders of NumPy arrays, one row per frame: ``box.npy`` (9: cell vectors as rows, Å),
``coord.npy`` (3·N, Å), ``energy.npy`` (eV), ``force.npy`` (3·N, eV/Å) and, when known,
``virial.npy`` (9, eV). The virial is −V·σ with σ the stress in ASE's sign convention (so ASE
stress = −virial/V), as dpdata converts it. A folder without ``type.raw`` whose sub-folders are
systems (dpdata's multi-system layout) is read system by system, sub-folders in sorted order.

Written as one system when every frame has the same atoms in the same order, else one
sub-folder per such group (``sys.000``, ``sys.001``, … in order of first appearance).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from ase import Atoms

from ase.stress import voigt_6_to_full_3x3_stress

from .frames import attach_labels, labels, mark_source
from ..errors import FrameError

SET_SIZE = 5000   # frames per set.NNN folder when writing (dpdata's default set size)


def is_system(path) -> bool:
    return (Path(path) / "type.raw").is_file()


def is_deepmd(path) -> bool:
    """A system folder, or a folder of system folders."""
    p = Path(path)
    return p.is_dir() and (is_system(p) or any(is_system(s) for s in p.iterdir() if s.is_dir()))


def _load(path: Path, name: str, n_frames: int | None, width: int, required: bool = True):
    f = path / f"{name}.npy"
    if not f.exists():
        if required:
            raise FrameError(str(path), None, f"{name}.npy missing")
        return None
    try:
        a = np.load(f, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any numpy failure names the file
        raise FrameError(str(f), None, f"cannot read ({type(exc).__name__}: {exc})") from exc
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1 and width == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] != width or (n_frames is not None and a.shape[0] != n_frames):
        raise FrameError(str(f), None, f"shape {a.shape}, expected ({n_frames if n_frames is not None else 'n'}, "
                                       f"{width})")
    return a


def read_system(path) -> list[Atoms]:
    """The frames of one DeePMD system folder (see module docstring)."""
    path = Path(path)
    try:
        types = np.loadtxt(path / "type.raw", dtype=int, ndmin=1)
        type_map = (path / "type_map.raw").read_text().split()
    except FileNotFoundError as exc:
        raise FrameError(str(path), None, f"{Path(exc.filename).name} missing (not a DeePMD system?)") from exc
    except ValueError as exc:
        raise FrameError(str(path / "type.raw"), None, f"not a list of integers ({exc})") from exc
    if types.size == 0 or types.min() < 0 or types.max() >= len(type_map):
        raise FrameError(str(path / "type.raw"), None, f"type indices {sorted(set(types.tolist()))} do not fit "
                                                       f"type_map.raw {type_map}")
    symbols = [type_map[t] for t in types]
    n = len(symbols)
    pbc = not (path / "nopbc").exists()
    sets = sorted(s for s in path.glob("set.*") if s.is_dir())
    if not sets:
        raise FrameError(str(path), None, "no set.* folders")
    frames: list[Atoms] = []
    for s in sets:
        coord = _load(s, "coord", None, 3 * n)
        m = coord.shape[0]
        box = _load(s, "box", m, 9)
        energy = _load(s, "energy", m, 1, required=False)
        force = _load(s, "force", m, 3 * n, required=False)
        virial = _load(s, "virial", m, 9, required=False)
        if energy is None or force is None:
            raise FrameError(str(s), len(frames), "energy.npy and force.npy are needed for labelled frames")
        for k in range(m):
            index = len(frames)
            cell = box[k].reshape(3, 3)
            atoms = Atoms(symbols, positions=coord[k].reshape(n, 3), cell=cell, pbc=pbc)
            stress = None
            if virial is not None:
                volume = abs(np.linalg.det(cell))
                if volume <= 0:
                    raise FrameError(str(s), index, "a virial without a cell volume")
                stress = -virial[k].reshape(3, 3) / volume
            attach_labels(atoms, energy[k, 0], force[k].reshape(n, 3), stress)
            frames.append(mark_source(atoms, path, index))
    return frames


def read_deepmd(path) -> list[Atoms]:
    """A system folder, or every system below a multi-system folder (sorted)."""
    path = Path(path)
    if is_system(path):
        return read_system(path)
    systems = sorted(s for s in path.iterdir() if s.is_dir() and is_system(s)) if path.is_dir() else []
    if not systems:
        raise FrameError(str(path), None, "not a DeePMD system (no type.raw) nor a folder of systems")
    return [a for s in systems for a in read_system(s)]


def _write_system(path: Path, frames: list[Atoms]) -> None:
    path.mkdir(parents=True)
    symbols = frames[0].get_chemical_symbols()
    type_map = list(dict.fromkeys(symbols))
    (path / "type_map.raw").write_text("\n".join(type_map) + "\n")
    (path / "type.raw").write_text("\n".join(str(type_map.index(s)) for s in symbols) + "\n")
    if not frames[0].pbc.any():
        (path / "nopbc").write_text("")
    rows = {"box": [], "coord": [], "energy": [], "force": [], "virial": []}
    have_stress = True
    for k, atoms in enumerate(frames):
        lab = labels(atoms)
        if "energy" not in lab or "forces" not in lab:
            raise FrameError(str(path), k, "DeePMD data needs energy and forces for every frame")
        rows["box"].append(atoms.cell.array.reshape(9))
        rows["coord"].append(atoms.positions.reshape(-1))
        rows["energy"].append(float(lab["energy"]))
        rows["force"].append(lab["forces"].reshape(-1))
        if "stress" in lab and atoms.cell.rank == 3:
            sigma = voigt_6_to_full_3x3_stress(lab["stress"])
            rows["virial"].append((-sigma * atoms.get_volume()).reshape(9))
        else:
            have_stress = False
    for start in range(0, len(frames), SET_SIZE):
        d = path / f"set.{start // SET_SIZE:03d}"
        d.mkdir()
        for name, values in rows.items():
            if name == "virial" and not have_stress:
                continue
            np.save(d / f"{name}.npy", np.asarray(values[start:start + SET_SIZE], dtype=np.float64))


def write_deepmd(path, frames) -> list[Path]:
    """Write labelled frames as DeePMD system folder(s) at ``path`` (replaced as a whole, via a
    temporary folder). Returns the system folders written."""
    path = Path(path)
    frames = list(frames)
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    if path.exists() and not is_deepmd(path):
        raise FrameError(str(path), None, "exists and is not DeePMD data: not overwritten (give a new folder)")
    groups: dict[tuple, list[Atoms]] = {}
    for atoms in frames:
        groups.setdefault(tuple(atoms.get_chemical_symbols()), []).append(atoms)
    tmp = path.with_name(path.name + ".part")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        if len(groups) == 1:
            _write_system(tmp, frames)
            names = [path]
        else:
            tmp.mkdir(parents=True)
            names = []
            for k, members in enumerate(groups.values()):
                _write_system(tmp / f"sys.{k:03d}", members)
                names.append(path / f"sys.{k:03d}")
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return names
