"""Trajectory and log readers shared by all analyses.

* :func:`iter_frames` streams ``ase.Atoms`` from LAMMPS text dumps (``dump custom`` /
  ``dump atom``, optionally gzip-compressed) or extxyz files, one frame at a time.
* :func:`count_frames` counts the frames of such a file without building them.
* :func:`read_log` reads the thermo blocks of a LAMMPS log into a ``pandas.DataFrame``.
* :func:`pressure_tensor` picks the off-diagonal pressure components out of such a table.
* :func:`read_ave_time` reads a ``fix ave/time`` file (scalar mode) into a DataFrame.
* :func:`read_trajectory` reads a whole trajectory into arrays (steps, unwrapped positions,
  species, velocities) for the dynamics analyses.

Conventions of the frames returned by :func:`iter_frames`:

* atoms sorted by LAMMPS id; ``arrays["id"]`` and ``arrays["type"]`` (int) always present
  (extxyz without them: ids 1..N, types from the ``types`` mapping or by element order);
* positions in Å relative to the box origin, wrapped into the cell; ``pbc`` from the dump's
  boundary flags (``pp`` → periodic; True when the header has no flags, and for extxyz
  without a cell-less frame);
* ``arrays["unwrapped"]`` (N×3, Å, same origin) when the dump has ``xu``/``xsu`` columns or
  wrapped coordinates plus ``ix iy iz`` image flags (extxyz: when the file has an
  ``unwrapped`` array);
* other numeric dump columns (``vx``, ``c_pe``, …) are kept in ``arrays`` under their names;
* ``info["timestep"]`` (int: the MD step number; extxyz: its ``timestep`` key when that is a whole
  number, else its ``step`` key, else the frame number; a non-integer ``timestep`` such as 0.002
  is the MD time step and is kept as ``info["dt"]``, never truncated into a step number),
  ``info["source"]`` (the path), ``info["frame"]`` (0-based index in the file); dumps
  written with ``dump_modify time yes`` / ``units yes`` also give ``info["time"]`` (float,
  the run's time unit, ps in metal units) / ``info["units"]``.

Species. With ``types={1: "Al", 2: "Ni"}`` the dump types map to elements. Without it, a
dump with an ``element`` column uses that; otherwise the atoms get the placeholder symbol
``"X"`` (atomic number 0) and carry their LAMMPS types only. This is deliberate: inventing
elements (H, He, …) would silently give wrong masses or scattering lengths. Analyses that
only need to tell species apart (partial g(r), S_ab(q)) use :func:`species_labels`, which
falls back to the type numbers ("1", "2", …); analyses that need real elements (neutron or
X-ray weights) call :func:`require_elements`, which raises a :class:`FrameError` naming the
file and frame and suggesting ``types``.

Bad input raises :class:`meltpot.errors.FrameError` (file, frame index, reason): a truncated
frame, an atom count different from the first frame's, a missing ``id``/``type``/coordinate
column, malformed numbers, a type missing from ``types``.
"""

from __future__ import annotations

import gzip
import io
import itertools
import re
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from ..errors import ConfigError, FrameError

__all__ = [
    "iter_frames",
    "count_frames",
    "read_log",
    "pressure_tensor",
    "species_labels",
    "require_elements",
    "trajectory_format",
    "read_trajectory",
    "read_ave_time",
]

_EXTXYZ_SUFFIXES = {".xyz", ".extxyz"}
_COORD_SETS = (  # (columns, scaled?, unwrapped?)
    (("x", "y", "z"), False, False),
    (("xu", "yu", "zu"), False, True),
    (("xs", "ys", "zs"), True, False),
    (("xsu", "ysu", "zsu"), True, True),
)
_RESERVED = {"id", "type", "element", "x", "y", "z", "xu", "yu", "zu", "xs", "ys", "zs",
             "xsu", "ysu", "zsu", "ix", "iy", "iz", "positions", "numbers", "unwrapped"}


# ----------------------------------------------------------------------------- helpers
def _open_text(path: Path):
    """Open a (possibly gzip-compressed) text file for reading."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def trajectory_format(path) -> str:
    """``"lammps-dump"`` or ``"extxyz"``, from the suffix or else the first line."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _EXTXYZ_SUFFIXES:
        return "extxyz"
    try:
        with _open_text(path) as fh:
            first = fh.readline()
    except OSError as exc:
        raise FrameError(str(path), None, f"cannot open trajectory: {exc}") from exc
    if first.startswith("ITEM:"):
        return "lammps-dump"
    if first.strip().isdigit():
        return "extxyz"
    raise FrameError(str(path), 0, "neither a LAMMPS text dump (first line 'ITEM: TIMESTEP') "
                                   "nor an extxyz file (first line an atom count)")


def species_labels(atoms) -> np.ndarray:
    """Per-atom species labels: chemical symbols, or LAMMPS type numbers as strings
    ("1", "2", …) when the frame has only placeholder ``X`` symbols."""
    symbols = np.asarray(atoms.get_chemical_symbols())
    if len(symbols) and np.all(atoms.numbers == 0) and "type" in atoms.arrays:
        return atoms.arrays["type"].astype(str)
    return symbols


def require_elements(atoms, what: str = "this analysis") -> None:
    """Raise FrameError (file, frame) when the atoms carry placeholder ``X`` symbols."""
    if len(atoms) and np.any(atoms.numbers == 0):
        raise FrameError(atoms.info.get("source", "<atoms>"), atoms.info.get("frame"),
                         f"{what} needs chemical elements but the atoms have only LAMMPS types; "
                         "pass types={1: 'Al', 2: 'Ni'} (CLI: --types 1=Al 2=Ni) or dump an "
                         "'element' column")


# ----------------------------------------------------------------------------- LAMMPS dump
class _DumpHeader:
    """Parsed header of one dump frame (everything before the atom lines)."""

    __slots__ = ("timestep", "natoms", "cell", "origin", "pbc", "columns", "extra")

    def __init__(self, timestep, natoms, cell, origin, pbc, columns, extra):
        self.timestep, self.natoms = timestep, natoms
        self.cell, self.origin, self.pbc, self.columns = cell, origin, pbc, columns
        self.extra = extra


def _next_line(fh, source, index, expect) -> str:
    line = fh.readline()
    if not line:
        raise FrameError(source, index, f"file ends inside the frame header (expected {expect})")
    return line


def _parse_box(item: str, lines: list[str], source, index):
    """Cell (3×3, rows = lattice vectors, Å), origin (3,), pbc (3,) from a BOX BOUNDS block."""
    flags = item.split()[3:]  # after 'ITEM: BOX BOUNDS'
    try:
        vals = np.array([[float(v) for v in ln.split()] for ln in lines], dtype=float)
    except ValueError as exc:
        raise FrameError(source, index, f"malformed BOX BOUNDS line: {exc}") from exc
    if "abc" in flags:  # general triclinic (LAMMPS ≥ 2024): rows 'ax ay az ox' …
        if vals.shape != (3, 4):
            raise FrameError(source, index, "BOX BOUNDS abc origin needs 3 lines of 4 numbers")
        cell, origin = vals[:, :3].copy(), vals[:, 3].copy()
        bflags = [f for f in flags if f not in ("abc", "origin")]
    elif "xy" in flags:
        if vals.shape != (3, 3):
            raise FrameError(source, index, "triclinic BOX BOUNDS needs 3 lines of 3 numbers")
        (xlo_b, xhi_b, xy), (ylo_b, yhi_b, xz), (zlo_b, zhi_b, yz) = vals
        xlo = xlo_b - min(0.0, xy, xz, xy + xz)
        xhi = xhi_b - max(0.0, xy, xz, xy + xz)
        ylo, yhi = ylo_b - min(0.0, yz), yhi_b - max(0.0, yz)
        cell = np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, zhi_b - zlo_b]], float)
        origin = np.array([xlo, ylo, zlo_b])
        bflags = [f for f in flags if f not in ("xy", "xz", "yz")]
    else:
        if vals.shape[0] != 3 or vals.shape[1] < 2:
            raise FrameError(source, index, "orthogonal BOX BOUNDS needs 3 lines 'lo hi'")
        origin = vals[:, 0].copy()
        cell = np.diag(vals[:, 1] - vals[:, 0])
        bflags = flags
    pbc = np.array([f == "pp" for f in bflags]) if len(bflags) == 3 else np.ones(3, bool)
    return cell, origin, pbc


def _read_header(fh, source, index) -> _DumpHeader | None:
    """Read one frame header; None at a clean end of file."""
    line = fh.readline()
    while line and not line.strip():
        line = fh.readline()
    if not line:
        return None
    timestep = natoms = cell = None
    origin = pbc = None
    extra = {}
    while True:
        if not line.startswith("ITEM:"):
            raise FrameError(source, index, f"expected an 'ITEM:' line, got {line.strip()[:60]!r}")
        item = line.strip()
        if item.startswith("ITEM: TIMESTEP"):
            val = _next_line(fh, source, index, "the timestep").split()
            try:
                timestep = int(float(val[0]))
            except (ValueError, IndexError) as exc:
                raise FrameError(source, index, "malformed TIMESTEP value") from exc
        elif item.startswith("ITEM: NUMBER OF ATOMS"):
            try:
                natoms = int(_next_line(fh, source, index, "the number of atoms").split()[0])
            except (ValueError, IndexError) as exc:
                raise FrameError(source, index, "malformed NUMBER OF ATOMS value") from exc
        elif item.startswith("ITEM: BOX BOUNDS"):
            lines = [_next_line(fh, source, index, "box bounds") for _ in range(3)]
            cell, origin, pbc = _parse_box(item, lines, source, index)
        elif item.startswith("ITEM: ATOMS"):
            columns = item.split()[2:]
            if natoms is None or cell is None:
                raise FrameError(source, index, "ATOMS section before NUMBER OF ATOMS/BOX BOUNDS")
            if timestep is None:
                timestep = index
            return _DumpHeader(timestep, natoms, cell, origin, pbc, columns, extra)
        elif item.startswith("ITEM: TIME"):  # dump_modify time yes (time units of the run)
            value = _next_line(fh, source, index, "the time").strip()
            try:
                extra["time"] = float(value)
            except ValueError as exc:
                raise FrameError(source, index, f"malformed TIME value {value!r}") from exc
        elif item.startswith("ITEM: UNITS"):  # dump_modify units yes
            extra["units"] = _next_line(fh, source, index, "the units").strip()
        else:  # other single-value items: skip the value line
            _next_line(fh, source, index, f"the value of {item!r}")
        line = _next_line(fh, source, index, "ITEM: ATOMS")


def _read_atom_lines(fh, header, source, index) -> list[str]:
    lines = list(itertools.islice(fh, header.natoms))
    if len(lines) < header.natoms or (lines and not lines[-1].endswith("\n")
                                      and len(lines[-1].split()) < len(header.columns)):
        raise FrameError(source, index, f"truncated frame: {len(lines)} atom lines, NUMBER OF "
                                        f"ATOMS says {header.natoms}")
    return lines


def _column_index(columns, name):
    try:
        return columns.index(name)
    except ValueError:
        return None


def _frame_from_lines(lines, header: _DumpHeader, source, index,
                      types: Mapping[int, str] | None):
    """Build the ase.Atoms of one dump frame from its atom lines."""
    from ase import Atoms  # noqa: PLC0415

    cols = header.columns
    ncol = len(cols)
    for need in ("id", "type"):
        if need not in cols:
            raise FrameError(source, index,
                             f"dump has no '{need}' column (columns: {' '.join(cols)})")
    present = [(c, s, u) for c, s, u in _COORD_SETS if all(k in cols for k in c)]
    wrapped_set = next((p for p in present if not p[2]), None)
    unwrapped_set = next((p for p in present if p[2]), None)
    if not present:
        raise FrameError(source, index, "dump has no coordinate columns (one of x y z, xu yu zu, "
                                        f"xs ys zs, xsu ysu zsu); columns: {' '.join(cols)}")
    tokens = " ".join(lines).split()
    if len(tokens) != ncol * header.natoms:
        counts = np.array([len(ln.split()) for ln in lines])
        bad = int(np.flatnonzero(counts != ncol)[0]) if np.any(counts != ncol) else 0
        raise FrameError(source, index, f"atom line {bad + 1} has {counts[bad]} values, "
                                        f"expected {ncol} ({' '.join(cols)})")
    table = np.array(tokens, dtype=object).reshape(header.natoms, ncol)
    elem_i = _column_index(cols, "element")
    numeric = [i for i in range(ncol) if i != elem_i]
    try:
        data = np.zeros((header.natoms, ncol))
        data[:, numeric] = table[:, numeric].astype(float)
    except ValueError as exc:
        raise FrameError(source, index, f"malformed number in atom lines: {exc}") from exc

    ids = data[:, cols.index("id")].astype(np.int64)
    order = np.argsort(ids, kind="stable")
    data, ids = data[order], ids[order]
    typ = data[:, cols.index("type")].astype(np.int64)

    cell, origin = header.cell, header.origin

    def coordinates(names, scaled):
        xyz = data[:, [cols.index(c) for c in names]]
        return xyz @ cell if scaled else xyz - origin

    unwrapped = None
    if unwrapped_set is not None:
        unwrapped = coordinates(*unwrapped_set[:2])
    if wrapped_set is not None:
        pos = coordinates(*wrapped_set[:2])
        if unwrapped is None and all(k in cols for k in ("ix", "iy", "iz")):
            images = data[:, [cols.index(c) for c in ("ix", "iy", "iz")]]
            unwrapped = pos + images @ cell
    else:
        pos = unwrapped.copy()

    if types is not None:
        uniq = np.unique(typ)
        missing = [int(t) for t in uniq if int(t) not in types]
        if missing:
            raise FrameError(source, index, f"LAMMPS type(s) {missing} missing from the types "
                                            f"mapping {dict(types)}")
        lut = {int(t): types[int(t)] for t in uniq}
        symbols = [lut[int(t)] for t in typ]
    elif elem_i is not None:
        symbols = list(table[order, elem_i])
    else:
        symbols = None

    try:
        if symbols is None:
            atoms = Atoms(numbers=np.zeros(len(ids), int), positions=pos, cell=cell,
                          pbc=header.pbc)
        else:
            atoms = Atoms(symbols=symbols, positions=pos, cell=cell, pbc=header.pbc)
    except (KeyError, ValueError) as exc:
        raise FrameError(source, index, f"cannot build atoms: {exc}") from exc
    if atoms.pbc.any():
        atoms.wrap()
    atoms.arrays["id"] = ids
    atoms.arrays["type"] = typ
    if unwrapped is not None:
        atoms.arrays["unwrapped"] = unwrapped
    for i in numeric:
        if cols[i] not in _RESERVED:
            atoms.arrays[cols[i]] = data[:, i].copy()
    atoms.info.update(header.extra)
    atoms.info.update(timestep=int(header.timestep), source=source, frame=index)
    return atoms


def _skip(fh, n: int) -> int:
    """Skip n lines; return how many were skipped."""
    return sum(1 for _ in itertools.islice(fh, n))


def _iter_dump(path: Path, start, stop, step, types) -> Iterator:
    source = str(path)
    n_first = units = None
    with _open_text(path) as fh:
        for index in itertools.count():
            if stop is not None and index >= stop:
                return
            header = _read_header(fh, source, index)
            if header is None:
                return
            if "units" in header.extra:  # LAMMPS writes ITEM: UNITS in the first frame only
                units = header.extra["units"]
            elif units is not None:
                header.extra["units"] = units
            if n_first is None:
                n_first = header.natoms
            elif header.natoms != n_first:
                raise FrameError(source, index, f"{header.natoms} atoms, the first frame has "
                                                f"{n_first}")
            wanted = index >= start and (index - start) % step == 0
            if not wanted:
                if _skip(fh, header.natoms) < header.natoms:
                    raise FrameError(source, index, "truncated frame: fewer atom lines than "
                                                    f"NUMBER OF ATOMS ({header.natoms})")
                continue
            lines = _read_atom_lines(fh, header, source, index)
            yield _frame_from_lines(lines, header, source, index, types)


# ----------------------------------------------------------------------------- extxyz
def _integral(value) -> int | None:
    """``value`` as an int when it is a whole number (an int, or a float/str like 1000.0), else None."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return int(x) if np.isfinite(x) and x == int(x) else None


def _extxyz_step(info: dict, index: int) -> tuple[int, float | None]:
    """(MD step number, MD time step or None) of an extxyz frame. The step number is the
    ``timestep`` key when it is a whole number (LAMMPS's TIMESTEP, ASE's LAMMPS readers), else
    the ``step`` key (meltpot's sampled frames), else the frame's index in the file. A
    ``timestep`` that is not a whole number (0.002) is the MD time step, not a step counter: it
    is returned as the second value and never truncated into a step number."""
    raw = info.get("timestep")
    step = _integral(raw) if raw is not None else None
    dt = None
    if raw is not None and step is None:
        try:
            dt = float(raw)
        except (TypeError, ValueError):
            dt = None
    if step is None:
        step = _integral(info.get("step"))
    return (index if step is None else step), dt


def _iter_extxyz(path: Path, start, stop, step, types) -> Iterator:
    import ase.io  # noqa: PLC0415

    source = str(path)
    inverse = None
    if types is not None:
        inverse = {}
        for t, sym in types.items():
            inverse.setdefault(sym, int(t))
    reader = ase.io.iread(source, index=slice(start, stop, step), format="extxyz")
    n_first = None
    for k in itertools.count():
        index = start + k * step
        try:
            atoms = next(reader)
        except StopIteration:
            return
        except Exception as exc:  # ase raises various types on malformed files
            raise FrameError(source, index, f"cannot read extxyz frame: {exc}") from exc
        n = len(atoms)
        if n_first is None:
            n_first = n
        elif n != n_first:
            raise FrameError(source, index, f"{n} atoms, the first frame has {n_first}")
        if "id" not in atoms.arrays:
            atoms.arrays["id"] = np.arange(1, n + 1, dtype=np.int64)
        else:
            order = np.argsort(atoms.arrays["id"], kind="stable")
            if np.any(order != np.arange(n)):
                atoms = atoms[order]
        if "type" not in atoms.arrays:
            symbols = atoms.get_chemical_symbols()
            if inverse is not None:
                missing = sorted(set(symbols) - set(inverse))
                if missing:
                    raise FrameError(source, index, f"element(s) {missing} missing from the "
                                                    f"types mapping {dict(types)}")
                atoms.arrays["type"] = np.array([inverse[s] for s in symbols], dtype=np.int64)
            else:  # types numbered by atomic number order
                uniq = np.unique(atoms.numbers)
                atoms.arrays["type"] = np.searchsorted(uniq, atoms.numbers).astype(np.int64) + 1
        if not atoms.cell.rank == 3:
            raise FrameError(source, index, "extxyz frame has no 3-D cell (Lattice=...)")
        atoms.pbc = True
        atoms.info["timestep"], dt = _extxyz_step(atoms.info, index)
        if dt is not None:
            atoms.info["dt"] = dt
        atoms.info["source"] = source
        atoms.info["frame"] = index
        yield atoms


# ----------------------------------------------------------------------------- public
def iter_frames(path, start: int = 0, stop: int | None = None, step: int = 1,
                types: Mapping[int, str] | None = None) -> Iterator:
    """Yield frames ``start:stop:step`` of a LAMMPS text dump or extxyz file as ase.Atoms.

    Frames are read one at a time (memory ∝ one frame). ``types`` maps LAMMPS types to
    element symbols, e.g. ``{1: "Al", 2: "Ni"}``. See the module docstring for the
    conventions (units Å, sorting by id, ``arrays["unwrapped"]``, placeholder symbols).
    """
    path = Path(path)
    if step < 1 or start < 0 or (stop is not None and stop < 0):
        raise ValueError(f"need start ≥ 0, stop ≥ 0, step ≥ 1 (got {start}, {stop}, {step})")
    if types is not None:
        types = {int(k): str(v) for k, v in types.items()}
    if not path.exists():
        raise FrameError(str(path), None, "trajectory file does not exist")
    if trajectory_format(path) == "extxyz":
        return _iter_extxyz(path, start, stop, step, types)
    return _iter_dump(path, start, stop, step, types)


def count_frames(path) -> int:
    """Number of frames in a dump or extxyz file (headers scanned, atom lines skipped).

    A truncated last frame raises FrameError, as :func:`iter_frames` would.
    """
    path = Path(path)
    if not path.exists():
        raise FrameError(str(path), None, "trajectory file does not exist")
    source = str(path)
    n = 0
    with _open_text(path) as fh:
        if trajectory_format(path) == "extxyz":
            for index in itertools.count():
                line = fh.readline()
                while line and not line.strip():
                    line = fh.readline()
                if not line:
                    return n
                try:
                    natoms = int(line.split()[0])
                except ValueError as exc:
                    raise FrameError(source, index, "expected an atom count line") from exc
                if _skip(fh, natoms + 1) < natoms + 1:
                    raise FrameError(source, index, "truncated frame")
                n += 1
        for index in itertools.count():
            header = _read_header(fh, source, index)
            if header is None:
                return n
            if _skip(fh, header.natoms) < header.natoms:
                raise FrameError(source, index, "truncated frame: fewer atom lines than NUMBER "
                                                f"OF ATOMS ({header.natoms})")
            n += 1
    return n


# ----------------------------------------------------------------------------- LAMMPS log
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?(nan|inf)$", re.I)


def _numeric_row(tokens) -> bool:
    return all(_NUMBER.match(t) for t in tokens)


def read_log(path):
    """Thermo output of a LAMMPS log as one DataFrame.

    Each block starts at a header line whose first word is ``Step`` and ends at ``Loop
    time`` (or the end of the file for an interrupted run). Lines inside a block that are
    not rows of numbers with the header's width (``WARNING: …``, partial last line) are
    skipped. Columns keep LAMMPS's names; ``run`` numbers the blocks from 0; ``Step`` is
    int. Blocks with different columns are concatenated with NaN where a column is absent.
    ``df.attrs["source"]`` is the path.
    """
    import pandas as pd  # noqa: PLC0415

    path = Path(path)
    if not path.exists():
        raise FrameError(str(path), None, "log file does not exist")
    blocks = []
    header = None
    rows: list[list[str]] = []

    def flush():
        if header is not None and rows:
            df = pd.DataFrame(np.array(rows, dtype=float), columns=header)
            df.insert(0, "run", len(blocks))
            blocks.append(df)

    with _open_text(path) as fh:
        for line in fh:
            tokens = line.split()
            if not tokens:
                continue
            if tokens[0] == "Step" and header is None:
                header, rows = tokens, []
                continue
            if header is None:
                continue
            if tokens[0] == "Loop" and line.startswith("Loop time"):
                flush()
                header, rows = None, []
                continue
            if len(tokens) == len(header) and _numeric_row(tokens):
                rows.append(tokens)
        flush()
    if not blocks:
        raise FrameError(str(path), None, "no thermo block (header line starting with 'Step')")
    table = pd.concat(blocks, ignore_index=True)
    if "Step" in table:
        table["Step"] = table["Step"].astype(np.int64)
    table.attrs["source"] = str(path)
    return table


def pressure_tensor(table, columns=("pxy", "pxz", "pyz")) -> np.ndarray:
    """Columns of ``table`` (matched case-insensitively) as an (n_rows, len(columns)) array.

    Raises FrameError naming the missing column and the log file (``table.attrs["source"]``).
    """
    lookup = {str(c).lower(): c for c in table.columns}
    picked = []
    for name in columns:
        key = lookup.get(str(name).lower())
        if key is None:
            source = getattr(table, "attrs", {}).get("source", "<table>")
            have = ", ".join(map(str, table.columns))
            raise FrameError(source, None, f"thermo output has no '{name}' column (needed for "
                                           f"the pressure tensor; columns: {have}); add it to "
                                           "thermo_style")
        picked.append(key)
    return table[picked].to_numpy(dtype=float)


def parse_types(items) -> dict[int, str] | None:
    """``["1=Al", "2=Ni"]`` (the CLI's ``--types``) → ``{1: "Al", 2: "Ni"}``; None when empty."""
    if not items:
        return None
    out = {}
    for item in items:
        key, sep, sym = str(item).partition("=")
        if not sep or not key.strip().isdigit() or not sym.strip():
            raise ConfigError(f"--types: expected TYPE=ELEMENT items such as 1=Al, got {item!r}")
        out[int(key)] = sym.strip()
    return out


# ----------------------------------------------------------------------------- arrays for dynamics
def progress_bar(iterable, total, desc, enabled=True, unit="frame"):
    """``iterable`` with a tqdm progress bar when ``enabled``."""
    if not enabled:
        return iterable
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False)


def read_trajectory(path, *, start=0, stop=None, step=1, types=None, velocities=False, progress=True) -> dict:
    """Read one trajectory into arrays for the dynamics analyses.

    Returns ``steps`` (n_frames,) MD step numbers, ``positions`` unwrapped (n_frames, n_atoms,
    3) (from the file's unwrapped coordinates or image flags, else unwrapped here by minimum
    image between frames, see :func:`meltpot.analysis.dynamics.unwrap_positions`), ``species`` labels,
    ``unwrapped_by`` ("file" or "minimum image") and, with ``velocities``, ``velocities``
    (from vx, vy, vz columns). Memory: 24 bytes × frames × atoms per array.
    """
    path = Path(path)
    n_file = count_frames(path)
    n = len(range(start, n_file if stop is None else min(stop, n_file), step))
    if n < 2:
        raise FrameError(str(path), None, f"needs at least 2 frames in the selection, found {n}")
    steps = np.empty(n, dtype=np.int64)
    pos = cells = vel = None
    species, own_unwrap = None, False
    frames = iter_frames(path, start=start, stop=stop, step=step, types=types)
    for k, atoms in enumerate(progress_bar(frames, n, path.name, progress)):
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
        from .dynamics import unwrap_positions  # noqa: PLC0415

        pos = unwrap_positions(pos, cells)
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


# ----------------------------------------------------------------------------- units and timestep
_UNITS_LINE = re.compile(r"^\s*units\s+(\w+)\s*(?:#.*)?$")
_TIMESTEP_LINE = re.compile(r"^\s*timestep\s+([-+0-9.eE]+)\s*(?:#.*)?$")
#: LAMMPS inputs and logs beside a trajectory that state its units and timestep (``meltpot md run``)
SIBLING_INPUTS = ("in.lammps", "log.lammps")


def _lammps_settings(path: Path) -> dict:
    """``units`` and ``timestep`` commands of a LAMMPS input script or log (the first of each)."""
    found = {}
    try:
        with _open_text(path) as fh:
            for line in fh:
                if "units" not in found and (m := _UNITS_LINE.match(line)):
                    found["units"] = m.group(1)
                elif "timestep" not in found and (m := _TIMESTEP_LINE.match(line)):
                    try:
                        found["timestep"] = float(m.group(1))
                    except ValueError:
                        pass
                if len(found) == 2:
                    break
    except OSError:
        return {}
    return found


def _is_lammps_text(path: Path) -> bool:
    """A LAMMPS log or input script (not a dump, extxyz or fix ave/time table)."""
    if path.name.startswith(("log", "in.")) or path.suffix in (".log", ".in", ".lammps"):
        return True
    return False


def input_settings(paths) -> dict:
    """The unit system and MD timestep the input files of an analysis state, for defaults:
    ``{"units": str | None, "timestep": float | None, "source": {"units": where, "timestep": where}}``.

    Looked up per file, first found wins: a trajectory's own header (a LAMMPS dump written with
    ``dump_modify units yes``, an extxyz frame's ``units`` key), a LAMMPS log's ``units`` and
    ``timestep`` commands, then ``in.lammps`` / ``log.lammps`` in the file's folder (what ``meltpot
    md run`` writes beside its dumps). Files that disagree raise :class:`ConfigError`."""
    out = {"units": None, "timestep": None, "source": {}}
    for path in map(Path, paths):
        own = {}
        if path.exists():
            if _is_lammps_text(path):
                own = _lammps_settings(path)
            else:
                try:  # a trajectory: the units in its first frame
                    first = next(iter_frames(path, stop=1), None)
                except (FrameError, ValueError):  # a table, not a trajectory
                    first = None
                if first is not None and first.info.get("units"):
                    own["units"] = str(first.info["units"])
        found = {k: (v, str(path)) for k, v in own.items()}
        for name in SIBLING_INPUTS:
            sib = path.parent / name
            if sib != path and sib.exists():
                for k, v in _lammps_settings(sib).items():
                    found.setdefault(k, (v, str(sib)))
        for key, (value, where) in found.items():
            if out[key] is None:
                out[key], out["source"][key] = value, where
            elif out[key] != value:
                raise ConfigError(f"{where} says {key} {value}, but {out['source'][key]} says {out[key]}: "
                                  f"give --{key}")
    return out
