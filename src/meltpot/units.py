"""Units of reported model errors, one table for training, evaluation, selection and summaries.

Energy errors are per atom in 10⁻³ × the data's energy unit (meV/atom in ``metal`` units,
10⁻³ ε/atom in ``lj``); forces in the data's force unit (eV/Å, ε/σ).
"""

from __future__ import annotations

from .errors import MeltpotError

#: energy errors are reported in 10⁻³ × the data's energy unit per atom
ENERGY_SCALE = 1000.0
UNIT_LABELS = {
    "metal": {"energy": "meV/atom", "force": "eV/Å", "energy_data": "eV/atom"},
    "lj": {"energy": "10⁻³ ε/atom", "force": "ε/σ", "energy_data": "ε/atom"},
}


def unit_labels(units: str) -> dict:
    """``energy`` (error unit), ``force`` and ``energy_data`` (unit of E per atom) labels."""
    if units not in UNIT_LABELS:
        raise MeltpotError(f"units {units!r} unknown; allowed: {', '.join(UNIT_LABELS)}")
    return UNIT_LABELS[units]


def energy_unit(units: str) -> tuple[float, str]:
    """Factor and name of the unit energy errors per atom are reported in."""
    return ENERGY_SCALE, unit_labels(units)["energy"]
