"""Exceptions that name what is at fault (file, frame, key, value)."""

from __future__ import annotations


class MeltpotError(Exception):
    """Base class: every error meltpot raises on purpose derives from it."""


class ConfigError(MeltpotError):
    """An invalid configuration; raised before any work starts."""


class FrameError(MeltpotError):
    """A frame that cannot enter a dataset.

    ``source`` is the file (or other origin) and ``index`` the 0-based frame index in it.
    """

    def __init__(self, source: str, index: int | None, message: str):
        self.source = str(source)
        self.index = index
        self.reason = message
        where = self.source if index is None else f"{self.source}, frame {index}"
        super().__init__(f"{where}: {message}")


class EngineError(MeltpotError):
    """A reference engine failed (LAMMPS error, calculator missing, NaN energy...)."""


class ScfNotConverged(EngineError):
    """The SCF cycle of a DFT calculation did not converge."""
