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
    from tqdm import tqdm

    from ...analysis.trajectory import iter_frames

    total = n_selected(args.trajectory, args.start, args.stop, args.step)
    frames = iter_frames(args.trajectory, start=args.start, stop=args.stop, step=args.step,
                         types=parse_types(args.types))
    return tqdm(frames, total=total, unit="frame", desc=desc, leave=False)


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


def progress(iterable, total, desc, enabled, unit="frame"):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False)
