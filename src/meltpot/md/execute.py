"""Run a rendered protocol and write its tables and summary.

After the LAMMPS run (also after a failed one, from the partial log) the thermo blocks of
``log.lammps`` become ``thermo.csv`` (every row, with ``stage`` and ``T_target`` columns)
and ``thermo_<tag>.csv`` per tagged production stage (melt_quench: one per temperature).
``summary.json`` records the protocol, its parameters and potential, the stages with their
mean temperature, potential energy, enthalpy and volume per atom and density over the
stage, the outputs, wall time and steps/s, and ``status`` ("ok" or "failed" with the error).
Ramps add ``ramp.csv`` (block-averaged T and H per atom at the set pressure) and its
H(T) analysis (:func:`meltpot.analysis.nucleation.analyze_ramp`) in the summary.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import MeltpotError
from ..manifest import write_json
from .plan import prepare
from .potential import Potential
from .protocols import Script
from .runner import MDError, RunResult, run_lammps

log = logging.getLogger(__name__)


def _finite(x):
    x = float(x)
    return x if math.isfinite(x) else None


def thermo_tables(script: Script, log_path: Path, out_dir: Path) -> tuple[list[str], object]:
    """Write ``thermo.csv`` (and per-tag tables) from ``log_path``; returns the files and
    the table (None when the log has no thermo block yet)."""
    from ..analysis.trajectory import read_log

    try:
        table = read_log(log_path)
    except MeltpotError:
        return [], None
    names = [s.name for s in script.stages]
    block = table["run"].to_numpy()
    table.insert(1, "stage", [names[b] if b < len(names) else f"run{b}" for b in block])
    targets = []
    for b, step0 in zip(block, table["Step"].to_numpy()):
        st = script.stages[b] if b < len(script.stages) else None
        if st is None or st.T is None:
            targets.append(np.nan)
            continue
        first = table["Step"][block == b].iloc[0]
        frac = (step0 - first) / st.steps if st.steps else 0.0
        targets.append(st.T + (st.T_stop - st.T) * min(max(frac, 0.0), 1.0))
    table.insert(2, "T_target", targets)
    files = ["thermo.csv"]
    table.to_csv(out_dir / "thermo.csv", index=False)
    for st in script.stages:
        if st.tag:
            part = table[table["stage"] == st.name]
            if len(part):
                name = f"thermo_{st.tag}.csv"
                part.to_csv(out_dir / name, index=False)
                files.append(name)
    return files, table


def stage_means(script: Script, table, n_atoms: int) -> list[dict]:
    """Per stage: steps, targets and means over its rows (second half for non-ramps)."""
    out = []
    for i, st in enumerate(script.stages):
        d = {"name": st.name, "kind": st.kind, "ensemble": st.ensemble, "steps": st.steps,
             "T_target": st.T, "T_stop": st.T_stop, "dump": st.dump, "pressure": st.pressure, "tag": st.tag}
        if table is not None:
            rows = table[table["run"] == i]
            d["completed_steps"] = int(rows["Step"].iloc[-1] - rows["Step"].iloc[0]) if len(rows) else 0
            if st.kind not in ("ramp", "cool"):
                rows = rows.iloc[len(rows) // 2:]
            if len(rows):
                d.update(T_mean=_finite(rows["Temp"].mean()), pe_per_atom=_finite(rows["PotEng"].mean() / n_atoms),
                         H_per_atom=_finite(rows["Enthalpy"].mean() / n_atoms),
                         volume_per_atom=_finite(rows["Volume"].mean() / n_atoms),
                         density=_finite(rows["Density"].mean()), P_mean=_finite(rows["Press"].mean()))
        out.append(d)
    return out


#: eV per bar·Å³
EV_PER_BAR_A3 = 1.0e5 * 1.0e-30 / 1.602176634e-19


def ramp_table(script: Script, table, n_atoms: int, points: int = 50):
    """H(T) of the ramp stage, block-averaged into about ``points`` rows: ``T`` (mean
    instantaneous temperature), ``T_target``, ``H_per_atom`` = (E_total + P_set·V)/N.

    The set pressure, not LAMMPS's instantaneous ``Enthalpy`` (whose P·V term fluctuates
    by ~0.05 eV/atom in a few hundred atoms), makes H a clean function of T."""
    import pandas as pd

    rows = table[table["stage"] == "ramp"]
    s = script.params.get("settings", {})
    p_set = float(s.get("P", 0.0)) * (1.0e4 if s.get("units", "metal") == "metal" else 1.0)
    conv = EV_PER_BAR_A3 if s.get("units", "metal") == "metal" else 1.0
    H = (rows["TotEng"].to_numpy() + p_set * rows["Volume"].to_numpy() * conv) / n_atoms
    k = max(1, len(rows) // points)
    n = len(rows) // k * k
    block = lambda x: np.asarray(x, dtype=float)[:n].reshape(-1, k).mean(axis=1)  # noqa: E731
    return pd.DataFrame({"T": block(rows["Temp"]), "T_target": block(rows["T_target"]), "H_per_atom": block(H)})


def ramp_analysis(script: Script, table, n_atoms: int, out_dir: Path | None = None) -> dict | None:
    """:func:`analyze_ramp` of :func:`ramp_table` (eV/atom, K) as a dict; writes
    ``ramp.csv`` into ``out_dir``."""
    from ..analysis.nucleation import analyze_ramp

    if script.protocol != "ramp" or table is None or not (table["stage"] == "ramp").any():
        return None
    ht = ramp_table(script, table, n_atoms)
    if out_dir is not None:
        ht.to_csv(out_dir / "ramp.csv", index=False)
    try:
        res = analyze_ramp(ht["T"].to_numpy(), ht["H_per_atom"].to_numpy())
    except MeltpotError as exc:
        return {"error": str(exc)}
    return {k: (_finite(v) if isinstance(v, float) else v) for k, v in res.as_dict().items()}


def run_script(script: Script, input_path: str | Path, *, mpi: int = 1, name: str | None = None,
               progress_every: float = 10.0, potential: Potential | None = None) -> dict:
    """Run a prepared script in its folder; write tables and ``summary.json``; return the
    summary. Re-raises :class:`MDError` after writing the summary of the failed run.
    ``potential``: the script's potential when it needs ``lmp`` switches (KOKKOS for ML-IAP
    on a GPU, :meth:`Potential.command_line`)."""
    input_path = Path(input_path)
    out_dir = input_path.parent
    n_atoms = int(script.params.get("n_atoms", 0)) or None
    result: RunResult | None = None
    error: MDError | None = None
    t0 = time.perf_counter()
    extra_args, environment = potential.command_line(mpi) if potential is not None else ([], {})
    try:
        result = run_lammps(input_path, out_dir, mpi=mpi, name=name or f"{script.protocol}:{out_dir.name}",
                            progress_every=progress_every, extra_args=extra_args, environment=environment)
    except MDError as exc:
        error = exc
    files, table = thermo_tables(script, out_dir / "log.lammps", out_dir)
    if n_atoms is None:
        n_atoms = 1
    summary = {
        "protocol": script.protocol, "status": "ok" if error is None else "failed",
        "error": None if error is None else str(error),
        "lammps_message": None if error is None else error.lammps_message,
        "input": input_path.name, "log": "log.lammps", "n_atoms": n_atoms,
        "total_steps": script.total_steps, "params": script.params,
        "stages": stage_means(script, table, n_atoms),
        "outputs": {f: (out_dir / f).exists() for f in [*script.outputs, *files]},
        "wall_s": time.perf_counter() - t0,
        "steps_per_s": None if result is None else result.steps_per_s,
        "mpi_ranks": None if result is None else result.ranks,
        "warnings": [] if result is None else result.warnings,
        "command": [] if result is None else result.command,
    }
    ramp = ramp_analysis(script, table, n_atoms, out_dir)
    if ramp is not None:
        summary["ramp"] = ramp
    write_json(out_dir / "summary.json", summary)  # strict JSON: a NaN stage mean (a blown-up run) as null
    if error is not None:
        raise error
    missing = [f for f, ok in summary["outputs"].items() if not ok]
    if missing:
        raise MDError(f"LAMMPS run in {out_dir} finished but did not write {', '.join(missing)} "
                      f"(input {input_path}, log {out_dir / 'log.lammps'})", input=str(input_path))
    return summary


def run_protocol(cfg: Mapping, name: str, out_dir: str | Path, *, replica: int = 0, mpi: int | None = None,
                 potential: Potential | None = None, progress_every: float = 10.0,
                 trajectory: str | Path | None = None) -> dict:
    """Prepare and run protocol ``name`` of a validated config in ``out_dir``; ``minimize``
    runs :func:`meltpot.md.minimize.minimize_config` instead (on ``trajectory``, default
    ``md.protocols.minimize.trajectory``). An ML potential's route is
    checked against the LAMMPS build first (EngineError naming what is missing; nothing is
    written)."""
    if potential is not None and potential.route is not None:
        from ..lammps_env import check_route

        check_route(potential.route, potential.device)
    if name == "minimize":
        from .minimize import minimize_config

        return minimize_config(cfg, out_dir, trajectory=trajectory, potential=potential)
    script, path = prepare(cfg, name, out_dir, replica, potential)
    ranks = int(mpi if mpi is not None else cfg["md"]["run"].get("mpi", 1))
    return run_script(script, path, mpi=ranks, name=f"{name}:{Path(out_dir).name}", progress_every=progress_every,
                      potential=potential)
