"""Reproducible seeds derived from the run's master seed and names."""

from __future__ import annotations

import hashlib


def derive_seed(master: int, *names) -> int:
    """A 31-bit seed from ``master`` and any names (stable across runs and platforms).

    LAMMPS needs seeds in 1..2^31-1; numpy accepts them too.
    """
    blob = ":".join([str(int(master))] + [str(n) for n in names]).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") % (2**31 - 2) + 1
