"""Checkpoints of a sampling run, so that a killed (AI)MD job resumes where it stopped.

A unit's frames stream into ``.<out>.partial``; after every frame the engine's state
(:meth:`meltpot.reference.ase_engine.AseEngine.checkpoint`: positions, momenta, cell,
integrator and thermostat variables, random-number state) is written atomically to
``.<out>.checkpoint.npz`` with the byte length of the partial file at that moment and a
fingerprint of the run (unit, seed, MD segments, engine settings). On rerun a checkpoint with
the same fingerprint continues the run: frames already written are kept as they are (bytes
appended after the last checkpoint, a frame cut off by the kill, are dropped: they will be
computed again), and the run goes on from the checkpoint's step.

Arrays are stored as float64 (exact); the rest as one JSON text (Python floats and ints
round-trip exactly).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def checkpoint_path(out_path: str | os.PathLike) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(f".{out_path.name}.checkpoint.npz")


def partial_path(out_path: str | os.PathLike) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(f".{out_path.name}.partial")


def fingerprint(unit_id: str, seed: int, segments, engine, n_atoms: int) -> str:
    """sha256 of what determines the trajectory: a checkpoint of another run is never used."""
    text = json.dumps({"unit": unit_id, "seed": int(seed), "n_atoms": int(n_atoms),
                       "segments": [asdict(s) for s in segments], "engine": engine.describe()},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def write_checkpoint(path: Path, state: dict, fp: str, partial_bytes: int, frames: int) -> None:
    """Write atomically (temporary file, then rename)."""
    meta = {"fingerprint": fp, "segment": int(state["segment"]), "done": int(state["done"]),
            "meta": state["meta"], "partial_bytes": int(partial_bytes), "frames": int(frames)}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, __meta__=np.array(json.dumps(meta, allow_nan=False)),
                 **{f"a:{k}": np.asarray(v, dtype=float) for k, v in state["arrays"].items()})
    os.replace(tmp, path)


def read_checkpoint(path: Path, fp: str, partial: Path) -> dict | None:
    """The state to resume from, or None (with the reason logged) when the checkpoint does not
    belong to this run or does not match the partial file."""
    if not path.exists() or not partial.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            arrays = {k[2:]: z[k] for k in z.files if k.startswith("a:")}
    except (OSError, ValueError, KeyError) as exc:
        log.warning("checkpoint %s unreadable (%s): starting the unit again", path, exc)
        return None
    if meta["fingerprint"] != fp:
        log.warning("checkpoint %s is of another run (config or engine changed): starting the unit again", path)
        return None
    size = partial.stat().st_size
    if size < meta["partial_bytes"]:
        log.warning("%s is shorter (%d bytes) than its checkpoint says (%d): starting the unit again",
                    partial, size, meta["partial_bytes"])
        return None
    return {"segment": meta["segment"], "done": meta["done"], "meta": meta["meta"], "arrays": arrays,
            "partial_bytes": meta["partial_bytes"], "frames": meta["frames"]}


def truncate_partial(partial: Path, n_bytes: int) -> None:
    """Drop what was appended after the checkpoint (a frame the kill may have cut)."""
    if partial.stat().st_size > n_bytes:
        with open(partial, "r+b") as fh:
            fh.truncate(n_bytes)
