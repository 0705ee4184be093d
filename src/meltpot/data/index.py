"""The dataset index: one Parquet row per frame of a run, over all trajectory files.

Columns: ``frame_id`` (0..n-1, the dataset order), ``file`` (path relative to the index's
folder), ``file_index`` (frame index inside the file), the tags of
:data:`~meltpot.data.frames.TAG_KEYS`, ``n_atoms``, ``symbols`` (comma-joined element
list), ``energy`` and ``energy_per_atom`` (eV or ε), ``volume_per_atom`` (Å³ or σ³),
``T_inst`` (K or reduced), ``P_inst`` (virial + kinetic pressure; GPa or reduced; NaN
without stress), ``has_stress``, ``origin`` (``file#frame`` of an imported frame's original file).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from ase.units import GPa, kB

from .frames import TAG_KEYS, labels


def frame_row(atoms, units: str) -> dict:
    """The index columns of one labelled frame (file columns are added by the caller)."""
    lab = labels(atoms)
    n = len(atoms)
    vol = atoms.get_volume() if atoms.cell.rank == 3 else math.nan
    row = {k: atoms.info.get(k) for k in TAG_KEYS}
    row["units"] = row["units"] or units
    T = atoms.info.get("T_inst", math.nan)
    p_inst = math.nan
    if "stress" in lab and np.isfinite(vol):
        stress = np.asarray(lab["stress"], dtype=float)
        diag = np.diag(stress) if stress.shape == (3, 3) else stress.reshape(6)[:3]
        p_vir = -float(diag.mean())
        k_b = kB if row["units"] == "metal" else 1.0
        p_kin = n * k_b * T / vol if np.isfinite(T) else 0.0
        p_inst = (p_vir + p_kin) / (GPa if row["units"] == "metal" else 1.0)
    energy = float(lab["energy"]) if "energy" in lab else math.nan
    row.update(
        n_atoms=n,
        symbols=",".join(sorted(set(atoms.get_chemical_symbols()))),
        energy=energy,
        energy_per_atom=energy / n,
        volume_per_atom=vol / n,
        T_inst=float(T) if T is not None else math.nan,
        P_inst=p_inst,
        has_stress="stress" in lab,
        origin=str(atoms.info.get("origin", "")),
    )
    return row


def build_index(entries: Iterable[tuple[str | Path, int, object]], root: str | Path, units: str) -> pd.DataFrame:
    """Index rows for ``(file, file_index, atoms)`` triples; ``file`` stored relative to ``root``."""
    rows = []
    for file, idx, atoms in entries:
        row = frame_row(atoms, units)
        row["file"] = os.path.relpath(Path(file).resolve(), Path(root).resolve())
        row["file_index"] = int(idx)
        rows.append(row)
    df = pd.DataFrame(rows)
    df.insert(0, "frame_id", np.arange(len(df), dtype=np.int64))
    for col in ("T_target", "P_target"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def state_summary(index: pd.DataFrame) -> pd.DataFrame:
    """Per-state table: frames, target and mean instantaneous T, P, energy and volume per atom."""
    g = index.groupby("state_id", sort=False)
    out = g.agg(branch=("branch", "first"), phase=("phase", "first"), composition=("composition", "first"),
                frames=("frame_id", "size"), T_target=("T_target", "first"), T_mean=("T_inst", "mean"),
                T_std=("T_inst", "std"), P_target=("P_target", "first"), P_mean=("P_inst", "mean"),
                energy_per_atom_mean=("energy_per_atom", "mean"), energy_per_atom_std=("energy_per_atom", "std"),
                volume_per_atom_mean=("volume_per_atom", "mean"))
    return out.reset_index()


def read_index_frames(index: pd.DataFrame, root: Path, frame_ids: np.ndarray):
    """Frames of ``frame_ids`` (in that order) with their (source file, index in file)."""
    from .io import read_frames

    rows = index.set_index("frame_id", drop=False).loc[frame_ids]
    frames, sources = [None] * len(rows), [None] * len(rows)
    pos = np.arange(len(rows))
    for file, grp in pd.DataFrame({"file": rows["file"].to_numpy(), "fi": rows["file_index"].to_numpy(),
                                   "pos": pos}).groupby("file", sort=False):
        path = Path(root) / file
        loaded = read_frames(path)
        for fi, p in zip(grp["fi"], grp["pos"]):
            frames[p] = loaded[int(fi)]
            sources[p] = (str(path), int(fi))
    return frames, sources
