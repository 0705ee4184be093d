"""Helpers shared by the reference engines and the LAMMPS inputs of :mod:`meltpot.md` and
:mod:`meltpot.analysis`: element checks and masses, potential-file lookup, MD segment times,
and the text of numbers and seeds in LAMMPS commands. Imports no engine (the engines import it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from ..errors import ConfigError, EngineError
from .base import MDSegment


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _looks_like_file(token: str) -> bool:
    """A token that names a file: has a dot in its base name and is not a number."""
    return not _is_number(token) and "." in os.path.basename(token)


def potential_search_dirs(base_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for potential files: the cwd, ``base_dir``, LAMMPS's potentials."""
    dirs = [Path.cwd()]
    if base_dir is not None:
        dirs.append(Path(base_dir))
    try:
        from ..lammps_env import potentials_dir

        dirs.append(potentials_dir())
    except EngineError:  # LAMMPS not importable: its folder is not searched
        pass
    return dirs


def resolve_file(token: str, base_dir: str | os.PathLike | None = None) -> Path | None:
    """Absolute path of ``token`` if it names an existing file (an existing path, or one
    relative to ``base_dir`` or the LAMMPS potentials folder, in that order), else None."""
    p = Path(token).expanduser()
    if p.is_absolute():
        return p if p.is_file() else None
    for d in potential_search_dirs(base_dir):
        cand = d / p
        if cand.is_file():
            return cand.resolve()
    return None


def resolve_tokens(tokens: Sequence[str], base_dir, what: str) -> list[str]:
    """Replace file-like tokens (a dot in the name, or a path separator; not numbers) by
    absolute paths; EngineError for a file-like token naming no file. Other tokens
    (element names, numbers, sub-style names) pass unchanged."""
    out = []
    for tok in tokens:
        if _is_number(tok) or not ("." in tok or "/" in tok or os.sep in tok):
            out.append(tok)
            continue
        path = resolve_file(tok, base_dir)
        if path is not None:
            out.append(str(path))
        elif _looks_like_file(tok):
            where = ", ".join(str(d) for d in potential_search_dirs(base_dir))
            raise EngineError(f"potential file {tok!r} in {what} not found; looked in: {where}")
        else:
            out.append(tok)
    return out


def check_symbols(atoms: Atoms, elements: Sequence[str]) -> np.ndarray:
    """0-based element index of every atom; EngineError naming any unknown symbol."""
    symbols = np.asarray(atoms.get_chemical_symbols())
    index = {s: i for i, s in enumerate(elements)}
    unknown = sorted(set(symbols.tolist()) - set(index))
    if unknown:
        raise EngineError(f"atoms contain element(s) {', '.join(unknown)} not in the engine's "
                          f"elements {list(elements)}")
    lookup = np.array([index[s] for s in np.unique(symbols)], dtype=int)
    return lookup[np.searchsorted(np.unique(symbols), symbols)]


def element_masses(elements: Sequence[str], units_: str,
                   masses: Mapping[str, float] | None) -> np.ndarray:
    """Mass per element (amu in metal units, 1.0 in lj units unless ``masses`` says)."""
    masses = dict(masses or {})
    extra = set(masses) - set(elements)
    if extra:
        raise ConfigError(f"masses given for {sorted(extra)}, which are not among the "
                          f"elements {list(elements)}")
    out = []
    for el in elements:
        if el in masses:
            out.append(float(masses[el]))
        elif units_ == "lj":
            out.append(1.0)
        elif el in atomic_numbers:
            out.append(float(atomic_masses[atomic_numbers[el]]))
        else:
            raise ConfigError(f"no mass known for element {el!r}; give it in `masses`")
    return np.array(out)


def segment_times(segments: Sequence[MDSegment]) -> tuple[np.ndarray, np.ndarray]:
    """Start step and start time of every segment (same unit as the timesteps)."""
    steps = np.array([s.steps for s in segments], dtype=int)
    times = np.array([s.steps * s.timestep for s in segments], dtype=float)
    return (np.concatenate([[0], np.cumsum(steps)[:-1]]).astype(int),
            np.concatenate([[0.0], np.cumsum(times)[:-1]]))


def lammps_number(x) -> str:
    """Full-precision text of a number for a LAMMPS command."""
    return repr(float(x))


def lammps_seed(seed: int) -> int:
    """A seed LAMMPS accepts (1 … 9e8); valid seeds pass through unchanged."""
    seed = int(seed)
    return seed if 0 < seed <= 900_000_000 else seed % 900_000_000 + 1


# --------------------------------------------------------------------------- engine
