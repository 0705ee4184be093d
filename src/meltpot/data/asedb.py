"""ASE databases (``.db``, SQLite) of labelled frames, read and written through :mod:`ase.db`.

Each row is a frame: its atoms, the stored calculator results (energy, forces, stress in eV,
Å, eV/Å³, ASE's sign) and its key–value pairs, which become ``info`` entries (and are written
back from ``info`` entries that are numbers, strings or booleans).
"""
from __future__ import annotations

import os
import numbers
from pathlib import Path

from ase import Atoms

from .frames import attach_labels, labels, mark_source
from ..errors import FrameError

#: info keys ase.db reserves or that meltpot sets itself on reading
_RESERVED = {"source", "source_index", "id", "unique_id", "ctime", "mtime", "user", "calculator", "energy",
             "forces", "stress", "free_energy", "natoms", "numbers", "positions", "cell", "pbc", "charge",
             "magmom", "fmax", "smax", "volume", "mass"}


def read_asedb(path) -> list[Atoms]:
    """Every row of the database ``path`` in id order (a row without energy and forces fails,
    naming the row's position and id)."""
    import ase.db

    path = Path(path)
    frames: list[Atoms] = []
    try:
        db = ase.db.connect(str(path), type="db")
        rows = list(db.select(sort="id"))
    except Exception as exc:  # noqa: BLE001 - any sqlite/ase failure names the file
        raise FrameError(str(path), None, f"cannot open as an ASE database ({type(exc).__name__}: {exc})") from exc
    for k, row in enumerate(rows):
        try:
            atoms = row.toatoms()
            energy, forces = row.get("energy"), row.get("forces")
            if energy is None or forces is None:
                raise ValueError(f"row id {row.id} has no energy and forces")
            stress = row.get("stress")
        except Exception as exc:  # noqa: BLE001
            raise FrameError(str(path), k, f"{type(exc).__name__}: {exc}") from exc
        atoms.calc = None
        attach_labels(atoms, energy, forces, stress, **dict(row.key_value_pairs))
        frames.append(mark_source(atoms, path, k))
    return frames


def write_asedb(path, frames) -> None:
    """Write labelled frames as a new database ``path`` (built beside it, then renamed: an
    existing file is replaced whole, never appended to)."""
    import ase.db

    path = Path(path)
    tmp = path.with_name(path.name + ".part.db")
    if tmp.exists():
        tmp.unlink()
    try:
        with ase.db.connect(str(tmp), type="db", append=False) as db:
            for k, atoms in enumerate(frames):
                lab = labels(atoms)
                if "energy" not in lab or "forces" not in lab:
                    raise FrameError(str(path), k, "an ASE database row here needs energy and forces")
                out = attach_labels(Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc),
                                    lab["energy"], lab["forces"], lab.get("stress"))
                kv = {key: value for key, value in atoms.info.items()
                      if key not in _RESERVED and key.isidentifier()
                      and isinstance(value, (str, bool, numbers.Real)) and not isinstance(value, complex)}
                db.write(out, key_value_pairs=kv)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
