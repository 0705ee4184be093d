"""``meltpot analyze`` commands for dynamics: ``msd``, ``viscosity``, ``interdiffusion``.

:func:`add_commands` registers them on an argparse sub-parser collection; each command writes
CSV tables and PNG plots into ``--out`` and returns 0. Inputs are LAMMPS text dumps / extxyz
(through :func:`meltpot.analysis.trajectory.iter_frames`), LAMMPS logs (through
:func:`~meltpot.analysis.trajectory.read_log`) or ``fix ave/time`` files (:func:`read_ave_time`).
Several files given together are independent replicas of the same state.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import FrameError, MeltpotError
from . import dynamics as dy
from .trajectory import parse_types

__all__ = ["add_commands", "read_ave_time", "read_trajectory", "cmd_msd", "cmd_viscosity",
           "cmd_interdiffusion"]


# ----------------------------------------------------------------------------- readers
def _progress(iterable, total, desc, enabled, unit="frame"):
    if not enabled:
        return iterable
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False)


def read_trajectory(path, *, start=0, stop=None, step=1, types=None, velocities=False, progress=True) -> dict:
    """Read one trajectory into arrays for the dynamics analyses.

    Returns ``steps`` (n_frames,) MD step numbers, ``positions`` unwrapped (n_frames, n_atoms,
    3) (from the file's unwrapped coordinates or image flags, else unwrapped here by minimum
    image between frames, see :func:`dynamics.unwrap_positions`), ``species`` labels,
    ``unwrapped_by`` ("file" or "minimum image") and, with ``velocities``, ``velocities``
    (from vx, vy, vz columns). Memory: 24 bytes × frames × atoms per array.
    """
    from .trajectory import count_frames, iter_frames, species_labels  # noqa: PLC0415

    path = Path(path)
    n_file = count_frames(path)
    n = len(range(start, n_file if stop is None else min(stop, n_file), step))
    if n < 2:
        raise FrameError(str(path), None, f"needs at least 2 frames in the selection, found {n}")
    steps = np.empty(n, dtype=np.int64)
    pos = cells = vel = None
    species, own_unwrap = None, False
    frames = iter_frames(path, start=start, stop=stop, step=step, types=types)
    for k, atoms in enumerate(_progress(frames, n, path.name, progress)):
        if k >= n:
            break
        if pos is None:
            pos = np.empty((n, len(atoms), 3))
            cells = np.empty((n, 3, 3))
            species = species_labels(atoms)
            own_unwrap = "unwrapped" not in atoms.arrays
            if velocities:
                missing = [c for c in ("vx", "vy", "vz") if c not in atoms.arrays]
                if missing:
                    raise FrameError(str(path), atoms.info.get("frame", k),
                                     f"no velocity columns {', '.join(missing)} (dump vx vy vz)")
                vel = np.empty((n, len(atoms), 3))
        if len(atoms) != pos.shape[1]:
            raise FrameError(str(path), atoms.info.get("frame", k),
                             f"{len(atoms)} atoms, the first frame had {pos.shape[1]}")
        steps[k] = int(atoms.info.get("timestep", k))
        if own_unwrap or "unwrapped" not in atoms.arrays:
            own_unwrap = True
            pos[k] = atoms.positions
        else:
            pos[k] = atoms.arrays["unwrapped"]
        cells[k] = atoms.cell.array
        if vel is not None:
            vel[k] = np.column_stack([atoms.arrays["vx"], atoms.arrays["vy"], atoms.arrays["vz"]])
    if own_unwrap:
        if not np.all(np.abs(np.linalg.det(cells)) > 0):
            raise FrameError(str(path), None, "wrapped coordinates without a cell cannot be unwrapped")
        pos = dy.unwrap_positions(pos, cells)
    out = {"steps": steps, "positions": pos, "species": np.asarray(species).astype(str),
           "unwrapped_by": "minimum image" if own_unwrap else "file", "source": str(path)}
    if vel is not None:
        out["velocities"] = vel
    return out


def read_ave_time(path):
    """A ``fix ave/time`` output file in scalar mode as a DataFrame (``Step`` plus the value
    columns under the names in its ``# TimeStep ...`` header line; ``attrs["source"]``)."""
    import pandas as pd  # noqa: PLC0415

    path = Path(path)
    if not path.exists():
        raise FrameError(str(path), None, "fix ave/time file does not exist")
    header = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            header.append(line[1:].split())
    names = next((h for h in header if h and h[0] == "TimeStep"), None)
    if names is None:
        raise FrameError(str(path), None, "not a fix ave/time file (no '# TimeStep ...' header line)")
    if any(h and h[0] == "Row" for h in header) or names[1:] == ["Number-of-rows"]:
        raise FrameError(str(path), None, "fix ave/time in vector mode is not supported; use mode scalar")
    table = pd.read_csv(path, sep=r"\s+", comment="#", header=None, names=names, engine="python")
    bad = table.isna().any(axis=1).to_numpy()
    if bad.any():
        raise FrameError(str(path), None, f"data row {int(np.argmax(bad))} has fewer than {len(names)} numbers")
    table = table.rename(columns={"TimeStep": "Step"})
    table["Step"] = table["Step"].astype(np.int64)
    table.attrs["source"] = str(path)
    return table


def _file_kind(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    return "ave-time" if first.startswith("# Time-averaged data") else "log"


_PRESS_INDEX = {"pxx": 1, "pyy": 2, "pzz": 3, "pxy": 4, "pxz": 5, "pyz": 6}


def _find_column(table, name: str, source: str) -> str:
    """Column of ``table`` holding pressure component ``name`` (pxy...): the name itself,
    v_<name>, or c_<id>[k] of a pressure compute (k = 1..6 for xx yy zz xy xz yz)."""
    lookup = {str(c).lower(): c for c in table.columns}
    for cand in (name.lower(), f"v_{name.lower()}"):
        if cand in lookup:
            return lookup[cand]
    k = _PRESS_INDEX.get(name.lower())
    if k is not None:
        hits = [c for c in table.columns if re.fullmatch(rf"c_\w*press\w*\[{k}\]", str(c), re.I)]
        if len(hits) == 1:
            return hits[0]
    raise FrameError(source, None, f"no column for {name} (columns: {', '.join(map(str, table.columns))}); "
                                   "name it with --columns")


def _uniform_rows(table, source: str):
    """Rows with a uniform Step spacing (a last, off-grid thermo row is dropped)."""
    steps = table["Step"].to_numpy()
    if len(steps) < 3:
        raise FrameError(source, None, f"only {len(steps)} rows of data")
    diffs = np.diff(steps)
    spacing = Counter(diffs.tolist()).most_common(1)[0][0]
    if diffs[-1] != spacing and np.all(diffs[:-1] == spacing):
        table, diffs = table.iloc[:-1], diffs[:-1]
    bad = np.flatnonzero(diffs != spacing)
    if len(bad) or spacing <= 0:
        i = int(bad[0]) + 1 if len(bad) else 1
        raise FrameError(source, None, f"row {i} (Step {steps[i]}): samples are not equally spaced in time "
                                       f"(spacing {spacing} steps elsewhere); select one run with --run")
    return table, int(spacing)


def _read_pressure(path: Path, args) -> dict:
    from .trajectory import read_log  # noqa: PLC0415

    kind = _file_kind(path, args.format)
    table = read_ave_time(path) if kind == "ave-time" else read_log(path)
    source = str(path)
    if args.columns:
        if len(args.columns) != (6 if args.diagonal else 3):
            raise MeltpotError(f"--columns needs {'6 (xx yy zz xy xz yz)' if args.diagonal else '3 (xy xz yz)'} "
                               f"names, got {len(args.columns)}")
        missing = [c for c in args.columns if c not in table.columns]
        if missing:
            raise FrameError(source, None, f"no column {', '.join(missing)} (columns: {', '.join(map(str, table.columns))})")
        cols = list(args.columns)
    else:
        names = ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz") if args.diagonal else ("pxy", "pxz", "pyz")
        cols = [_find_column(table, n, source) for n in names]
    if "run" in table.columns:
        runs = sorted(table["run"].unique())
        if args.run is not None:
            if args.run not in runs:
                raise FrameError(source, None, f"no thermo block {args.run}; blocks: {runs}")
            chosen = args.run
        else:  # the last block that has all needed columns
            ok = [r for r in runs if table.loc[table["run"] == r, cols].notna().all().all()]
            if not ok:
                raise FrameError(source, None, f"no thermo block has all of {', '.join(cols)}")
            chosen = ok[-1]
        table = table[table["run"] == chosen]
    table = table.iloc[args.skip:]
    table, spacing = _uniform_rows(table.reset_index(drop=True), source)
    values = table[cols].to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        row = int(np.argmax(~np.isfinite(values).all(axis=1)))
        raise FrameError(source, None, f"row {row} (Step {table['Step'].iloc[row]}): non-finite pressure")
    stress = values if len(cols) == 3 else dy.shear_components(values, diagonal=True)

    def mean_of(flag, names, what):
        if flag is not None:
            return float(flag)
        lookup = {str(c).lower(): c for c in table.columns}
        for n in names:
            if n.lower() in lookup:
                return float(table[lookup[n.lower()]].mean())
        raise FrameError(source, None, f"no {what} column ({'/'.join(names)}); give --{what}")

    temperature = mean_of(args.temperature, ("Temp", "c_thermo_temp", "v_temp", "v_T"), "temperature")
    # v_meltpot_vol: the pressure.dat that `meltpot md run` production stages write
    volume = mean_of(args.volume, ("Volume", "v_vol", "v_volume", "v_V", "v_meltpot_vol"), "volume")
    return {"stress": stress, "dt": spacing * args.timestep, "temperature": temperature, "volume": volume,
            "rows": len(table), "columns": cols}


# ----------------------------------------------------------------------------- commands
def _files(args) -> list[Path]:
    return [Path(p) for p in list(args.files) + list(args.replicas or [])]


def _gk_kwargs(args) -> dict:
    kw = {"noise_k": args.noise_k}
    if args.t_max is not None:
        kw["t_max"] = args.t_max
    if args.window is not None:
        kw["window"] = tuple(args.window)
    elif args.cutoff is not None:
        kw["cutoff"] = args.cutoff
    return kw


def cmd_msd(args) -> int:
    """MSD per species and self-diffusion over replicas → msd.csv, diffusion.csv, msd.png."""
    import pandas as pd  # noqa: PLC0415

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    types = parse_types(args.types)
    reps = [read_trajectory(p, start=args.start, stop=args.stop, step=args.step, types=types,
                            progress=not args.no_progress) for p in _files(args)]
    spacing = []
    for r in reps:
        d = np.diff(r["steps"])
        bad = np.flatnonzero(d != d[0])
        if len(bad) or d[0] <= 0:
            i = int(bad[0]) + 1 if len(bad) else 1
            raise FrameError(r["source"], i, f"timestep {r['steps'][i]}: frames are not equally spaced in time")
        spacing.append(int(d[0]))
        if list(r["species"]) != list(reps[0]["species"]):
            raise FrameError(r["source"], None, f"species differ from {reps[0]['source']}")
    if len(set(spacing)) > 1:
        raise MeltpotError(f"replicas have different frame spacings {spacing} (steps)")
    n = min(len(r["steps"]) for r in reps)
    if any(len(r["steps"]) != n for r in reps):
        print(f"note: replicas truncated to the shortest one, {n} frames")
    dt = spacing[0] * args.timestep
    t, curves = None, []
    for r in reps:
        t, m = dy.msd_per_species(r["positions"][:n], dt, r["species"], remove_com=args.remove_com)
        curves.append(m)
    labels = list(curves[0])
    mean = {k: np.mean([c[k] for c in curves], axis=0) for k in labels}
    err = ({k: np.std([c[k] for c in curves], axis=0, ddof=1) / np.sqrt(len(curves)) for k in labels}
           if len(curves) > 1 else None)
    window_kw = {"method": args.window_method, "tol": args.slope_tol, "max_fraction": args.max_fraction}
    rows, fits = [], {}
    u = dy.UNITS[args.units]
    for k in labels:
        res = dy.diffusion_replicas(t, [c[k] for c in curves], window=tuple(args.fit_window) if args.fit_window else None,
                                    **window_kw)
        fits[k] = res.fit
        sp = reps[0]["species"]
        row = {"species": k, "n_atoms": int((sp == k).sum()) if k in set(sp.tolist()) else len(sp), "D": res.D, "D_err": res.D_err, "unit": u["diffusion"],
               "n_replicas": len(reps), "t_start": res.fit.t_start, "t_end": res.fit.t_end,
               "window": res.fit.method, "window_ok": res.fit.ok}
        if args.units in dy._DIFFUSION_SI:
            f = dy._DIFFUSION_SI[args.units] / 1e-9
            row.update({"D_1e-9_m2_s": res.D * f, "D_err_1e-9_m2_s": res.D_err * f})
        rows.append(row)
        print(f"{k}: D = {res.D:.5g} ± {res.D_err:.2g} {u['diffusion']} (fit {res.fit.t_start:.4g}–"
              f"{res.fit.t_end:.4g} {u['time']}, {len(reps)} replica(s))")
    dy.write_msd_csv(out / "msd.csv", t, mean, err)
    pd.DataFrame(rows).to_csv(out / "diffusion.csv", index=False)
    unwrap = sorted({r["unwrapped_by"] for r in reps})
    dy.plot_msd(out / "msd.png", t, mean, fits, units=args.units,
                title=f"{len(reps)} replica(s), {reps[0]['positions'].shape[1]} atoms; unwrapped by {', '.join(unwrap)}")
    return 0


def cmd_viscosity(args) -> int:
    """Green–Kubo shear viscosity → viscosity.csv, gk_viscosity.csv, viscosity.png."""
    import pandas as pd  # noqa: PLC0415

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = _files(args)
    data = [_read_pressure(p, args) for p in _progress(files, len(files), "logs", not args.no_progress, "file")]
    dts = {round(d["dt"], 12) for d in data}
    if len(dts) > 1:
        raise MeltpotError(f"replicas have different sampling intervals {sorted(dts)}")
    res = dy.viscosity_gk([d["stress"] for d in data], data[0]["dt"], [d["volume"] for d in data],
                          [d["temperature"] for d in data], units=args.units, **_gk_kwargs(args))
    u = dy.UNITS[args.units]
    row = {"eta": res.eta, "eta_err": res.eta_err, "unit": res.unit, "n_replicas": res.n_replicas,
           "n_components": res.n_components, "n_samples": res.gk.n_samples, "t_start": res.gk.t_start,
           "t_end": res.gk.t_end, "plateau_ok": res.gk.ok, "rule": res.gk.rule,
           "T_mean": float(np.mean([d["temperature"] for d in data])),
           "V_mean": float(np.mean([d["volume"] for d in data])), "dt_sample": data[0]["dt"],
           "rows_per_replica": min(d["rows"] for d in data), "columns": " ".join(map(str, data[0]["columns"]))}
    pd.DataFrame([row]).to_csv(out / "viscosity.csv", index=False)
    dy.write_gk_csv(out / "gk_viscosity.csv", res.gk)
    dy.plot_gk(out / "viscosity.png", res.gk, "η", res.unit, u["time"])
    print(f"eta = {res.eta:.5g} ± {res.eta_err:.2g} {res.unit} (plateau {res.gk.t_start:.4g}–{res.gk.t_end:.4g} "
          f"{u['time']}, {res.gk.n_samples} samples)")
    return 0


def cmd_interdiffusion(args) -> int:
    """Onsager coefficient L and D_AB = L Φ by Green–Kubo, with the Darken-like comparison →
    interdiffusion.csv, gk_interdiffusion.csv, interdiffusion.png."""
    import pandas as pd  # noqa: PLC0415

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    types = parse_types(args.types)
    reps = [read_trajectory(p, start=args.start, stop=args.stop, step=args.step, types=types, velocities=True,
                            progress=not args.no_progress) for p in _files(args)]
    n = min(len(r["steps"]) for r in reps)
    d = np.diff(reps[0]["steps"])
    if np.any(d != d[0]):
        raise FrameError(reps[0]["source"], int(np.argmax(d != d[0])) + 1, "frames are not equally spaced in time")
    dt = int(d[0]) * args.timestep
    a, b = args.pair
    res = dy.interdiffusion_gk([r["velocities"][:n] for r in reps], reps[0]["species"], a, b, dt,
                               scc0=args.scc0, phi=args.phi, **_gk_kwargs(args))
    u = dy.UNITS[args.units]
    row = {"pair": f"{a}-{b}", "x_a": res.x_a, "n_atoms": res.n_atoms, "L": res.L, "L_err": res.L_err,
           "phi": res.phi, "D_AB": res.D_AB, "D_AB_err": res.D_AB_err, "unit": u["diffusion"],
           "n_replicas": len(reps), "t_start": res.gk.t_start, "t_end": res.gk.t_end, "rule": res.gk.rule}
    # Darken-like comparison from the self-diffusion of the same trajectories
    t, curves = None, []
    for r in reps:
        t, m = dy.msd_per_species(r["positions"][:n], dt, r["species"])
        curves.append(m)
    self_d = {s: dy.diffusion_replicas(t, [c[s] for c in curves]).D for s in (a, b)}
    cmp_ = dy.darken_comparison(res.L, self_d[a], self_d[b], res.x_a, None if np.isnan(res.phi) else res.phi)
    row.update({f"D_{a}": self_d[a], f"D_{b}": self_d[b], "L_darken": cmp_["L_darken"], "S": cmp_["S"]})
    if "D_AB_darken" in cmp_:
        row["D_AB_darken"] = cmp_["D_AB_darken"]
    pd.DataFrame([row]).to_csv(out / "interdiffusion.csv", index=False)
    dy.write_gk_csv(out / "gk_interdiffusion.csv", res.gk)
    dy.plot_gk(out / "interdiffusion.png", res.gk, "L", u["diffusion"], u["time"])
    print(f"L = {res.L:.5g} ± {res.L_err:.2g} {u['diffusion']} (Darken {cmp_['L_darken']:.5g}, S = {cmp_['S']:.3g})"
          + (f"; D_AB = {res.D_AB:.5g} ± {res.D_AB_err:.2g}" if not np.isnan(res.phi) else ""))
    return 0


# ----------------------------------------------------------------------------- parser
def _common(p, what: str):
    p.add_argument("files", nargs="+", help=f"{what} (several = independent replicas)")
    p.add_argument("--replicas", nargs="+", default=[], metavar="FILE", help="more replica files")
    p.add_argument("--out", default=".", help="output folder")
    p.add_argument("--units", choices=sorted(dy.UNITS), default="metal",
                   help="unit system of the data (metal: Å, ps, bar, K; lj: reduced)")
    p.add_argument("--timestep", type=float, required=True, help="MD time per step of the files' Step/TIMESTEP counter (ps in metal units, τ in lj)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _frames(p):
    p.add_argument("--types", nargs="+", metavar="TYPE=EL", help="LAMMPS types to elements, e.g. 1=Al 2=Ni")
    p.add_argument("--start", type=int, default=0, help="first frame (0-based)")
    p.add_argument("--stop", type=int, default=None, help="stop before this frame")
    p.add_argument("--step", type=int, default=1, help="use every n-th frame")


def _gk(p):
    p.add_argument("--t-max", type=float, default=None, help="longest correlation time (None: half the run)")
    p.add_argument("--cutoff", type=float, default=None, help="plateau start t_c (window [t_c, 2 t_c])")
    p.add_argument("--window", type=float, nargs=2, default=None, metavar=("T1", "T2"), help="plateau window")
    p.add_argument("--noise-k", type=float, default=3.0, help="noise threshold k of the plateau rule")


def cmd_arrhenius(args) -> int:
    """D0 and E_a of D = D0 exp(−E_a/k_B T) from per-temperature diffusion tables → CSV, JSON, PNG."""
    import json

    import pandas as pd  # noqa: PLC0415

    rows = []
    for T, f, table in _tables_by_temperature(args.files, args.pattern, "D", "a diffusion.csv of `meltpot analyze msd`"):
        if args.species is not None:
            table = table[table["species"].astype(str) == args.species]
            if table.empty:
                raise MeltpotError(f"{f}: no row for species {args.species}")
        row = table.iloc[0]
        err = float(row["D_err"]) if "D_err" in row and pd.notna(row["D_err"]) else float("nan")
        rows.append({"T": T, "species": str(row.get("species", "")), "D": float(row["D"]),
                     "D_err": err, "unit": str(row.get("unit", "")), "file": str(f)})
    data = pd.DataFrame(rows).sort_values("T")
    errs = data["D_err"].to_numpy(float)
    weighted = bool(np.all(np.isfinite(errs) & (errs > 0)))
    fit = dy.arrhenius_fit(data["T"], data["D"], errs if weighted else None, units=args.units)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(out, index=False)
    u = dy.UNITS[args.units]
    summary = {"D0": fit.D0, "D0_err": fit.D0_err, "E_a": fit.E_a, "E_a_err": fit.E_a_err,
               "D_unit": u["diffusion"], "E_unit": u["energy"], "weighted": weighted, "n_points": len(data)}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    dy.plot_arrhenius(out.with_suffix(".png"), data["T"], data["D"], fit,
                      errs if weighted else None, units=args.units)
    print(f"E_a = {fit.E_a:.4g} ± {fit.E_a_err:.2g} {u['energy']}, D0 = {fit.D0:.4g} {u['diffusion']} "
          f"({len(data)} temperatures{', weighted' if weighted else ''}); written {out}")
    if args.viscosity:
        _viscosity_vs_T(args, out, u)
    return 0


def _tables_by_temperature(files, pattern: str, column: str, what: str):
    """(T, file, table) for per-temperature CSV files, T from the named group of ``pattern`` in the
    path; MeltpotError naming the file when T or ``column`` is missing (``what``: the file kind)."""
    import pandas as pd  # noqa: PLC0415

    regex = re.compile(pattern)
    for f in files:
        m = regex.search(str(f))
        if m is None or "T" not in m.groupdict():
            raise MeltpotError(f"{f}: no temperature in the path (--pattern {pattern!r}, named group T)")
        table = pd.read_csv(f)
        if column not in table:
            raise MeltpotError(f"{f}: no {column} column (is it {what}?)")
        yield float(m.group("T")), f, table


def _viscosity_vs_T(args, out: Path, u: dict) -> None:
    """η(T) table and plot from per-temperature viscosity.csv files (log η vs 1/T with a fit)."""
    import pandas as pd  # noqa: PLC0415

    rows = []
    for T, f, table in _tables_by_temperature(args.viscosity, args.pattern, "eta",
                                              "a viscosity.csv of `meltpot analyze viscosity`"):
        r = table.iloc[0]
        rows.append({"T": T, "eta": float(r["eta"]),
                     "eta_err": float(r["eta_err"]) if "eta_err" in r and pd.notna(r["eta_err"]) else float("nan"),
                     "unit": str(r.get("unit", "")), "file": str(f)})
    visc = pd.DataFrame(rows).sort_values("T")
    path = out.with_name(out.stem + "_viscosity.csv")
    visc.to_csv(path, index=False)
    plt = dy._plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    err = visc["eta_err"].to_numpy(float)
    ax.errorbar(visc["T"], visc["eta"], yerr=np.where(np.isfinite(err), err, 0.0), fmt="o", ms=4)
    if len(visc) >= 2 and (visc["eta"] > 0).all():
        # η = η0 exp(+E_η / k_B T): the same fit as D with 1/η
        fit = dy.arrhenius_fit(visc["T"], 1.0 / visc["eta"], units=args.units)
        tt = np.linspace(visc["T"].min(), visc["T"].max(), 100)
        ax.plot(tt, 1.0 / fit.predict(tt), "--", label=f"E_η = {fit.E_a:.3g} ± {fit.E_a_err:.1g} {u['energy']}")
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel(f"T ({u['temperature']})")
    ax.set_ylabel(f"η ({visc['unit'].iloc[0]})")
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    plt.close(fig)
    print(f"viscosity at {len(visc)} temperatures written to {path}")


def add_commands(subparsers) -> None:
    """Register ``msd``, ``viscosity``, ``arrhenius`` and ``interdiffusion`` on an argparse subparsers object."""
    m = subparsers.add_parser("msd", help="MSD per species and self-diffusion (Einstein) from dumps",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _common(m, "LAMMPS dump or extxyz trajectories")
    _frames(m)
    m.add_argument("--window-method", choices=["slope", "fraction"], default="slope",
                   help="fit window rule (see dynamics.diffusion_window)")
    m.add_argument("--slope-tol", type=float, default=0.1, help="|dlnMSD/dlnt − 1| tolerance of the slope rule")
    m.add_argument("--max-fraction", type=float, default=0.5, help="fit window end as a fraction of the run")
    m.add_argument("--fit-window", type=float, nargs=2, default=None, metavar=("T1", "T2"), help="explicit fit window")
    m.add_argument("--remove-com", action="store_true", help="subtract the centre-of-mass drift")
    m.set_defaults(func=cmd_msd)

    v = subparsers.add_parser("viscosity", help="Green–Kubo shear viscosity from LAMMPS logs or fix ave/time files",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _common(v, "LAMMPS logs (thermo with pxy pxz pyz, Temp, Volume) or fix ave/time files")
    v.add_argument("--format", choices=["auto", "log", "ave-time"], default="auto", help="input format")
    v.add_argument("--columns", nargs="+", default=None,
                   help="column names of pxy pxz pyz (with --diagonal: pxx pyy pzz pxy pxz pyz)")
    v.add_argument("--diagonal", action="store_true", help="also use (pxx−pyy)/2 and (pxx+pyy−2pzz)/(2√3)")
    v.add_argument("--run", type=int, default=None, help="thermo block of the log, from 0 (None: the last with the columns)")
    v.add_argument("--skip", type=int, default=0, help="discard this many initial rows (equilibration)")
    v.add_argument("--temperature", type=float, default=None, help="T (None: mean of the Temp column)")
    v.add_argument("--volume", type=float, default=None, help="V (None: mean of the Volume column)")
    _gk(v)
    v.set_defaults(func=cmd_viscosity)

    a = subparsers.add_parser("arrhenius", help="Arrhenius fit of D(T) from several `msd` diffusion.csv files",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a.add_argument("files", nargs="+", help="diffusion.csv of `meltpot analyze msd`, one per temperature")
    a.add_argument("--pattern", default=r"T(?P<T>[0-9.]+)",
                   help="regex with a named group T, searched in each file's path")
    a.add_argument("--species", help="species row to fit (default: the first row of each file)")
    a.add_argument("--units", choices=["lj", "metal", "real"], default="metal")
    a.add_argument("--out", required=True, help="CSV of T, D, D_err; a PNG and a JSON fit with the same stem")
    a.add_argument("--viscosity", nargs="*", default=[],
                   help="viscosity.csv files of `meltpot analyze viscosity` (T from --pattern): also write "
                        "<stem>_viscosity.csv and .png (η(T) with its error and an Arrhenius fit of η)")
    a.set_defaults(func=cmd_arrhenius)

    d = subparsers.add_parser("interdiffusion", help="Green–Kubo interdiffusion of a binary from dumps with velocities",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _common(d, "LAMMPS dumps with vx vy vz (and unwrapped coordinates or image flags)")
    _frames(d)
    d.add_argument("--pair", nargs=2, required=True, metavar=("A", "B"), help="the two species, e.g. Al Ni")
    d.add_argument("--scc0", type=float, default=None, help="S_CC(q→0) from the structure analysis (gives Φ, D_AB)")
    d.add_argument("--phi", type=float, default=None, help="thermodynamic factor Φ directly")
    _gk(d)
    d.set_defaults(func=cmd_interdiffusion)
