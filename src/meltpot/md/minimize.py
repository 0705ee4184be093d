"""Inherent structures of a trajectory: every ``every``-th frame energy-minimised at fixed cell.

The minimisation itself is :class:`meltpot.analysis.local_order.Minimizer` (in-process
LAMMPS); this module feeds it a dump (or extxyz) frame by frame with the run's
:class:`~meltpot.md.potential.Potential` and writes

* ``inherent.extxyz``: the minimised frames (``timestep``, ``inherent_energy`` in eV,
  ``inherent_fnorm`` in eV/Å in each frame's info; readable by
  :func:`meltpot.analysis.trajectory.iter_frames`), appended frame by frame so that a
  failure keeps the frames done so far;
* ``inherent.csv``: frame, timestep, energy (eV), energy per atom, fnorm;
* ``summary.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError, MeltpotError
from ..manifest import write_json
from .potential import Potential
from .runner import MDError

log = logging.getLogger(__name__)


def minimize_trajectory(trajectory: str | Path, out_dir: str | Path, potential: Potential, *, every: int = 1,
                        min_style: str = "cg", etol: float = 0.0, ftol: float = 1e-6, maxiter: int = 10000,
                        progress_every: float = 10.0) -> dict:
    """Minimise frames 0, every, 2·every, … of ``trajectory`` into ``out_dir`` (see module doc)."""
    import pandas as pd
    from ase.io import write

    from ..analysis.local_order import Minimizer
    from ..analysis.trajectory import iter_frames

    if potential.command_line()[0]:
        raise ConfigError(f"minimize runs LAMMPS inside Python, where the KOKKOS switches of the {potential.route} "
                          f"route on {potential.device} cannot be given: minimize with device cpu")
    trajectory = Path(trajectory)
    if not trajectory.exists():
        raise ConfigError(f"minimize: trajectory {trajectory} does not exist")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    xyz = out / "inherent.extxyz"
    if xyz.exists():
        xyz.unlink()
    masses = dict(zip(potential.elements, potential.masses))
    minimizer = Minimizer(pair_style=potential.pair_style, pair_coeff=potential.pair_coeff,
                          elements=potential.elements, units=potential.units, masses=masses,
                          pre_commands=potential.pre_commands, extra_commands=potential.post_commands,
                          min_style=min_style, etol=etol, ftol=ftol, maxiter=maxiter)
    types = {i + 1: el for i, el in enumerate(potential.elements)}
    rows = []
    t0 = t_log = time.perf_counter()
    error = None
    try:
        for frame in iter_frames(trajectory, step=int(every), types=types):
            i = int(frame.info.get("frame", len(rows)))
            try:
                inh = minimizer(frame)
            except MeltpotError as exc:
                raise MDError(f"minimize: {trajectory}, frame {i}: {exc}", lammps_message=str(exc),
                              input=str(trajectory)) from None
            inh.info["timestep"] = int(frame.info.get("timestep", i))
            keep = {k: inh.arrays[k] for k in ("id", "type") if k in inh.arrays}
            inh.arrays = {"numbers": inh.arrays["numbers"], "positions": inh.arrays["positions"], **keep}
            write(xyz, inh, format="extxyz", append=True)
            e = float(inh.info["inherent_energy"])
            rows.append({"frame": i, "timestep": inh.info["timestep"], "energy": e, "energy_per_atom": e / len(inh),
                         "fnorm": float(inh.info["inherent_fnorm"])})
            if time.perf_counter() - t_log >= progress_every:
                t_log = time.perf_counter()
                log.info("minimize %s: %d frames, %.2f s/frame", trajectory.name, len(rows),
                         (t_log - t0) / len(rows))
    except MDError as exc:
        error = exc
    pd.DataFrame(rows, columns=["frame", "timestep", "energy", "energy_per_atom", "fnorm"]).to_csv(
        out / "inherent.csv", index=False)
    summary = {"protocol": "minimize", "status": "ok" if error is None else "failed",
               "error": None if error is None else str(error), "trajectory": str(trajectory),
               "frames": len(rows), "every": int(every), "min_style": min_style, "etol": etol, "ftol": ftol,
               "maxiter": maxiter, "potential": potential.describe(), "wall_s": time.perf_counter() - t0,
               "outputs": {"inherent.extxyz": xyz.exists(), "inherent.csv": True}}
    write_json(out / "summary.json", summary)
    if error is not None:
        raise error
    if not rows:
        raise MDError(f"minimize: {trajectory} has no frames", input=str(trajectory))
    return summary


def minimize_config(cfg: Mapping, out_dir: str | Path, trajectory: str | Path | None = None,
                    potential: Potential | None = None) -> dict:
    """:func:`minimize_trajectory` with ``md.protocols.minimize`` of a validated config."""
    sec = cfg["md"]["protocols"]["minimize"]
    path = trajectory if trajectory is not None else sec.get("trajectory")
    if path is None:
        raise ConfigError("minimize needs a trajectory: md.protocols.minimize.trajectory or --input")
    path = Path(path)
    if not path.is_absolute() and trajectory is None:
        path = Path(cfg.get("_base_dir", ".")) / path
    pot = potential if potential is not None else Potential.from_reference(cfg)
    return minimize_trajectory(path, out_dir, pot, every=sec["every"], min_style=sec["min_style"],
                               etol=sec["etol"], ftol=sec["ftol"], maxiter=sec["maxiter"])
