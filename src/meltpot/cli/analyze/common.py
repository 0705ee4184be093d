"""Helpers of the ``meltpot analyze`` commands: frames with a progress bar, output names."""

from __future__ import annotations

from pathlib import Path

from ...analysis.trajectory import parse_types

#: count frames up front (for the progress bar's total) only below this file size
COUNT_LIMIT = 1 << 30


def n_selected(path, start: int, stop: int | None, step: int) -> int:
    """Number of frames ``start:stop:step`` of a trajectory file."""
    from ...analysis.trajectory import count_frames

    n = count_frames(path)
    return len(range(start, n if stop is None else min(stop, n), step))


def frames_with_bar(args, desc: str):
    """Frames of ``args.trajectory`` (``--start/--stop/--step``, ``--types``) with a tqdm bar."""
    from ...analysis.trajectory import iter_frames, progress_bar

    total = n_selected(args.trajectory, args.start, args.stop, args.step)
    frames = iter_frames(args.trajectory, start=args.start, stop=args.stop, step=args.step,
                         types=parse_types(args.types))
    return progress_bar(frames, total, desc)


def frames_and_total(args):
    """(frame iterator, number of frames or None): counted only for files below
    :data:`COUNT_LIMIT` and with a progress bar."""
    from ...analysis.trajectory import iter_frames

    path = Path(args.trajectory)
    total = None
    if path.exists() and path.stat().st_size < COUNT_LIMIT and not args.no_progress:
        total = n_selected(path, args.start, args.stop, args.step)
    return iter_frames(path, start=args.start, stop=args.stop, step=args.step, types=parse_types(args.types)), total


def output_paths(out) -> tuple[Path, Path]:
    """``out`` (its folder created) and the PNG beside it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out, out.with_suffix(".png")



def run_defaults(args, paths, *, timestep_from_files: bool = False, need_timestep: bool = False,
                 units_choices=None) -> None:
    """Fill in what the command line left out, in place: ``args.units`` from ``--config``, else
    from the input files (:func:`meltpot.analysis.trajectory.input_settings`), else metal;
    ``args.timestep`` from ``--config`` (md.timestep), else (``timestep_from_files``) from the
    files; ``args.types`` from the config's elements; ``args.time_unit`` from the units. Says on
    stderr where a value came from when it was not given."""
    import sys

    from ...errors import MeltpotError
    from ..options import TIME_UNIT

    cfg = None
    if getattr(args, "config", None):
        from ...config import load_config

        cfg = load_config(args.config)
    want_timestep = hasattr(args, "timestep") and args.timestep is None
    found = {"source": {}}
    want_units = hasattr(args, "units") and args.units is None
    if cfg is None and (want_units or (want_timestep and timestep_from_files)):
        from ...analysis.trajectory import input_settings

        found = input_settings(paths)
    notes = []
    if want_units:
        if cfg is not None:
            args.units = cfg["units"]
        elif found.get("units"):
            args.units = found["units"]
            notes.append(f"units {args.units} (from {found['source']['units']})")
        else:
            args.units = "metal"
        if units_choices is not None and args.units not in units_choices:
            raise MeltpotError(f"units {args.units!r} are not supported here; give --units, one of "
                               f"{', '.join(sorted(units_choices))}")
    if want_timestep:
        if cfg is not None:
            args.timestep = float(cfg["md"]["timestep"])
        elif timestep_from_files and found.get("timestep") is not None:
            args.timestep = float(found["timestep"])
            notes.append(f"timestep {args.timestep:g} (from {found['source']['timestep']})")
        elif need_timestep:
            raise MeltpotError("give --timestep (MD time per step of the files' step counter) or --config "
                               "(its md.timestep); the input files do not state it")
    if cfg is not None and hasattr(args, "types") and not args.types:
        args.types = [f"{k + 1}={el}" for k, el in enumerate(cfg["elements"])]
    if hasattr(args, "time_unit") and args.time_unit is None:
        units = getattr(args, "units", None) or (cfg["units"] if cfg is not None else None)
        args.time_unit = TIME_UNIT.get(units, "ps")
    if notes:
        print("meltpot: " + ", ".join(notes), file=sys.stderr)
