"""One exploration job: MD with the committee in LAMMPS, and its frames with their deviation.

The committee export runs in the ``meltpot`` pair style, which integrates the committee mean and
writes the deviation (``model_devi.out``: max/min/mean σ_F over atoms, σ_E per atom, atoms
extrapolating) every ``exploration.every`` steps, the dump interval. A run that LAMMPS stops
(atoms lost, non-finite energies, more atoms extrapolating than ``extrapolation_limit``, a max
force deviation above ``halt_deviation``, averaged over ``halt_window`` lines) counts as failed:
the frames it dumped before are kept.

Outputs in the job folder: the LAMMPS run (``in.lammps``, ``log.lammps``, ``explore.lammpstrj``: every
stage dumped at the deviation interval,
``model_devi.out``, ``summary.json``), ``frames.extxyz`` (every dumped frame, positions only,
tagged with the job and its deviation) and ``exploration.json`` (status, frames, steps/s, the
pair style's extrapolation warnings, the data frame a ``start`` job began with: ``start.extxyz``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError, FrameError, MeltpotError
from ..md.runner import MDError
from ..seeds import derive_seed
from .settings import exploration_jobs

log = logging.getLogger(__name__)

DEVIATION_FILE = "model_devi.out"
DUMP_FILE = "explore.lammpstrj"
START_FILE = "start.extxyz"


def find_job(cfg: dict, job_id: str):
    jobs = {j.id: j for j in exploration_jobs(cfg)}
    if job_id not in jobs:
        raise ConfigError(f"no exploration job {job_id!r}; known: {', '.join(jobs)}")
    return jobs[job_id]


def _dumped_frames(path: Path) -> list:
    """The frames of the exploration dump (a frame cut short by a failed run is left out)."""
    from ..analysis.trajectory import iter_frames

    frames = []
    if not path.exists():
        return frames
    try:
        for atoms in iter_frames(path):
            frames.append(atoms)
    except FrameError as exc:   # the last frame of a run stopped while dumping
        log.warning("%s: stopped reading at a broken frame (%s)", path, exc)
    return frames


def start_frame(job, index_path, iteration: int, seed: int):
    """(atoms, where) of the frame a ``start`` job begins with: one frame of state ``job.start``
    in the dataset ``index_path``, drawn by a seed of (iteration, job)."""
    import pandas as pd

    from ..data.index import read_index_frames

    index_path = Path(index_path)
    index = pd.read_parquet(index_path)
    rows = index[index["state_id"] == job.start]
    if rows.empty:
        raise MeltpotError(f"exploration job {job.id}: start state {job.start!r} has no frame in {index_path} "
                           f"(states there: {sorted(index['state_id'].unique())})")
    rng = np.random.default_rng(derive_seed(seed, "active", "start", int(iteration), job.id))
    fid = int(rows["frame_id"].to_numpy()[rng.integers(len(rows))])
    frames, sources = read_index_frames(index, index_path.parent, np.array([fid], dtype=np.int64))
    atoms = frames[0].copy()
    atoms.calc = None
    return atoms, {"state_id": job.start, "file": str(sources[0][0]), "file_index": int(sources[0][1])}


def halt_commands(every: int, halt: float, window: int = 1, clip: float | None = None) -> list[str]:
    """LAMMPS lines that stop the run once the max force deviation, averaged over the last
    ``window`` deviation lines (each line counted at most ``clip``), exceeds ``halt``.

    ``compute pair meltpot`` exposes the pair style's last deviation line (element 3: max σ_F). A
    window of one stops at the first line above. A wider window lets a run go on through a one-line
    spike (two atoms meeting once, the next lines back in the data) and still stops one that has
    left the data, whose deviation stays high even where single lines dip below ``halt`` (a rule
    "every line above" let such runs go on, and their frames of collapsed liquid, forces of 100 eV/Å,
    came in as candidates). ``clip`` (above ``halt``) bounds what one line adds to the mean, so that a
    single close contact (one line of 4.8 eV/Å) cannot stop a run alone. ``fix ave/time … ave window``
    keeps the running mean; the step condition waits until the window is full (the runs start at
    step 0).
    """
    lines = ["compute meltpot_devi all pair meltpot",
             "variable meltpot_max_devi_f equal c_meltpot_devi[3]"]
    if window <= 1:
        return lines + [f"fix meltpot_devi_halt all halt {every} v_meltpot_max_devi_f > {float(halt)!r} "
                        "error hard message yes"]
    full = (window - 1) * every
    value = "v_meltpot_max_devi_f"
    if clip is not None:
        c = float(clip)       # (LAMMPS's min() takes a vector, not two numbers)
        lines.append(f"variable meltpot_devi_clipped equal v_meltpot_max_devi_f-(v_meltpot_max_devi_f>{c!r})*"
                     f"(v_meltpot_max_devi_f-{c!r})")
        value = "v_meltpot_devi_clipped"
    return lines + [
        f"fix meltpot_devi_window all ave/time {every} 1 {every} {value} ave window {window}",
        f"variable meltpot_devi_mean equal f_meltpot_devi_window*(step>={full})",
        f"fix meltpot_devi_halt all halt {every} v_meltpot_devi_mean > {float(halt)!r} error hard message yes"]


def explore(cfg: dict, job_id: str, committee, plugin, out_dir, *, iteration: int = 0, device: str = "cpu",
            index=None, progress_every: float = 10.0) -> dict:
    """Run exploration job ``job_id`` with the committee export ``committee`` (TorchScript, the
    LAMMPS plugin ``plugin``) in ``out_dir``; returns the ``exploration.json`` record. A job with
    ``start`` begins from a frame of the dataset ``index`` (the iteration's index.parquet)."""
    from ..data.io import write_frames
    from ..manifest import write_json
    from ..md.execute import run_protocol
    from ..md.plan import apply_overrides
    from ..md.potential import Potential
    from ..model.committee import read_deviation

    job = find_job(cfg, job_id)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [out / DUMP_FILE, out / DEVIATION_FILE]:
        stale.unlink(missing_ok=True)   # a rerun must not read an earlier attempt's frames
    run_cfg = apply_overrides(cfg, job.protocol, job.override_args())
    # each job and iteration its own velocities (the protocol's seed would repeat across jobs)
    run_cfg["seed"] = derive_seed(cfg["seed"], "active", int(iteration), job.id)
    started_from = None
    if job.start:
        if index is None:
            raise MeltpotError(f"exploration job {job.id} starts from state {job.start!r}: give the dataset index")
        atoms, started_from = start_frame(job, index, iteration, cfg["seed"])
        write_frames(out / START_FILE, [atoms], format="extxyz")
        run_cfg["md"]["run"]["structure_file"] = str((out / START_FILE).resolve())
    every = cfg["active_learning"]["exploration"]["every"]
    pot = Potential.meltpot_plugin(plugin, committee, cfg["elements"], device=device, units=cfg["units"],
                                   masses=cfg["reference"].get("masses"), deviation=(every, DEVIATION_FILE),
                                   extrapolation_limit=cfg["active_learning"]["exploration"]["extrapolation_limit"])
    # one dump over every stage (melting and cooling too: where a young committee fails first), at
    # the deviation interval
    pot.post_commands += [f"dump meltpot_explore all custom {every} {DUMP_FILE} id type element x y z",
                          f"dump_modify meltpot_explore sort id element {' '.join(cfg['elements'])} "
                          "format float %.12g"]
    ex = cfg["active_learning"]["exploration"]
    if ex["halt_deviation"] is not None:
        pot.post_commands += halt_commands(every, ex["halt_deviation"], ex["halt_window"], ex["halt_clip"])
    error = None
    try:
        summary = run_protocol(run_cfg, job.protocol, out, potential=pot, progress_every=progress_every)
    except MDError as exc:
        error = str(exc).splitlines()[0]
        log.warning("exploration %s failed: %s", job_id, error)
        summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    devi_path = out / DEVIATION_FILE
    devi = read_deviation(devi_path) if devi_path.exists() and devi_path.stat().st_size else None
    frames = _dumped_frames(out / DUMP_FILE)
    by_step = {} if devi is None else {int(r.step): r for r in devi.itertuples()}
    kept = []
    for atoms in frames:
        step = int(atoms.info["timestep"])
        row = by_step.get(step)
        if row is None:
            continue     # no deviation line for this step (the run stopped between the two writes)
        clean = atoms.copy()
        for key in list(clean.arrays):
            if key not in ("numbers", "positions"):
                del clean.arrays[key]
        clean.info = {"state_id": job.id, "branch": f"active:{iteration}", "phase": job.phase,
                      "T_target": job.T, "P_target": job.P, "step": step, "iteration": int(iteration),
                      "explore_job": job.id, "max_devi_f": float(row.max_devi_f),
                      "avg_devi_f": float(row.avg_devi_f), "devi_e": float(row.devi_e),
                      "extrapolating": int(row.extrapolating)}
        kept.append(clean)
    write_frames(out / "frames.extxyz", kept, format="extxyz")   # empty when the run failed before its first dump
    extrapolating = None if devi is None else int((devi["extrapolating"] > 0).sum())
    record = {"job": job.id, "protocol": job.protocol, "phase": job.phase, "T": job.T, "P": job.P,
              "iteration": int(iteration), "started_from": started_from,
              "status": "failed" if error else "ok", "error": error,
              "frames": len(kept), "steps_run": int(devi["step"].max()) if devi is not None and len(devi) else 0,
              "total_steps": summary.get("total_steps"), "steps_per_s": summary.get("steps_per_s"),
              "wall_s": summary.get("wall_s"), "deviation_lines": 0 if devi is None else len(devi),
              "steps_extrapolating": extrapolating,
              "max_devi_f": None if devi is None or not len(devi) else float(np.nanmax(devi["max_devi_f"])),
              "warnings": summary.get("warnings", [])}
    write_json(out / "exploration.json", record)
    return record
