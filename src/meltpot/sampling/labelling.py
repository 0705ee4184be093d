"""Labelling by single points: sample cheaply, pick frames, label them with the reference.

The common DFT practice: the MD of the sampling units runs with a cheap engine
(``labelling.sampler``: a classical potential or a meltpot model), frames are picked from
those trajectories, and only the picked frames get the expensive reference (GPAW, CP2K, …)
single points, in chunks that run as separate jobs (a cluster profile spreads them).

Picking (``labelling.pick``):

* ``every``: every k-th frame of each unit's trajectory (from its first);
* ``fps``: ``n_frames`` frames by farthest-point sampling in descriptor space over all units
  together: each frame is summarised by the mean and standard deviation over its atoms of every
  symmetry function of the run's feature set, per element, standardised over the frames;
  skmatter's FPS (Euclidean) then picks frames that are far apart, which spreads them over the
  state grid. The first pick is the frame farthest from the mean.

The number of picks is known from the config alone (:func:`planned_picks`), so the workflow
knows its chunks before any MD has run.

A picked frame keeps its tags (state, phase, T, …) and records where it came from
(``info["sampled_from"]``, ``info["sampled_index"]``: the unit's file and the frame's place
there) and the sampler's energy (``info["sampler_energy"]``, eV). A frame whose SCF does not converge is dropped and listed in the
chunk's report (``on_error: drop``), or stops the job (``fail``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from tqdm.auto import tqdm

from ..data.io import read_frames, write_frames
from ..errors import ConfigError, EngineError
from .grid import expand_states

log = logging.getLogger(__name__)


def unit_frame_counts(cfg: dict) -> dict[str, int]:
    """Frames each unit the sampler runs produces (production steps // sample_every per state);
    AIMD units (``aimd: true``) are not picked from."""
    return {u.unit_id: sum(s.production_steps // s.sample_every for s in u.steps)
            for u in expand_states(cfg) if not u.aimd}


def planned_picks(cfg: dict) -> int:
    """How many frames the pick keeps, from the config alone."""
    pick = cfg["labelling"]["pick"]
    counts = unit_frame_counts(cfg)
    if pick["method"] == "every":
        return sum(math.ceil(n / pick["every"]) for n in counts.values())
    return int(pick["n_frames"])


def n_chunks(cfg: dict) -> int:
    return math.ceil(planned_picks(cfg) / cfg["labelling"]["chunk_size"])


def check_labelling(cfg: dict, source: str = "config") -> None:
    """ConfigError before any work: a sampler, a pick that fits the frames the units produce."""
    lab = cfg["labelling"]
    if not lab["enabled"]:
        return
    if "sampler" not in lab:
        raise ConfigError(f"{source}: labelling.sampler is required when labelling is enabled (the cheap engine "
                          "that runs the sampling MD)")
    pick = lab["pick"]
    total = sum(unit_frame_counts(cfg).values())
    if total == 0:
        raise ConfigError(f"{source}: labelling is enabled but the sampling units produce no frames")
    if pick["method"] == "fps":
        if pick.get("n_frames") is None:
            raise ConfigError(f"{source}: labelling.pick.n_frames is required with method fps")
        if pick["n_frames"] > total:
            raise ConfigError(f"{source}: labelling.pick.n_frames = {pick['n_frames']} is more than the "
                              f"{total} frames the sampling units produce")


# --------------------------------------------------------------------------- picking
def frame_summaries(frames: Sequence[Atoms], featureset) -> np.ndarray:
    """(n_frames, 2 Σ_e F_e): per element the mean and standard deviation over the frame's atoms
    of each symmetry function (zeros for an element the frame lacks)."""
    from ..descriptors.compute import AtomsDescriptor

    feat = AtomsDescriptor(featureset)
    rows = []
    for atoms in frames:
        per = feat.per_element(atoms)
        parts = []
        for el in featureset.elements:
            G = per.get(el)
            n_f = len(featureset.per_element[el])
            if G is None or len(G) == 0:
                parts += [np.zeros(n_f), np.zeros(n_f)]
            else:
                parts += [G.mean(axis=0), G.std(axis=0)]
        rows.append(np.concatenate(parts))
    return np.asarray(rows)


def farthest_point_indices(X: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows of ``X`` by farthest-point sampling on standardised columns (skmatter's FPS),
    starting from the row farthest from the mean."""
    from skmatter.sample_selection import FPS

    std = X.std(axis=0)
    keep = std > 1e-12 * max(1.0, float(np.abs(X).max()))
    Z = (X[:, keep] - X[:, keep].mean(axis=0)) / std[keep]
    if n >= len(Z):
        return np.arange(len(Z))
    first = int(np.argmax((Z ** 2).sum(axis=1)))
    fps = FPS(n_to_select=n, initialize=first).fit(Z)
    return np.asarray(fps.selected_idx_, dtype=int)


def pick_frames(cfg: dict, frame_files: Sequence[str | Path], featureset=None) -> list[Atoms]:
    """The picked frames, in the order of the files and of the frames in them."""
    pick = cfg["labelling"]["pick"]
    frames: list[Atoms] = []
    for path in frame_files:
        for k, atoms in enumerate(read_frames(path)):
            atoms.info["sampler_energy"] = float(atoms.get_potential_energy())
            atoms.info["sampler_engine"] = atoms.info.get("engine", "")
            atoms.info["sampled_from"] = str(path)
            atoms.info["sampled_index"] = k
            frames.append(atoms)
    if pick["method"] == "every":
        chosen = [i for i, a in enumerate(frames) if a.info["sampled_index"] % pick["every"] == 0]
    else:
        if featureset is None:
            raise ConfigError("pick method fps needs the run's feature set")
        chosen = sorted(farthest_point_indices(frame_summaries(frames, featureset), int(pick["n_frames"])).tolist())
    expected = planned_picks(cfg)
    if len(chosen) != expected:
        raise EngineError(f"picked {len(chosen)} frames from {len(frames)}, but the config plans {expected}: "
                          "did a sampling unit produce fewer frames than its steps say?")
    out = []
    for i in chosen:
        a = frames[i]
        a.calc = None      # the sampler's labels are not the dataset's
        out.append(a)
    return out


def write_chunks(frames: Sequence[Atoms], chunk_size: int, out_dir: str | Path, n_expected: int) -> list[Path]:
    """chunk_000.extxyz … (positions and tags, no labels)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n_expected):
        path = out_dir / f"chunk_{k:03d}.extxyz"
        write_frames(path, list(frames[k * chunk_size:(k + 1) * chunk_size]))
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- labelling
def label_frames(frames: Sequence[Atoms], engine, on_error: str = "fail", progress: bool = True,
                 source: str = "chunk") -> tuple[list[Atoms], list[dict], dict]:
    """Single points of ``frames`` with ``engine``: (labelled frames, dropped frames' records,
    timing). ``on_error``: ``fail`` raises at the first frame whose calculation fails (SCF not
    converged, or any engine error), naming the frame; ``drop`` leaves it out and records it."""
    if on_error not in ("fail", "drop"):
        raise ConfigError(f"on_error {on_error!r} unknown; allowed: fail, drop")
    labelled, dropped = [], []
    t0 = time.perf_counter()
    for k, atoms in enumerate(tqdm(frames, desc=f"label {source}", unit="frame", disable=not progress)):
        where = (f"{source} frame {k} (sampled frame {atoms.info.get('sampled_index', '?')} of "
                 f"{atoms.info.get('sampled_from', '?')})")
        try:
            lab = engine.label(atoms)
        except EngineError as exc:
            if on_error == "fail":
                raise EngineError(f"{where}: {exc}") from None
            log.warning("dropped %s: %s", where, exc)
            dropped.append({"frame": k, "sampled_from": atoms.info.get("sampled_from"),
                            "sampled_index": atoms.info.get("sampled_index"), "error": str(exc)})
            continue
        for key in ("state_id", "branch", "phase", "T_target", "P_target", "composition", "T_inst", "step",
                    "time", "segment", "sampled_from", "sampled_index", "sampler_energy", "sampler_engine"):
            if key in atoms.info and key not in lab.info:
                lab.info[key] = atoms.info[key]
        lab.info["engine"] = engine.name
        labelled.append(lab)
    wall = time.perf_counter() - t0
    timing = {"frames": len(frames), "labelled": len(labelled), "dropped": len(dropped), "wall_s": wall,
              "s_per_frame": wall / max(len(frames), 1)}
    log.info("%s: %d of %d frames labelled in %.1f s (%.1f s per frame)", source, len(labelled), len(frames),
             wall, timing["s_per_frame"])
    return labelled, dropped, timing


def reusable_labels(frames: Sequence[Atoms], path, tol: float = 1e-6):
    """(labelled, dropped, timing) from an earlier labelled file of the same frames, or None.

    The file is taken when it holds every frame of ``frames`` in order, or all but frames its
    report (``<file>.json`` beside it, as ``meltpot label run --report`` writes) lists as
    dropped, with the same species, cell and positions (to ``tol`` Å): expensive DFT labels kept
    (e.g. in the repository) serve a rerun. Anything else returns None (and says why in the log)."""
    import json

    path = Path(path)
    if not path.exists():
        log.info("no earlier labels at %s: computing", path)
        return None
    report_path = path.with_suffix(".json")
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    dropped = report.get("dropped_frames", [])
    skip = {int(d["frame"]) for d in dropped}
    earlier = read_frames(path) if path.stat().st_size else []
    kept = [a for k, a in enumerate(frames) if k not in skip]
    if len(earlier) != len(kept):
        log.info("%s holds %d frames, the chunk %d: computing", path, len(earlier), len(kept))
        return None
    for k, (a, b) in enumerate(zip(kept, earlier)):
        same = (len(a) == len(b) and np.array_equal(a.numbers, b.numbers)
                and np.allclose(a.cell.array, b.cell.array, atol=tol, rtol=0)
                and np.allclose(a.positions, b.positions, atol=tol, rtol=0))
        if not same:
            log.info("%s frame %d is not the chunk's frame: computing", path, k)
            return None
    timing = {key: report.get(key) for key in ("frames", "labelled", "dropped", "wall_s", "s_per_frame")}
    timing["reused_from"] = str(path)
    return earlier, dropped, timing
