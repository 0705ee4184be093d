"""Series from LAMMPS thermo logs for the melting and crystallisation analyses: enthalpy H(T) of
a heating/cooling ramp, H(t) of an isothermal run, and crystalline fraction and temperature of
solid–liquid coexistence runs (``meltpot analyze enthalpy|enthalpy-drop|two-phase``).

H defaults to ``TotEng + P·Volume`` with the *external* pressure ``pressure`` (NPT: ⟨H⟩ = ⟨E⟩ +
P_ext⟨V⟩); LAMMPS's ``enthalpy`` keyword uses the instantaneous virial pressure, whose
fluctuations in small cells (±0.05 eV/atom at 256 atoms) swamp the signal. Pressure × volume is
converted to the thermo energy unit with :data:`NKTV2P` (LAMMPS's ``force->nktv2p``).

The analyses themselves (jump/kink fits, drop detection, T_m bracket) are in
:mod:`meltpot.analysis.nucleation`; this module reads, selects and derives the series and
assembles the tables and summaries the commands write.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FrameError, MeltpotError

#: pressure × volume → energy in the thermo units (LAMMPS force->nktv2p)
NKTV2P = {"metal": 1.6021765e6, "real": 68568.415, "lj": 1.0, "si": 1.0}
T_NAMES = ("Temp", "c_thermo_temp", "v_temp", "v_T")
H_NAMES = ("Enthalpy", "v_H", "v_enthalpy", "v_h")
FRACTION_NAMES = ("v_fcryst", "v_crystalline", "v_fsolid", "v_fraction", "crystalline")
#: default pattern for the set temperature in two-phase file names: T900.log, run_T912.5_nph.log, …
T_PATTERN = r"T(?P<T>\d+(?:\.\d+)?)"


def column(table, name: str | None, candidates, source: str, what: str, option: str) -> str:
    """``name`` if given (it must exist), else the first of ``candidates`` present (any case);
    ``option``: the command-line option that names it, for the error message."""
    cols = ", ".join(map(str, table.columns))
    if name:
        if name not in table.columns:
            raise FrameError(source, None, f"no column {name!r} for the {what} (columns: {cols})")
        return name
    lookup = {str(c).lower(): c for c in table.columns}
    for cand in candidates:
        if cand.lower() in lookup:
            return lookup[cand.lower()]
    raise FrameError(source, None, f"no {what} column (tried {', '.join(candidates)}; columns: {cols}); "
                                   f"name it with {option}")


def thermo_block(path: Path, run: int | None, all_runs: bool = False):
    """The thermo rows of one block of a LAMMPS log (default: the last; negative from the end),
    or of all blocks."""
    from .trajectory import read_log

    table = read_log(path)
    runs = sorted(table["run"].unique())
    if all_runs:
        return table.reset_index(drop=True)
    if run is None:
        run = int(runs[-1])
    elif run < 0:
        run = int(runs[run]) if -run <= len(runs) else run
    if run not in runs:
        raise FrameError(str(path), None, f"no thermo block {run}; blocks: {[int(r) for r in runs]}")
    return table[table["run"] == run].reset_index(drop=True)


def log_atoms(path: Path, table) -> int | None:
    """Number of atoms: the ``Atoms`` column, else the last "… with N atoms" line of the log."""
    for c in table.columns:
        if str(c).lower() == "atoms":
            return int(table[c].iloc[-1])
    found = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = re.match(r"Loop time of .* with (\d+) atoms", line)
            if m:
                found = int(m.group(1))
    return found


def enthalpy_series(path: Path, table, *, H_column: str | None = None, pressure: float = 0.0,  # noqa: N803
                    units: str = "metal", natoms: int | None = None, total: bool = False) -> tuple[np.ndarray, dict]:
    """H per atom (or per system with ``total``) and how it was obtained (``H_from``,
    ``per_atom``, ``natoms``): the ``H_column``, else TotEng + ``pressure``·Volume (pressure in
    the thermo units of ``units``), else an enthalpy column (:data:`H_NAMES`)."""
    source = str(path)
    if H_column:
        col = column(table, H_column, (), source, "enthalpy", "--H-column")
        H, how = table[col].to_numpy(float), col
    elif any(str(c).lower() == "toteng" for c in table.columns):
        e = column(table, None, ("TotEng",), source, "total energy", "--H-column")
        H, how = table[e].to_numpy(float), e
        if pressure:
            if units not in NKTV2P:
                raise MeltpotError(f"--units must be one of {sorted(NKTV2P)}, got {units!r}")
            v = column(table, None, ("Volume", "v_vol", "v_volume", "v_V"), source, "volume", "--H-column")
            H = H + pressure * table[v].to_numpy(float) / NKTV2P[units]
            how = f"{e} + {pressure:g}·{v}"
    else:
        col = column(table, None, H_NAMES, source, "enthalpy (or TotEng)", "--H-column")
        H, how = table[col].to_numpy(float), col
    info = {"H_from": how, "per_atom": not total}
    if not total:
        n = natoms if natoms else log_atoms(path, table)
        if not n:
            raise FrameError(source, None, "number of atoms unknown (no Atoms column, no 'Loop time … with N "
                                           "atoms' line); give --natoms or --total")
        H = H / n
        info["natoms"] = int(n)
    if not np.all(np.isfinite(H)):
        row = int(np.argmax(~np.isfinite(H)))
        raise FrameError(source, None, f"row {row} (Step {int(table['Step'].iloc[row])}): non-finite enthalpy")
    return H, info


def time_series(table, timestep: float | None, time_unit: str, source: str) -> tuple[np.ndarray, str]:
    """Time and its axis label: Step × ``timestep`` if given, else LAMMPS's Time column, else Step."""
    if timestep is not None:
        return table["Step"].to_numpy(float) * timestep, f"time ({time_unit})"
    for c in table.columns:
        if str(c).lower() == "time":
            return table[c].to_numpy(float), f"time ({time_unit})"
    if "Step" not in table:
        raise FrameError(source, None, "no Step or Time column")
    return table["Step"].to_numpy(float), "step"


def blocks(x: np.ndarray, n: int) -> np.ndarray:
    """Means over consecutive blocks of ``n`` rows (a last partial block is dropped)."""
    if n <= 1:
        return x
    m = len(x) // n
    return x[: m * n].reshape(m, n).mean(axis=1)


def energy_label(per_atom: bool) -> str:
    return "eV/atom" if per_atom else "eV"


# ----------------------------------------------------------------------------- the analyses
def enthalpy_ramp(path, *, run=None, all_runs=False, skip=0, T_column=None, block=1, kind="auto",  # noqa: N803
                  min_points=3, jump_sigma=10.0, T_range=None, molar_mass=None, units="metal",  # noqa: N803
                  **enthalpy_kw):
    """H(T) of a heating/cooling ramp: (points table with branch and fit, the
    :class:`~meltpot.analysis.nucleation.RampAnalysis`, JSON summary). ``enthalpy_kw``: see
    :func:`enthalpy_series`."""
    from .nucleation import analyze_ramp, per_atom_units

    path = Path(path)
    source = str(path)
    table = thermo_block(path, run, all_runs).iloc[skip:].reset_index(drop=True)
    T_col = column(table, T_column, T_NAMES, source, "temperature", "--T-column")
    H, info = enthalpy_series(path, table, units=units, **enthalpy_kw)
    if block < 1:
        raise MeltpotError(f"--block must be ≥ 1, got {block}")
    T = blocks(table[T_col].to_numpy(float), block)
    Hb = blocks(H, block)
    try:
        r = analyze_ramp(T, Hb, kind=kind, min_points=min_points, jump_sigma=jump_sigma,
                         T_range=tuple(T_range) if T_range else None)
    except MeltpotError as exc:
        raise MeltpotError(f"{source}: {exc}") from None
    points = pd.DataFrame({"T": T, "H": Hb})
    points["branch"] = np.where(points["T"].rank(method="first") <= r.split, "low", "high")
    points["H_fit"] = np.where(points["branch"] == "low", r.low(T), r.high(T))
    summary = {"source": source, "T_column": T_col, **info, "rows": int(len(table)), "block": block,
               "points": int(len(T)), **r.as_dict()}
    if info["per_atom"] and units == "metal":
        summary.update(per_atom_units(r.latent_heat, None))
        if molar_mass:
            summary["cp_low_J_per_gK"] = per_atom_units(None, r.cp_low, molar_mass)["cp_J_per_gK"]
            summary["cp_high_J_per_gK"] = per_atom_units(None, r.cp_high, molar_mass)["cp_J_per_gK"]
    return points, r, summary


def enthalpy_time(path, *, run=None, all_runs=False, skip=0, timestep=None, time_unit="ps", window=0.1,
                  level=0.5, min_drop=None, smooth=5, **enthalpy_kw):
    """H(t) of an isothermal run and its crystallisation drop: (series table time/Step/H, the
    :class:`~meltpot.analysis.nucleation.Drop`, JSON summary, time axis label)."""
    from .nucleation import enthalpy_drop

    path = Path(path)
    source = str(path)
    table = thermo_block(path, run, all_runs).iloc[skip:].reset_index(drop=True)
    H, info = enthalpy_series(path, table, **enthalpy_kw)
    t, t_label = time_series(table, timestep, time_unit, source)
    try:
        d = enthalpy_drop(t, H, window=window, level=level, min_drop=min_drop, smooth=smooth)
    except MeltpotError as exc:
        raise MeltpotError(f"{source}: {exc}") from None
    series = pd.DataFrame({"time": t, "Step": table["Step"].to_numpy(), "H": H})
    summary = {"source": source, **info, "rows": int(len(table)), "time_label": t_label, **asdict(d)}
    return series, d, summary, t_label


def two_phase_series(path: Path, *, fraction_column=None, T_column=None, run=None, all_runs=False,  # noqa: N803
                     skip=0, timestep=None, time_unit="ps") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(time, crystalline fraction, temperature or None) of one coexistence run: a CNA table
    (CSV from ``analyze cna``) or a LAMMPS log with a fraction column."""
    source = str(path)
    if not path.exists():
        raise FrameError(source, None, "file does not exist")
    if path.suffix.lower() == ".csv":
        from .nucleation import crystalline_fraction

        table = pd.read_csv(path)
        if "time" not in table:
            raise FrameError(source, None, f"CNA table without a time column (columns: {', '.join(table.columns)})")
        try:
            f = crystalline_fraction(table) if not fraction_column else \
                table[column(table, fraction_column, (), source, "crystalline fraction", "--fraction-column")]
        except MeltpotError as exc:
            raise FrameError(source, None, str(exc)) from None
        temp = None
        if T_column:
            temp = table[column(table, T_column, (), source, "temperature", "--T-column")].to_numpy(float)
        return table["time"].to_numpy(float), np.asarray(f, float), temp
    table = thermo_block(path, run, all_runs).iloc[skip:].reset_index(drop=True)
    f_col = column(table, fraction_column, FRACTION_NAMES, source, "crystalline fraction",
                   "--fraction-column (e.g. a variable from compute cna/atom)")
    T_col = column(table, T_column, T_NAMES, source, "temperature", "--T-column")
    t, _ = time_series(table, timestep, time_unit, source)
    return t, table[f_col].to_numpy(float), table[T_col].to_numpy(float)


def two_phase(paths, *, T_set=None, pattern: str = T_PATTERN, final=None, tol=0.15, use="T_final",  # noqa: N803
              **series_kw):
    """Solid–liquid coexistence runs → (runs table: outcome, fractions, final T per file; the
    :class:`~meltpot.analysis.nucleation.MeltingPoint`; the (label, t, fraction) series to plot).
    The set temperature of a run: ``T_set[k]``, else the named group T of ``pattern`` in its
    file name."""
    from .nucleation import classify_two_phase, two_phase_melting_point

    paths = [Path(p) for p in paths]
    if T_set and len(T_set) != len(paths):
        raise MeltpotError(f"--T-set needs one temperature per run ({len(paths)}), got {len(T_set)}")
    regex = re.compile(pattern)
    rows, series = [], []
    for k, path in enumerate(paths):
        if T_set:
            T = float(T_set[k])
        else:
            m = regex.search(path.name)
            T = float(m.group("T")) if m else float("nan")
        t, f, temp = two_phase_series(path, **series_kw)
        if temp is None and not math.isfinite(T):
            raise MeltpotError(f"{path}: no temperature (no --T-column, no T in the file name matching "
                               f"--pattern {pattern!r}); give --T-set")
        try:
            r = classify_two_phase(t, f, temp, T_set=T, final=final, tol=tol)
        except MeltpotError as exc:
            raise MeltpotError(f"{path}: {exc}") from None
        rows.append({"file": str(path), **asdict(r)})
        series.append((f"{path.stem}: {r.outcome}", t, f))
    runs = pd.DataFrame(rows)
    return runs, two_phase_melting_point(runs, use=use), series
