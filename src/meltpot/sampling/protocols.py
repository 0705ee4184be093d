"""MD protocols that turn a sampling unit into labelled frames.

* single state: (liquids: melt at ``melt_temperature``) → equilibrate at T → produce;
* quench branch (thesis §3.2.2, §4.2.1): melt, then for each temperature in order: resize
  the cell to the density at that T (NVT) or keep the barostat on (NPT), equilibrate,
  produce — one continuous trajectory;
* heating branch: the same from a crystal, temperatures ascending.

Frames are tagged (:data:`meltpot.data.frames.TAG_KEYS`) and streamed to an extxyz file
that appears under its final name only when the unit has finished (an interrupted run
never leaves a truncated file that looks complete). With an engine that can checkpoint (the
ASE engines, DFT included) a killed run resumes from its last frame
(:mod:`meltpot.sampling.checkpoint`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..data.frames import composition_string
from ..data.io import append_extxyz, read_frames
from ..reference.base import MDSegment, ReferenceEngine
from ..seeds import derive_seed
from .checkpoint import checkpoint_path, fingerprint, partial_path, read_checkpoint, truncate_partial, write_checkpoint
from .grid import SamplingUnit, StateSpec
from .structures import (initial_structure, reference_volume_per_atom,
                         volume_per_atom_from_density)

log = logging.getLogger(__name__)


def volume_per_atom(cfg: dict, unit: SamplingUnit, spec: StateSpec) -> float | None:
    """Volume per atom (Å³ or σ³) fixed by the state, or None under NPT."""
    if spec.density is not None:
        masses = cfg["reference"].get("masses")
        return volume_per_atom_from_density(spec.density, unit.composition, cfg["elements"], masses)
    if spec.number_density is not None:
        return 1.0 / spec.number_density
    return None


def starting_volume_per_atom(cfg: dict, unit: SamplingUnit) -> float:
    """Volume per atom of the starting lattice (the first step's, or a reference guess under NPT)."""
    v = volume_per_atom(cfg, unit, unit.steps[0])
    if v is not None:
        return v
    if "volume_per_atom" in cfg["sampling"]:
        return float(cfg["sampling"]["volume_per_atom"])
    if cfg.get("units") == "lj":
        return 1.0  # reduced density 1: close to LJ fcc near zero pressure
    return reference_volume_per_atom(unit.composition, cfg["elements"])


def default_barostat(phase: str) -> str:
    """NPT coupling by phase: ``aniso`` for hcp (c/a must relax), ``iso`` otherwise.

    Cubic crystals keep a cubic cell: under anisotropic coupling bcc Al (mechanically
    unstable along the Bain path for the Mendelev EAM) turns into fcc within picoseconds.
    """
    return "aniso" if phase == "hcp" else "iso"


def build_segments(cfg: dict, unit: SamplingUnit, n_atoms: int, seed: int) -> tuple[list[MDSegment], dict[int, StateSpec]]:
    """MD segments of a unit, and which segment index samples which state."""
    md = cfg["md"]
    samp = cfg["sampling"]
    common = dict(timestep=md["timestep"], tdamp=md.get("tdamp"), pdamp=md.get("pdamp"))
    barostat = unit.barostat or default_barostat(unit.phase)
    segments: list[MDSegment] = []
    production: dict[int, StateSpec] = {}
    first = unit.steps[0]

    def ensemble_kw(spec: StateSpec):
        if spec.P is not None:
            return dict(ensemble="npt", pressure=spec.P, barostat=barostat)
        v = volume_per_atom(cfg, unit, spec)
        return dict(ensemble="nvt", volume=v * n_atoms)

    velocity_seed = seed
    if unit.phase == "liquid":
        melt_T = float(samp["melt_temperature"])
        segments.append(MDSegment(temperature=melt_T, steps=samp["melt_steps"], velocity_seed=velocity_seed,
                                  label="melt", **ensemble_kw(first), **common))
        if samp["melt_steps"] > 0 and melt_T > first.T:
            # cool linearly from the melt to the first temperature over the melt time again
            segments.append(MDSegment(temperature=melt_T, temperature_stop=first.T, steps=samp["melt_steps"],
                                      label="cool", **ensemble_kw(first), **common))
        velocity_seed = None
    for spec in unit.steps:
        segments.append(MDSegment(temperature=spec.T, steps=spec.equilibration_steps, velocity_seed=velocity_seed,
                                  label=f"equilibrate {spec.state_id}", **ensemble_kw(spec), **common))
        velocity_seed = None
        production[len(segments)] = spec
        segments.append(MDSegment(temperature=spec.T, steps=spec.production_steps, sample_every=spec.sample_every,
                                  label=f"produce {spec.state_id}", **ensemble_kw(spec), **common))
    return segments, production


def _melt_with(engine: ReferenceEngine, atoms, melt: list[MDSegment], seed: int, unit_id: str):
    """The liquid after the melt and cooling segments, run by ``engine`` (velocities kept)."""
    from dataclasses import replace

    last_run = max(i for i, seg in enumerate(melt) if seg.steps > 0) if any(seg.steps for seg in melt) else None
    if last_run is None:
        return atoms
    segs = [replace(seg, sample_every=seg.steps if i == last_run else 0) for i, seg in enumerate(melt)]
    t0 = time.perf_counter()
    final = None
    for _, frame in engine.md(atoms, segs, seed):
        final = frame
    if final is None or final.get_velocities() is None:
        raise RuntimeError(f"{unit_id}: the melt with {engine.name} gave no final frame with velocities")
    final.calc = None
    log.info("%s: melted and cooled with %s in %.1f s (%d steps)", unit_id, engine.name,
             time.perf_counter() - t0, sum(seg.steps for seg in melt))
    return final


def sample_unit(cfg: dict, unit: SamplingUnit, engine: ReferenceEngine, out_path: str | Path,
                progress: bool = True, melt_engine: ReferenceEngine | None = None) -> dict:
    """Run one sampling unit and write its frames to ``out_path`` (extxyz).

    ``melt_engine``: runs a liquid's melt and cooling instead of ``engine`` (an AIMD state
    pre-equilibrated with the cheap sampler: thousands of melt steps are out of DFT's reach);
    ``engine`` continues from its last positions and velocities.

    Returns a summary: frames per state, mean instantaneous temperature, wall time.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    seed = derive_seed(cfg["seed"], "sample", unit.unit_id)
    rng = np.random.default_rng(seed)
    v0 = starting_volume_per_atom(cfg, unit)
    atoms = initial_structure(unit.phase, unit.n_atoms, v0, unit.composition, cfg["elements"], rng)
    n = len(atoms)
    if n != unit.n_atoms:
        log.info("%s: %s lattice gives %d atoms (asked for %d)", unit.unit_id, unit.phase, n, unit.n_atoms)
    segments, production = build_segments(cfg, unit, n, seed)
    expected = sum(production[i].production_steps // production[i].sample_every for i in production)
    comp = composition_string(atoms.get_chemical_symbols(), order=cfg["elements"])
    n_melt = sum(1 for seg in segments if seg.label in ("melt", "cool")) if melt_engine is not None else 0
    melt, segments = segments[:n_melt], segments[n_melt:]
    production = {i - n_melt: spec for i, spec in production.items()}

    tmp = partial_path(out_path)
    ckpt = checkpoint_path(out_path)
    checkpoints = getattr(engine, "supports_checkpoints", False)
    fp = fingerprint(unit.unit_id, seed, segments, engine, n) if checkpoints else ""
    resume = read_checkpoint(ckpt, fp, tmp) if checkpoints else None
    counts: dict[str, list[float]] = {s.state_id: [] for s in unit.steps}
    if resume is None:
        if tmp.exists():
            tmp.unlink()
    else:
        truncate_partial(tmp, resume["partial_bytes"])
        for frame in read_frames(tmp):
            counts[frame.info["state_id"]].append(frame.info.get("T_inst", math.nan))
        log.info("%s: resuming after frame %d (segment %d, step %d of it)", unit.unit_id, resume["frames"],
                 resume["segment"], resume["done"])
    n_done = sum(len(v) for v in counts.values())
    t0 = time.perf_counter()
    if melt and resume is None:   # (a resumed run starts from its checkpoint's positions)
        atoms = _melt_with(melt_engine, atoms, melt, seed, unit.unit_id)
    bar = tqdm(total=expected, initial=n_done, desc=unit.unit_id, unit="frame", disable=not progress, leave=False)
    run = engine.md(atoms, segments, seed) if resume is None else engine.md(atoms, segments, seed, resume=resume)
    try:
        for seg_index, frame in run:
            spec = production.get(seg_index)
            if spec is None:
                continue
            frame.info.update(
                state_id=spec.state_id, branch=spec.branch, phase=spec.phase, T_target=spec.T,
                P_target=spec.P if spec.P is not None else math.nan, composition=comp,
                engine=engine.name, units=cfg.get("units", "metal"))
            append_extxyz(tmp, frame)
            counts[spec.state_id].append(frame.info.get("T_inst", math.nan))
            n_done += 1
            if checkpoints:
                write_checkpoint(ckpt, engine.checkpoint(), fp, tmp.stat().st_size, n_done)
            bar.update(1)
    finally:
        bar.close()
    if not tmp.exists():
        raise RuntimeError(f"{unit.unit_id}: no frames were produced (check production_steps and sample_every)")
    os.replace(tmp, out_path)
    ckpt.unlink(missing_ok=True)
    wall = time.perf_counter() - t0
    summary = {
        "unit_id": unit.unit_id, "kind": unit.kind, "n_atoms": n, "file": str(out_path),
        "wall_s": wall, "seed": seed, "resumed_after_frames": resume["frames"] if resume else 0,
        "states": {sid: {"frames": len(ts), "T_inst_mean": float(np.mean(ts)) if ts else math.nan}
                   for sid, ts in counts.items()},
    }
    log.info("%s: %d frames in %.1f s (%.2f frames/s)", unit.unit_id, sum(len(t) for t in counts.values()),
             wall, sum(len(t) for t in counts.values()) / max(wall, 1e-9))
    return summary
