"""Checks that a frame can enter a dataset, with errors that name the file, frame and cause.

Units: distances and cell widths in Å, forces in eV/Å (reduced units in LJ runs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from meltpot.data.frames import labels
from meltpot.errors import FrameError

__all__ = ["ValidationSettings", "check_frame", "validate_frames", "cell_widths"]

log = logging.getLogger(__name__)

_AXES = "abc"


@dataclass
class ValidationSettings:
    """What a valid frame must satisfy.

    elements: allowed chemical symbols (None: any).
    min_distance: smallest allowed interatomic distance, periodic images included (Å).
    min_cell_width: smallest allowed perpendicular cell width (Å), e.g. the descriptor
        cutoff; None: not checked.
    require_stress: reject frames without a stress label.
    max_force: largest allowed |F| on any atom (eV/Å); None: not checked.
    """

    elements: list[str] | None = None
    min_distance: float = 0.5
    min_cell_width: float | None = None
    require_stress: bool = False
    max_force: float | None = None


def cell_widths(cell) -> np.ndarray:
    """Perpendicular widths (Å) of a cell along a, b, c: volume / area of the opposite face."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    areas = np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(areas > 0, volume / areas, 0.0)


def _nonfinite(name: str, values: np.ndarray, per_atom: bool) -> str | None:
    """Message for the first non-finite entry of ``values`` (None if all finite)."""
    values = np.asarray(values, dtype=float)
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    if values.ndim == 0:
        return f"{name} is {values.item()}"
    if per_atom:
        rows = np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))
        first = rows[0]
        more = f" ({len(rows)} atoms in all)" if len(rows) > 1 else ""
        return f"{name} of atom {first} are not finite: {values[first].tolist()}{more}"
    return f"{name} is not finite: {values.tolist()}"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def check_frame(atoms: Atoms, settings: ValidationSettings, source: str,
                index: int | None) -> None:
    """Raise :class:`FrameError` (``source``, ``index``) if ``atoms`` cannot enter a dataset.

    Checked in order: atoms present, energy and forces present, forces shape, finite
    positions/cell/energy/forces/stress, allowed elements, periodic in a, b and c with a
    non-zero volume, perpendicular widths ≥ ``min_cell_width``, stress present if
    required, |F| ≤ ``max_force``, no two atoms (periodic images included) closer than
    ``min_distance``. The first failure is raised.
    """

    def fail(msg: str):
        raise FrameError(source, index, msg)

    n = len(atoms)
    if n == 0:
        fail("frame has no atoms")
    lab = labels(atoms)
    if "energy" not in lab:
        fail("missing energy label")
    if "forces" not in lab:
        fail("missing forces label")
    forces = lab["forces"]
    if forces.shape != (n, 3):
        fail(f"forces have shape {forces.shape}, expected ({n}, 3)")

    for msg in (_nonfinite("positions", atoms.positions, per_atom=True),
                _nonfinite("cell", atoms.cell.array, per_atom=False),
                _nonfinite("energy", lab["energy"], per_atom=False),
                _nonfinite("forces", forces, per_atom=True),
                _nonfinite("stress", lab["stress"], per_atom=False) if "stress" in lab else None):
        if msg:
            fail(msg)

    if settings.elements is not None:
        allowed = set(settings.elements)
        unknown = sorted(set(atoms.get_chemical_symbols()) - allowed)
        if unknown:
            fail(f"unknown element(s) {', '.join(unknown)} (allowed: "
                 f"{', '.join(settings.elements)})")

    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not pbc.all():
        fail(f"not periodic in all three directions (pbc={pbc.tolist()}); meltpot needs "
             "periodic cells")
    volume = abs(np.linalg.det(atoms.cell.array))
    if not volume > 1e-9:
        fail(f"cell has zero volume (cell={atoms.cell.array.tolist()})")

    if settings.min_cell_width is not None:
        widths = cell_widths(atoms.cell.array)
        k = int(np.argmin(widths))
        if widths[k] < settings.min_cell_width:
            fail(f"cell width along {_AXES[k]} is {_fmt(widths[k])} Å, below the required "
                 f"{_fmt(settings.min_cell_width)} Å (min_cell_width): the descriptor cutoff "
                 "needs a larger cell (use a supercell)")

    if settings.require_stress and "stress" not in lab:
        fail("missing stress label (require_stress is set)")

    if settings.max_force is not None:
        fnorm = np.linalg.norm(forces, axis=1)
        k = int(np.argmax(fnorm))
        if fnorm[k] > settings.max_force:
            fail(f"force on atom {k} is {_fmt(fnorm[k])} eV/Å, above max_force "
                 f"{_fmt(settings.max_force)} eV/Å")

    if settings.min_distance and settings.min_distance > 0 and n > 0:
        i, j, d = neighbor_list("ijd", atoms, float(settings.min_distance))
        if len(d):
            k = int(np.argmin(d))
            a, b = int(i[k]), int(j[k])
            a, b = min(a, b), max(a, b)
            pair = (f"atom {a} and its own periodic image" if a == b
                    else f"atoms {a} and {b}")
            fail(f"{pair} are {d[k]:.4f} Å apart, closer than min_distance "
                 f"{_fmt(settings.min_distance)} Å")


def validate_frames(frames: Iterable[Atoms], settings: ValidationSettings, source: str | None,
                    on_error: str = "fail") -> tuple[list[Atoms], list[dict]]:
    """Check every frame; return ``(kept_frames, report)``.

    Each frame is named by ``info["source"]``/``info["source_index"]`` when present, else by
    ``source`` and its position in ``frames``. ``on_error``: "fail" raises the first
    :class:`FrameError`; "drop" drops bad frames, reports each as
    ``{"source", "index", "reason"}`` and logs a warning with the count.
    """
    if on_error not in ("fail", "drop"):
        raise ValueError(f"on_error must be 'fail' or 'drop', not {on_error!r}")
    kept: list[Atoms] = []
    report: list[dict] = []
    n_total = 0
    for pos, atoms in enumerate(frames):
        n_total += 1
        src = atoms.info.get("source", source if source is not None else "<frames>")
        idx = atoms.info.get("source_index", pos)
        idx = int(idx) if idx is not None else pos
        try:
            check_frame(atoms, settings, str(src), idx)
        except FrameError as exc:
            if on_error == "fail":
                raise
            report.append({"source": exc.source, "index": exc.index, "reason": exc.reason})
            continue
        kept.append(atoms)
    if report:
        where = source if source is not None else "frames"
        log.warning("dropped %d of %d frames from %s (first: %s)", len(report), n_total,
                    where, f"{report[0]['source']}, frame {report[0]['index']}: "
                           f"{report[0]['reason']}")
    return kept, report
