"""Command-line front end of the local-order and nucleation analyses.

``add_commands(subparsers)`` registers ``cna``, ``steinhardt``, ``clusters`` and ``ttt`` on an
argparse sub-parser group (``meltpot analyze …``). Each trajectory command streams the
frames of a LAMMPS dump or extxyz file (:func:`meltpot.analysis.trajectory.iter_frames`),
optionally minimises each frame first (``--minimize``: inherent structures), and writes a
CSV table plus a PNG with the same stem. ``ttt`` turns per-run CSVs (one per temperature ×
replica) into the TTT table and plot.

``enthalpy`` (H(T) of a heating/cooling ramp: melting/crystallisation jump and latent heat, or
glass kink; C_P of both branches), ``enthalpy-drop`` (H(t) of an isothermal run: the
crystallisation time) and ``two-phase`` (solid–liquid coexistence runs → T_m) read LAMMPS
logs (:func:`meltpot.analysis.trajectory.read_log`) and write a CSV, a PNG and a JSON summary
with the same stem. H defaults to ``TotEng + P·Volume`` with the *external* pressure ``--pressure``
(NPT: ⟨H⟩ = ⟨E⟩ + P_ext⟨V⟩); LAMMPS's ``enthalpy`` keyword uses the instantaneous virial
pressure, whose fluctuations in small cells (±0.05 eV/atom at 256 atoms) swamp the signal.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FrameError, MeltpotError
from .trajectory import parse_types

#: default pattern for T and replica in per-run file names: T600_r0.csv, T600.0_rep3_cna.csv, …
RUN_PATTERN = r"T(?P<T>\d+(?:\.\d+)?)\D*?_r(?:ep)?(?P<replica>\d+)"
#: count frames up front (for the progress bar's total) only below this file size
_COUNT_LIMIT = 1 << 30


def _cutoff(value: str | None, allowed: tuple[str, ...]) -> float | str | None:
    if value is None:
        return None
    if value in allowed:
        return value
    try:
        r = float(value)
    except ValueError:
        raise MeltpotError(f"--cutoff must be a length or one of {allowed}, got {value!r}") from None
    if r <= 0:
        raise MeltpotError(f"--cutoff must be > 0, got {r}")
    return r


def _frames(args):
    """(frame iterator, expected number of frames or None)."""
    from .trajectory import count_frames, iter_frames

    types = parse_types(args.types)
    path = Path(args.trajectory)
    total = None
    if path.exists() and path.stat().st_size < _COUNT_LIMIT and not args.no_progress:
        n = count_frames(path)
        total = len(range(args.start, n if args.stop is None else min(args.stop, n), args.step))
    return iter_frames(path, start=args.start, stop=args.stop, step=args.step, types=types), total


def _auto_cutoff(args) -> float:
    """First minimum of g(r) of the first selected frame."""
    from .local_order import rdf_first_minimum
    from .trajectory import iter_frames

    first = next(iter(iter_frames(args.trajectory, start=args.start, stop=args.start + 1,
                                  types=parse_types(args.types))), None)
    if first is None:
        raise MeltpotError(f"{args.trajectory}: no frame at index {args.start}")
    rc = rdf_first_minimum(first)
    print(f"cutoff = first minimum of g(r) of frame {args.start}: {rc:.4f}")
    return rc


def _transform(args):
    if not args.minimize:
        return None
    from .local_order import Minimizer

    return Minimizer(pair_style=args.pair_style, pair_coeff=args.pair_coeff or ["* * Al_mm.eam.fs Al"],
                     elements=args.elements, units=args.units, ftol=args.ftol)


def _outputs(args) -> tuple[Path, Path]:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out, out.with_suffix(".png")


def _time_label(args) -> str:
    return f"time ({args.time_unit})" if args.dt is not None else "time"


def _table_kwargs(args, total) -> dict:
    return dict(dt=args.dt, transform=_transform(args), progress=not args.no_progress, total=total,
                source=str(args.trajectory))


# ----------------------------------------------------------------------------- commands
def cmd_cna(args) -> int:
    from .local_order import cna_table, plot_cna_table

    cutoff = _cutoff(args.cutoff, ("auto",))
    if cutoff == "auto":
        cutoff = _auto_cutoff(args)
    frames, total = _frames(args)
    table = cna_table(frames, cutoff=cutoff, **_table_kwargs(args, total))
    if table.empty:
        raise MeltpotError(f"{args.trajectory}: no frames selected")
    csv, png = _outputs(args)
    table.to_csv(csv, index=False)
    plot_cna_table(table, png, _time_label(args))
    last = table.iloc[-1]
    print(f"{len(table)} frames; last: " + ", ".join(f"{k} {last[k]:.3f}" for k in
                                                   ("fcc", "hcp", "bcc", "ico", "crystalline")))
    print(f"written {csv}, {png}")
    return 0


def _resolved_cutoff(args) -> float | str:
    """--cutoff as a length (Å), "adaptive", or "auto" resolved to the first g(r) minimum."""
    cutoff = _cutoff(args.cutoff, ("adaptive", "auto"))
    return _auto_cutoff(args) if cutoff == "auto" else cutoff


def cmd_steinhardt(args) -> int:
    from .local_order import plot_steinhardt, steinhardt_table

    cutoff = _resolved_cutoff(args)
    if args.engine == "ovito" and cutoff == "adaptive":
        cutoff = None  # OVITO: the --num-neighbors nearest
    frames, total = _frames(args)
    table, hist = steinhardt_table(frames, l=args.l, cutoff=cutoff, averaged=not args.no_average,
                                   engine=args.engine, bins=args.bins, num_neighbors=args.num_neighbors,
                                   **_table_kwargs(args, total))
    if table.empty:
        raise MeltpotError(f"{args.trajectory}: no frames selected")
    csv, png = _outputs(args)
    hist_csv = csv.with_name(csv.stem + "_hist.csv")
    table.to_csv(csv, index=False)
    hist.to_csv(hist_csv, index=False)
    plot_steinhardt(table, hist, png, _time_label(args))
    print(f"{len(table)} frames; written {csv}, {hist_csv}, {png}")
    return 0


def cmd_clusters(args) -> int:
    from .local_order import cluster_table, plot_cluster_table

    cutoff = _resolved_cutoff(args)
    frames, total = _frames(args)
    bonds = int(args.bonds) if float(args.bonds).is_integer() and args.bonds >= 1 else float(args.bonds)
    table = cluster_table(frames, cutoff=cutoff, bonds=bonds, threshold=args.threshold,
                          avgthreshold=args.avgthreshold, **_table_kwargs(args, total))
    if table.empty:
        raise MeltpotError(f"{args.trajectory}: no frames selected")
    csv, png = _outputs(args)
    table.to_csv(csv, index=False)
    plot_cluster_table(table, png, _time_label(args))
    print(f"{len(table)} frames; largest cluster: max {int(table['largest_cluster'].max())}, "
          f"last {int(table['largest_cluster'].iloc[-1])} atoms")
    if args.onset_size is not None:
        from .nucleation import onset_time

        p = onset_time(table["time"].to_numpy(float), table["largest_cluster"].to_numpy(float),
                       args.onset_size, args.hold)
        print(f"onset (largest cluster ≥ {args.onset_size:g}): "
              + (f"{p.time:.6g}" if p.reached else "not reached"))
    print(f"written {csv}, {png}")
    return 0


def _run_list(args) -> list[tuple[float, str, Path]]:
    """(T, replica, path) of every per-run table."""
    runs = []
    if args.index:
        idx = pd.read_csv(args.index)
        missing = {"T", "path"} - set(idx.columns)
        if missing:
            raise MeltpotError(f"{args.index}: needs columns T, path (and replica), lacks {sorted(missing)}")
        base = Path(args.index).parent
        for k, row in idx.iterrows():
            p = Path(str(row["path"]))
            runs.append((float(row["T"]), str(row["replica"]) if "replica" in idx else str(k),
                         p if p.is_absolute() else base / p))
    pattern = re.compile(args.pattern)
    for f in args.tables:
        m = pattern.search(Path(f).name)
        if m is None or "T" not in m.groupdict():
            raise MeltpotError(f"{f}: the file name does not match --pattern {args.pattern!r} "
                               "(named groups T and replica); use --index runs.csv instead")
        runs.append((float(m.group("T")), m.groupdict().get("replica") or Path(f).stem, Path(f)))
    if not runs:
        raise MeltpotError("ttt: no per-run tables given (files or --index)")
    return runs


def cmd_ttt(args) -> int:
    from .nucleation import plot_ttt, ttt_from_tables, ttt_table

    triples = []
    for T, rep, path in _run_list(args):
        if not path.exists():
            raise MeltpotError(f"{path}: per-run table not found (T={T}, replica {rep})")
        table = pd.read_csv(path)
        if args.from_first_frame and len(table) and "time" in table:
            table["time"] = table["time"] - table["time"].iloc[0]
        triples.append((T, rep, table))
    runs = ttt_from_tables(triples, criterion=args.criterion, level=args.level, size=args.size,
                           hold=args.hold)
    ttt = ttt_table(runs)
    out, png = _outputs(args)
    runs_csv = out.with_name(out.stem + "_runs.csv")
    ttt.to_csv(out, index=False)
    runs.to_csv(runs_csv, index=False)
    plot_ttt(ttt, png, runs, time_label=args.time_label, T_label=args.T_label)
    for _, r in ttt.iterrows():
        print(f"T = {r['T']:g}: {r['mean']:.4g} ± {r['std']:.2g} ({r['n_reached']}/{r['n_replicas']} reached)")
    print(f"written {out}, {runs_csv}, {png}")
    return 0


# ----------------------------------------------------------------------------- logs: H(T), H(t), two-phase
#: pressure × volume → energy in the thermo units (LAMMPS force->nktv2p)
NKTV2P = {"metal": 1.6021765e6, "real": 68568.415, "lj": 1.0, "si": 1.0}
_T_NAMES = ("Temp", "c_thermo_temp", "v_temp", "v_T")
_H_NAMES = ("Enthalpy", "v_H", "v_enthalpy", "v_h")
_FRACTION_NAMES = ("v_fcryst", "v_crystalline", "v_fsolid", "v_fraction", "crystalline")


def _column(table, name: str | None, candidates, source: str, what: str, option: str) -> str:
    """``name`` if given (it must exist), else the first of ``candidates`` present (any case)."""
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


def _thermo_block(path: Path, run: int | None, all_runs: bool = False):
    """The thermo rows of one block of a LAMMPS log (default: the last), or of all blocks."""
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


def _log_atoms(path: Path, table) -> int | None:
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


def _enthalpy_series(path: Path, table, args) -> tuple[np.ndarray, dict]:
    """H per atom (or total with --total) and how it was obtained."""
    source = str(path)
    if args.H_column:
        col = _column(table, args.H_column, (), source, "enthalpy", "--H-column")
        H, how = table[col].to_numpy(float), col
    elif any(str(c).lower() == "toteng" for c in table.columns):
        e = _column(table, None, ("TotEng",), source, "total energy", "--H-column")
        H, how = table[e].to_numpy(float), e
        if args.pressure:
            if args.units not in NKTV2P:
                raise MeltpotError(f"--units must be one of {sorted(NKTV2P)}, got {args.units!r}")
            v = _column(table, None, ("Volume", "v_vol", "v_volume", "v_V"), source, "volume", "--H-column")
            H = H + args.pressure * table[v].to_numpy(float) / NKTV2P[args.units]
            how = f"{e} + {args.pressure:g}·{v}"
    else:
        col = _column(table, None, _H_NAMES, source, "enthalpy (or TotEng)", "--H-column")
        H, how = table[col].to_numpy(float), col
    info = {"H_from": how, "per_atom": not args.total}
    if not args.total:
        n = args.natoms if args.natoms else _log_atoms(path, table)
        if not n:
            raise FrameError(source, None, "number of atoms unknown (no Atoms column, no 'Loop time … with N "
                                           "atoms' line); give --natoms or --total")
        H = H / n
        info["natoms"] = int(n)
    if not np.all(np.isfinite(H)):
        row = int(np.argmax(~np.isfinite(H)))
        raise FrameError(source, None, f"row {row} (Step {int(table['Step'].iloc[row])}): non-finite enthalpy")
    return H, info


def _time_series(table, args, source: str) -> tuple[np.ndarray, str]:
    """Time: Step × --dt if given, else LAMMPS's Time column, else Step."""
    if args.dt is not None:
        return table["Step"].to_numpy(float) * args.dt, f"time ({args.time_unit})"
    for c in table.columns:
        if str(c).lower() == "time":
            return table[c].to_numpy(float), f"time ({args.time_unit})"
    if "Step" not in table:
        raise FrameError(source, None, "no Step or Time column")
    return table["Step"].to_numpy(float), "step"


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def _write_summary(path: Path, summary: dict) -> Path:
    path.write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    return path


def _blocks(x: np.ndarray, n: int) -> np.ndarray:
    """Means over consecutive blocks of ``n`` rows (a last partial block is dropped)."""
    if n <= 1:
        return x
    m = len(x) // n
    return x[: m * n].reshape(m, n).mean(axis=1)


def cmd_enthalpy(args) -> int:
    from .nucleation import analyze_ramp, per_atom_units, plot_ramp

    path = Path(args.log)
    source = str(path)
    table = _thermo_block(path, args.run, args.all_runs).iloc[args.skip:].reset_index(drop=True)
    T_col = _column(table, args.T_column, _T_NAMES, source, "temperature", "--T-column")
    H, info = _enthalpy_series(path, table, args)
    if args.block < 1:
        raise MeltpotError(f"--block must be ≥ 1, got {args.block}")
    T = _blocks(table[T_col].to_numpy(float), args.block)
    Hb = _blocks(H, args.block)
    try:
        r = analyze_ramp(T, Hb, kind=args.kind, min_points=args.min_points, jump_sigma=args.jump_sigma,
                         T_range=tuple(args.T_range) if args.T_range else None)
    except MeltpotError as exc:
        raise MeltpotError(f"{source}: {exc}") from None
    out, png = _outputs(args)
    unit = "eV/atom" if info["per_atom"] else "eV"
    points = pd.DataFrame({"T": T, "H": Hb})
    points["branch"] = np.where(points["T"].rank(method="first") <= r.split, "low", "high")
    points["H_fit"] = np.where(points["branch"] == "low", r.low(T), r.high(T))
    points.to_csv(out, index=False)
    plot_ramp(T, Hb, r, png, T_label=args.T_label, H_label=f"H ({unit})" if args.units == "metal" else "H")
    summary = {"source": source, "T_column": T_col, **info, "rows": int(len(table)), "block": args.block,
               "points": int(len(T)), **r.as_dict()}
    if info["per_atom"] and args.units == "metal":
        summary.update(per_atom_units(r.latent_heat, None))
        if args.molar_mass:
            summary["cp_low_J_per_gK"] = per_atom_units(None, r.cp_low, args.molar_mass)["cp_J_per_gK"]
            summary["cp_high_J_per_gK"] = per_atom_units(None, r.cp_high, args.molar_mass)["cp_J_per_gK"]
    js = _write_summary(out.with_suffix(".json"), summary)
    what = "jump" if r.kind == "jump" else "kink (crossover)"
    print(f"{what} at T = {r.T_transition:.5g}; latent heat {r.latent_heat:.4g} {unit}; "
          f"C_P low {r.cp_low:.4g}, high {r.cp_high:.4g} {unit}/K (gap {r.gap_significance:.3g} σ)")
    print(f"written {out}, {png}, {js}")
    return 0


def cmd_enthalpy_drop(args) -> int:
    from .nucleation import enthalpy_drop, plot_enthalpy_time

    path = Path(args.log)
    source = str(path)
    table = _thermo_block(path, args.run, args.all_runs).iloc[args.skip:].reset_index(drop=True)
    H, info = _enthalpy_series(path, table, args)
    t, t_label = _time_series(table, args, source)
    try:
        d = enthalpy_drop(t, H, window=args.window, level=args.level, min_drop=args.min_drop, smooth=args.smooth)
    except MeltpotError as exc:
        raise MeltpotError(f"{source}: {exc}") from None
    out, png = _outputs(args)
    pd.DataFrame({"time": t, "Step": table["Step"].to_numpy(), "H": H}).to_csv(out, index=False)
    unit = "eV/atom" if info["per_atom"] else "eV"
    plot_enthalpy_time(t, H, png, d, time_label=t_label, H_label=f"H ({unit})" if args.units == "metal" else "H")
    from dataclasses import asdict

    js = _write_summary(out.with_suffix(".json"), {"source": source, **info, "rows": int(len(table)),
                                                    "time_label": t_label, **asdict(d)})
    if d.found:
        print(f"drop of {d.dH:.4g} {unit} at {t_label.split(' ')[0]} {d.time:.5g} "
              f"(level {args.level:g}; noise {d.noise:.2g})")
    else:
        print(f"no significant drop (H {d.H_before:.5g} → {d.H_after:.5g}, noise {d.noise:.2g})")
    print(f"written {out}, {png}, {js}")
    return 0


#: default pattern for the set temperature in two-phase file names: T900.log, run_T912.5_nph.log, …
T_PATTERN = r"T(?P<T>\d+(?:\.\d+)?)"


def _two_phase_series(path: Path, args) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
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
            f = crystalline_fraction(table) if not args.fraction_column else \
                table[_column(table, args.fraction_column, (), source, "crystalline fraction", "--fraction-column")]
        except MeltpotError as exc:
            raise FrameError(source, None, str(exc)) from None
        temp = None
        if args.T_column:
            temp = table[_column(table, args.T_column, (), source, "temperature", "--T-column")].to_numpy(float)
        return table["time"].to_numpy(float), np.asarray(f, float), temp
    table = _thermo_block(path, args.run, args.all_runs).iloc[args.skip:].reset_index(drop=True)
    f_col = _column(table, args.fraction_column, _FRACTION_NAMES, source, "crystalline fraction",
                    "--fraction-column (e.g. a variable from compute cna/atom)")
    T_col = _column(table, args.T_column, _T_NAMES, source, "temperature", "--T-column")
    t, _ = _time_series(table, args, source)
    return t, table[f_col].to_numpy(float), table[T_col].to_numpy(float)


def cmd_two_phase(args) -> int:
    from dataclasses import asdict

    from .nucleation import classify_two_phase, plot_two_phase, two_phase_melting_point

    paths = [Path(p) for p in args.runs]
    if args.T_set and len(args.T_set) != len(paths):
        raise MeltpotError(f"--T-set needs one temperature per run ({len(paths)}), got {len(args.T_set)}")
    pattern = re.compile(args.pattern)
    rows, series = [], []
    for k, path in enumerate(paths):
        if args.T_set:
            T_set = float(args.T_set[k])
        else:
            m = pattern.search(path.name)
            T_set = float(m.group("T")) if m else float("nan")
        t, f, temp = _two_phase_series(path, args)
        if temp is None and not math.isfinite(T_set):
            raise MeltpotError(f"{path}: no temperature (no --T-column, no T in the file name matching "
                               f"--pattern {args.pattern!r}); give --T-set")
        try:
            r = classify_two_phase(t, f, temp, T_set=T_set, final=args.final, tol=args.tol)
        except MeltpotError as exc:
            raise MeltpotError(f"{path}: {exc}") from None
        rows.append({"file": str(path), **asdict(r)})
        series.append((f"{path.stem}: {r.outcome}", t, f))
    runs = pd.DataFrame(rows)
    m = two_phase_melting_point(runs, use=args.use)
    out, png = _outputs(args)
    runs.to_csv(out, index=False)
    plot_two_phase(series, png, time_label=args.time_label)
    js = _write_summary(out.with_suffix(".json"), {"runs": len(runs), **asdict(m)})
    for _, r in runs.iterrows():
        print(f"{r['file']}: {r['outcome']} (fraction {r['f_start']:.3f} → {r['f_end']:.3f}, "
              f"T_final {r['T_final']:.5g})")
    if math.isfinite(m.T_m):
        print(f"T_m = {m.T_m:.5g} ± {m.error:.3g} ({m.method}; bracket {m.T_low:.5g} – {m.T_high:.5g})")
    else:
        print(f"T_m not bracketed ({m.method}): solid grew up to {m.T_low:.5g}, melted from {m.T_high:.5g}")
    print(f"written {out}, {png}, {js}")
    return 0


# ----------------------------------------------------------------------------- parser
def _trajectory_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("trajectory", help="LAMMPS text dump (.gz ok) or extxyz file")
    p.add_argument("--out", required=True, help=f"CSV of the {what} per frame; a PNG with the same stem is written")
    p.add_argument("--types", nargs="*", metavar="TYPE=EL", help="LAMMPS type → element, e.g. 1=Al 2=Ni")
    p.add_argument("--start", type=int, default=0, help="first frame (0-based)")
    p.add_argument("--stop", type=int, help="stop before this frame")
    p.add_argument("--step", type=int, default=1, help="use every STEP-th frame")
    p.add_argument("--dt", type=float, help="time per MD step (time = timestep × dt); default: the "
                                            "frame's time if stored, else the timestep")
    p.add_argument("--time-unit", default="ps", help="unit of --dt for plot labels")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    m = p.add_argument_group("inherent structures (energy minimisation in LAMMPS before the analysis)")
    m.add_argument("--minimize", action="store_true", help="minimise every frame first (fixed cell)")
    m.add_argument("--pair-style", default="eam/fs")
    m.add_argument("--pair-coeff", action="append",
                   help="pair_coeff line (repeatable); default '* * Al_mm.eam.fs Al'")
    m.add_argument("--elements", nargs="*", help="element of type 1, 2, … (default: from pair_coeff)")
    m.add_argument("--units", default="metal", choices=["metal", "lj"])
    m.add_argument("--ftol", type=float, default=1e-6, help="force tolerance (eV/Å)")


def add_commands(subparsers) -> None:
    """Register ``cna``, ``steinhardt``, ``clusters``, ``ttt``, ``enthalpy``, ``enthalpy-drop``
    and ``two-phase`` on ``subparsers``."""
    c = subparsers.add_parser("cna", help="common neighbour analysis (OVITO): class fractions vs time")
    _trajectory_args(c, "CNA fractions (other fcc hcp bcc ico crystalline)")
    c.add_argument("--cutoff", help="fixed cutoff (Å, e.g. the first minimum of g(r)) or 'auto' (that "
                                    "minimum from the first frame); default: adaptive CNA")
    c.set_defaults(func=cmd_cna)

    s = subparsers.add_parser("steinhardt", help="averaged Steinhardt q̄4, q̄6 (pyscal3 or OVITO): "
                                                 "means vs time and histograms")
    _trajectory_args(s, "mean and std of q_l (histograms: <stem>_hist.csv)")
    s.add_argument("--cutoff", default="adaptive", help="neighbour cutoff (Å), 'adaptive' or 'auto'")
    s.add_argument("--l", type=int, nargs="+", default=[4, 6])
    s.add_argument("--no-average", action="store_true", help="plain q_l instead of q̄_l")
    s.add_argument("--engine", choices=["pyscal3", "ovito"], default="pyscal3")
    s.add_argument("--num-neighbors", type=int, default=12, help="OVITO without a cutoff length")
    s.add_argument("--bins", type=int, default=100)
    s.set_defaults(func=cmd_steinhardt)

    k = subparsers.add_parser("clusters", help="solid-like atoms (pyscal3 find_solids) and the largest "
                                               "solid cluster vs time")
    _trajectory_args(k, "solid atoms and cluster sizes")
    k.add_argument("--cutoff", default="adaptive", help="neighbour cutoff (Å), 'adaptive' or 'auto'")
    k.add_argument("--bonds", type=float, default=6, help="solid bonds needed (int) or fraction (< 1)")
    k.add_argument("--threshold", type=float, default=0.5, help="s_ij of a solid bond")
    k.add_argument("--avgthreshold", type=float, default=0.6, help="mean s_ij of a solid atom")
    k.add_argument("--onset-size", type=float, help="also print the first time the largest cluster "
                                                    "reaches this many atoms")
    k.add_argument("--hold", type=float, default=0.0, help="… and stays there this long")
    k.set_defaults(func=cmd_clusters)

    t = subparsers.add_parser("ttt", help="TTT table and plot from per-run CNA or cluster CSVs")
    t.add_argument("tables", nargs="*", help="per-run CSVs (from `cna` or `clusters`), T and replica "
                                             "taken from the file name by --pattern")
    t.add_argument("--index", help="CSV with columns T, replica, path (paths relative to it)")
    t.add_argument("--pattern", default=RUN_PATTERN,
                   help="regex with named groups T and replica, searched in file names")
    t.add_argument("--criterion", choices=["fraction", "cluster"], default="fraction",
                   help="'fraction': time to --level crystalline fraction (CNA tables); "
                        "'cluster': largest cluster reaches --size (cluster tables)")
    t.add_argument("--level", type=float, default=0.4, help="crystalline fraction (thesis: 0.4)")
    t.add_argument("--size", type=float, default=100.0, help="cluster size (atoms)")
    t.add_argument("--hold", type=float, default=0.0, help="the criterion must hold this long")
    t.add_argument("--from-first-frame", action="store_true",
                   help="measure times from each run's first frame (e.g. the start of the isothermal stage, "
                        "when the dump starts there) instead of the time stored in the table")
    t.add_argument("--out", required=True, help="TTT CSV; also <stem>_runs.csv and <stem>.png")
    t.add_argument("--time-label", default="time (ps)")
    t.add_argument("--T-label", default="T (K)")
    t.set_defaults(func=cmd_ttt)
    _log_commands(subparsers)


def _log_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", required=True, help=f"CSV of the {what}; a PNG and a JSON summary with the same stem")
    p.add_argument("--run", type=int, help="thermo block of the log (0-based, negative from the end; "
                                           "default: the last)")
    p.add_argument("--all-runs", action="store_true", help="use the rows of all thermo blocks")
    p.add_argument("--skip", type=int, default=0, help="drop this many first rows (equilibration)")


def _enthalpy_args(p: argparse.ArgumentParser) -> None:
    h = p.add_argument_group("enthalpy")
    h.add_argument("--H-column", help="thermo column holding H (default: TotEng + --pressure·Volume, else "
                                      "Enthalpy / v_H)")
    h.add_argument("--pressure", type=float, default=0.0,
                   help="external (barostat) pressure in thermo units (bar for metal) for H = E + P·V")
    h.add_argument("--units", default="metal", choices=sorted(NKTV2P), help="LAMMPS units of the log")
    h.add_argument("--natoms", type=int, help="atoms for per-atom H (default: the Atoms column or the log's "
                                              "'with N atoms' line); 1 if thermo_modify norm yes")
    h.add_argument("--total", action="store_true", help="keep H per system, not per atom")


def _log_commands(subparsers) -> None:
    e = subparsers.add_parser("enthalpy", help="H(T) of a heating/cooling ramp from a LAMMPS log: melting or "
                                               "crystallisation jump (latent heat) or glass kink, C_P")
    e.add_argument("log", help="LAMMPS log with thermo columns Temp and TotEng (or Enthalpy)")
    _log_args(e, "(T, H) points with branch and fit")
    _enthalpy_args(e)
    e.add_argument("--T-column", help="temperature column (default Temp)")
    e.add_argument("--block", type=int, default=1, help="average T and H over blocks of this many rows")
    e.add_argument("--kind", choices=["auto", "jump", "kink"], default="auto",
                   help="transition kind (auto: jump if the gap is significant)")
    e.add_argument("--T-range", type=float, nargs=2, metavar=("LO", "HI"), help="use points in this T range")
    e.add_argument("--min-points", type=int, default=3, help="points per branch at least")
    e.add_argument("--jump-sigma", type=float, default=10.0, help="gap (residual σ) that makes a jump")
    e.add_argument("--molar-mass", type=float, help="g/mol (26.98 for Al): also C_P in J/(g K)")
    e.add_argument("--T-label", default="T (K)")
    e.set_defaults(func=cmd_enthalpy)

    d = subparsers.add_parser("enthalpy-drop", help="H(t) of an isothermal run from a LAMMPS log: the "
                                                    "crystallisation drop and its time")
    d.add_argument("log", help="LAMMPS log with TotEng (or Enthalpy) and Step or Time")
    _log_args(d, "H(t) series")
    _enthalpy_args(d)
    d.add_argument("--dt", type=float, help="time per step (time = Step × dt); default: the Time column, "
                                            "else steps")
    d.add_argument("--time-unit", default="ps")
    d.add_argument("--window", type=float, default=0.1, help="fraction of the run for H before/after")
    d.add_argument("--level", type=float, default=0.5, help="fraction of the drop that dates it")
    d.add_argument("--min-drop", type=float, help="smallest drop that counts (default 5 × noise)")
    d.add_argument("--smooth", type=int, default=5, help="moving-average frames")
    d.set_defaults(func=cmd_enthalpy_drop)

    t = subparsers.add_parser("two-phase", help="solid–liquid coexistence runs (LAMMPS logs with a crystalline "
                                                "fraction column, or CNA CSVs) → outcomes and T_m")
    t.add_argument("runs", nargs="+", help="one log (or CNA CSV) per run; T from the file name (--pattern) "
                                           "or --T-set, T_final from the Temp column")
    _log_args(t, "runs (outcome, fractions, final T)")
    t.add_argument("--fraction-column", help="crystalline-fraction column (default v_fcryst, v_crystalline, "
                                             "…; CSV: crystalline or fcc+hcp+bcc)")
    t.add_argument("--T-column", help="temperature column (logs: default Temp)")
    t.add_argument("--T-set", type=float, nargs="*", help="set temperature of each run, in order")
    t.add_argument("--pattern", default=T_PATTERN, help="regex with a named group T, searched in file names")
    t.add_argument("--dt", type=float, help="time per step (default: the Time column, else steps)")
    t.add_argument("--time-unit", default="ps")
    t.add_argument("--time-label", default="time (ps)")
    t.add_argument("--final", type=float, help="final averaging interval (time units; default last 10 %%)")
    t.add_argument("--tol", type=float, default=0.15, help="fraction change that counts as growth/melting")
    t.add_argument("--use", choices=["T_final", "T_set"], default="T_final",
                   help="temperature a run's outcome is attributed to")
    t.set_defaults(func=cmd_two_phase)
