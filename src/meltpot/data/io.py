"""Reading and writing frames: extxyz, VASP (OUTCAR, vasprun.xml), n2p2 ``input.data``,
DeePMD ``deepmd/npy`` folders (:mod:`meltpot.data.deepmd`) and ASE databases
(:mod:`meltpot.data.asedb`).

Every frame returned follows :mod:`meltpot.data.frames`: positions and cell in Å, labels in a
:class:`~ase.calculators.singlepoint.SinglePointCalculator` with ``energy`` the
force-consistent (free) energy in eV, ``forces`` in eV/Å and, where the source has it,
``stress`` as a Voigt 6-vector in eV/Å³ (ASE sign). ``info["energy_zero"]`` keeps the
zero-smearing extrapolation where the source gives it (VASP), ``info["source"]`` the file and
``info["source_index"]`` the 0-based frame index in it.

Any file that cannot be read raises :class:`~meltpot.errors.FrameError` naming the file (and
the frame where known), wrapping the parser's message.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
from ase import Atoms, units as ase_units
from ase.data import atomic_numbers

from meltpot.data.frames import attach_labels, labels, mark_source
from meltpot.errors import FrameError

__all__ = [
    "FORMATS",
    "guess_format",
    "read_frames",
    "write_frames",
    "read_n2p2",
    "write_n2p2",
    "file_sha256",
    "append_extxyz",
]

#: Formats understood by :func:`read_frames` (``write_frames``: all but the VASP ones).
FORMATS = ("extxyz", "vasp-out", "vasp-xml", "n2p2", "deepmd-npy", "ase-db")
WRITE_FORMATS = ("extxyz", "n2p2", "deepmd-npy", "ase-db")
_WRITE_FORMATS = WRITE_FORMATS
_UNITS = ("metal", "atomic", "lj")

# calculator keys that must not also sit in atoms.info when ASE writes extxyz
_RESULT_KEYS = ("energy", "free_energy", "forces", "stress")
# marker for string tags that ASE's extxyz key=value parser would not give back unchanged
_STR_MARK = "_str:"
# info entries that hold energies (converted with the file's energy unit in n2p2)
_ENERGY_INFO_KEYS = ("energy_zero",)


# ----------------------------------------------------------------------------------------
# helpers


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks of ``chunk_size`` bytes (for manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as fd:
        while chunk := fd.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def guess_format(path: str | os.PathLike) -> str:
    """Format from the file name — ``OUTCAR*`` → vasp-out, ``vasprun*.xml`` → vasp-xml,
    ``*.xyz``/``*.extxyz`` → extxyz, ``input.data*`` (n2p2 also writes ``input.data.<suffix>``)
    and ``*.data`` → n2p2, ``*.db`` → ase-db, a folder with ``type.raw`` (or sub-folders with one)
    → deepmd-npy — else from the content of an existing file (:func:`sniff_format`).

    Raises :class:`FrameError` naming the file when neither tells.
    """
    from .deepmd import is_deepmd

    name = Path(path).name
    lower = name.lower()
    if Path(path).is_dir():
        if is_deepmd(path):
            return "deepmd-npy"
        raise FrameError(str(path), None, "a folder that is not DeePMD data (no type.raw in it or its sub-folders)")
    if lower.endswith(".db"):
        return "ase-db"
    if name.startswith("OUTCAR"):
        return "vasp-out"
    if lower.startswith("vasprun") and lower.endswith(".xml"):
        return "vasp-xml"
    if lower.endswith((".xyz", ".extxyz")):
        return "extxyz"
    if lower.startswith("input.data") or lower.endswith(".data"):
        return "n2p2"
    fmt = sniff_format(path) if Path(path).is_file() else None
    if fmt:
        return fmt
    raise FrameError(str(path), None,
                     "cannot tell the file format from the name or the content; give it (one of "
                     + ", ".join(FORMATS) + ": --format or --input-format on the command line, "
                     "imports[].format in a config, format= in Python)")


def sniff_format(path: str | os.PathLike, max_lines: int = 400) -> str | None:
    """The format from the first lines of a file, or None: n2p2 (``begin`` … ``atom`` lines),
    vasprun.xml (an XML ``<modeling>`` document), OUTCAR (the ``vasp.`` version header or
    ``POTCAR:`` lines), extended XYZ (an atom count, then a comment line), an ASE database (an
    SQLite file)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(16) == b"SQLite format 3\x00":
                return "ase-db"
    except OSError:
        return None
    lines = []
    try:
        with open(path, errors="replace") as fh:
            for _ in range(max_lines):
                line = fh.readline()
                if not line:
                    break
                lines.append(line.strip())
    except OSError:
        return None
    words = [ln.split()[0].lower() for ln in lines if ln and not ln.startswith("#")]
    if words and words[0] == "begin" and any(w == "atom" for w in words):
        return "n2p2"
    head = "\n".join(lines[:20])
    if head.startswith("<?xml") and "<modeling" in head:
        return "vasp-xml"
    if any(ln.startswith("vasp.") for ln in lines[:5]) or any("POTCAR:" in ln for ln in lines):
        return "vasp-out"
    content = [ln for ln in lines if ln]
    if len(content) >= 2 and content[0].isdigit() and int(content[0]) > 0:
        return "extxyz"
    return None


_ALIASES = {"xyz": "extxyz", "outcar": "vasp-out", "vasprun": "vasp-xml",
            "input.data": "n2p2"}


def _check_format(fmt: str, allowed: Sequence[str]) -> str:
    fmt = _ALIASES.get(fmt.lower(), fmt.lower()) if isinstance(fmt, str) else fmt
    if fmt not in allowed:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(allowed)}")
    return fmt


def _index_range(index, n: int) -> range:
    """The frame numbers selected by ``index`` (int, slice or ASE-style string) out of ``n``."""
    if isinstance(index, str):
        from ase.io.formats import string2index
        index = string2index(index)
    if isinstance(index, (int, np.integer)):
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"frame index {i} out of range for {n} frames")
        i %= n
        return range(i, i + 1)
    if isinstance(index, slice):
        return range(n)[index]
    raise TypeError(f"index must be an int, a slice or a string like ':' or '-1', not {index!r}")


def _py(value):
    """numpy scalars → Python scalars (leave everything else)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unit_factors(units: str) -> tuple[float, float]:
    """(length, energy) factors from file units to meltpot units (Å, eV)."""
    if units == "atomic":
        return ase_units.Bohr, ase_units.Hartree
    if units in ("metal", "lj"):
        return 1.0, 1.0
    raise ValueError(f"unknown units {units!r}; expected one of {', '.join(_UNITS)}")


# ----------------------------------------------------------------------------------------
# reading


def read_frames(path: str | os.PathLike, format: str | None = None, units: str = "metal",
                index=":") -> list[Atoms]:
    """Read labelled frames from ``path``.

    ``format``: "extxyz", "vasp-out" (OUTCAR), "vasp-xml" (vasprun.xml) or "n2p2"
    (``input.data``); guessed from the name when None (see :func:`guess_format`).
    ``units``: units of the file. "metal" (eV, Å; the default and the only choice for VASP),
    "atomic" (Hartree, Bohr; n2p2 and extxyz, converted to eV, Å) or "lj" (reduced units,
    left unconverted). ``index``: ASE-style selection (":", "-1", "2:10", int or slice);
    ``info["source_index"]`` is always the frame's position in the whole file.

    Returns frames in eV, Å, eV/Å, eV/Å³ (see the module docstring). Raises
    :class:`FrameError` for a missing, empty, truncated or unparsable file.
    """
    path = Path(path)
    fmt = guess_format(path) if format is None else _check_format(format, FORMATS)
    length, energy = _unit_factors(units)
    if fmt.startswith("vasp") and units != "metal":
        raise ValueError(f"{path}: VASP files are in eV and Å; units={units!r} makes no sense")
    if not path.exists():
        raise FrameError(str(path), None, "no such file")
    if fmt == "deepmd-npy":
        if not path.is_dir():
            raise FrameError(str(path), None, "DeePMD data is a folder (type.raw, set.*/)")
    elif not path.is_file():
        raise FrameError(str(path), None, "not a regular file")
    if fmt in ("deepmd-npy", "ase-db") and units not in ("metal", "lj"):
        raise ValueError(f"{path}: {fmt} data is in eV and Å; units={units!r} makes no sense")

    if fmt == "deepmd-npy":
        from .deepmd import read_deepmd

        frames = read_deepmd(path)
    elif fmt == "ase-db":
        from .asedb import read_asedb

        frames = read_asedb(path)
    elif fmt == "n2p2":
        frames = read_n2p2(path, units=units)
    elif fmt == "extxyz":
        frames = _read_extxyz(path)
        if length != 1.0 or energy != 1.0:
            frames = [_scale_frame(a, length, energy) for a in frames]
    elif fmt == "vasp-out":
        frames = _read_outcar(path)
    else:
        frames = _read_vasprun(path)

    if not frames:
        raise FrameError(str(path), None, f"no frames found (read as {fmt})")
    try:
        selected = _index_range(index, len(frames))
    except (IndexError, ValueError) as exc:
        raise FrameError(str(path), None, str(exc)) from exc
    return [frames[i] for i in selected]


def _ase_frames(path: Path, fmt: str) -> list[Atoms]:
    """All frames of ``path`` through ``ase.io.iread``; parser errors → FrameError(frame)."""
    import ase.io

    out: list[Atoms] = []
    try:
        for atoms in ase.io.iread(str(path), index=":", format=fmt):
            out.append(atoms)
    except FrameError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure becomes a FrameError
        raise FrameError(str(path), len(out),
                         f"cannot parse as {fmt} ({type(exc).__name__}: {exc}); "
                         "truncated or corrupt file?") from exc
    return out


def _decode_info(info: dict) -> dict:
    out = {}
    for key, value in info.items():
        value = _py(value)
        if isinstance(value, str) and value.startswith(_STR_MARK):
            value = unquote(value[len(_STR_MARK):])
        out[key] = value
    return out


def _read_extxyz(path: Path) -> list[Atoms]:
    frames = []
    for i, atoms in enumerate(_ase_frames(path, "extxyz")):
        info = _decode_info(atoms.info)
        lab = labels(atoms)
        calc_results = dict(getattr(atoms.calc, "results", {}) or {})
        new = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        if "energy" in lab and "forces" in lab:
            attach_labels(new, float(lab["energy"]), lab["forces"], lab.get("stress"))
            # a file with both free_energy and energy: the latter is the sigma->0 value
            free, zero = calc_results.get("free_energy"), calc_results.get("energy")
            if (free is not None and zero is not None and float(free) != float(zero)
                    and "energy_zero" not in info):
                info["energy_zero"] = float(zero)
        elif calc_results:
            # incomplete labels: keep what is there, validation rejects the frame later
            from ase.calculators.singlepoint import SinglePointCalculator
            new.calc = SinglePointCalculator(new, **calc_results)
        for key, value in atoms.arrays.items():
            if key not in ("numbers", "positions") and key not in new.arrays:
                new.arrays[key] = value.copy()
        new.info.update(info)
        frames.append(mark_source(new, path, i))
    return frames


def _vasp_frame(atoms: Atoms, path: Path, index: int) -> Atoms:
    """A VASP frame with energy = free energy (TOTEN) and energy_zero = energy(sigma->0)."""
    results = dict(getattr(atoms.calc, "results", {}) or {})
    new = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    free = results.get("free_energy")
    zero = results.get("energy")
    if free is None:
        free = zero
    forces = results.get("forces")
    if free is None or forces is None:
        raise FrameError(str(path), index, "no energy or no forces in this ionic step")
    attach_labels(new, float(free), forces, results.get("stress"))
    if zero is not None:
        new.info["energy_zero"] = float(zero)
    new.info["engine"] = "vasp"
    return mark_source(new, path, index)


_OUTCAR_DELIM = "FREE ENERGIE OF THE ION-ELECTRON SYSTEM"


def _outcar_truncation(path: Path) -> tuple[int, str] | None:
    """(frame, reason) if the OUTCAR ends inside an ionic step, else None.

    ASE's reader silently drops an incomplete last ionic step; meltpot reports it.
    """
    complete = 0          # ionic steps whose energy block is complete
    pending = None        # lines still needed to complete the current energy block
    started = False       # an SCF loop (or positions) began after the last complete step
    with open(path, errors="replace") as fd:
        for line in fd:
            if pending is not None:
                pending -= 1
                if pending == 0:
                    complete += 1
                    pending = None
                    started = False
                continue
            if _OUTCAR_DELIM in line:
                pending = 4
            elif "Iteration" in line or "POSITION   " in line:
                started = True
    if pending is not None:
        return complete, ("file ends inside the energy block of ionic step "
                          f"{complete} (truncated OUTCAR?)")
    if started and complete > 0:
        return complete, (f"file ends inside ionic step {complete}, after {complete} complete "
                          "step(s) (truncated OUTCAR, or the job was killed mid-step?)")
    if complete == 0:
        return 0, ("no complete ionic step (no 'FREE ENERGIE OF THE ION-ELECTRON SYSTEM' "
                   "block; truncated OUTCAR?)")
    return None


def _read_outcar(path: Path) -> list[Atoms]:
    raw = _ase_frames(path, "vasp-out")
    truncated = _outcar_truncation(path)
    if truncated is not None:
        raise FrameError(str(path), truncated[0], truncated[1])
    return [_vasp_frame(a, path, i) for i, a in enumerate(raw)]


def _read_vasprun(path: Path) -> list[Atoms]:
    raw = _ase_frames(path, "vasp-xml")
    # ASE swallows XML errors of a truncated file and returns the complete steps
    with open(path, "rb") as fd:
        fd.seek(0, os.SEEK_END)
        size = fd.tell()
        fd.seek(max(0, size - 4096))
        tail = fd.read().decode(errors="replace").rstrip()
    if not tail.endswith("</modeling>"):
        # ASE yields the complete steps, or only the initial structure (no labels) if none
        done = sum(1 for a in raw if a.calc is not None)
        raise FrameError(str(path), done,
                         "file does not end with </modeling> (truncated vasprun.xml?); "
                         f"complete ionic steps before the cut: {done}")
    return [_vasp_frame(a, path, i) for i, a in enumerate(raw)]


def _scale_frame(atoms: Atoms, length: float, energy: float) -> Atoms:
    """Convert a frame from (length, energy) units to Å, eV in place."""
    atoms.set_cell(atoms.cell.array * length, scale_atoms=False)
    atoms.positions = atoms.positions * length
    lab = labels(atoms)
    if "energy" in lab and "forces" in lab:
        stress = lab.get("stress")
        attach_labels(atoms, float(lab["energy"]) * energy, lab["forces"] * (energy / length),
                      None if stress is None else stress * (energy / length**3))
    for key in _ENERGY_INFO_KEYS:
        if isinstance(atoms.info.get(key), numbers.Real):
            atoms.info[key] = float(atoms.info[key]) * energy
    return atoms


# ----------------------------------------------------------------------------------------
# n2p2 input.data

_N2P2_TOKEN = re.compile(r'([A-Za-z_][\w.\-]*)=("(?:[^"\\]|\\.)*"|\S+)|(\S+)')


def _n2p2_encode(value) -> str | None:
    """A comment-line value as JSON without spaces (None: not representable)."""
    value = _py(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iufb" or value.ndim != 1:
            return None
        value = value.tolist()
    if isinstance(value, (str, bool, int, float)) or (
            isinstance(value, list) and all(isinstance(v, (bool, int, float)) for v in value)):
        return json.dumps(value, separators=(",", ":"))
    return None


def _n2p2_decode(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse_comment(text: str) -> dict:
    """``key=value`` tokens of a comment line → dict; other words → ``info["comment"]``."""
    info: dict = {}
    rest = []
    for m in _N2P2_TOKEN.finditer(text):
        if m.group(1):
            info[m.group(1)] = _n2p2_decode(m.group(2))
        else:
            rest.append(m.group(3))
    if rest:
        info["comment"] = " ".join(rest)
    return info


def read_n2p2(path: str | os.PathLike, units: str = "metal") -> list[Atoms]:
    """Read every frame of an n2p2 ``input.data`` file.

    ``units``: "metal" (eV, Å), "atomic" (Hartree, Bohr → converted to eV, Å) or "lj" (no
    conversion). Frames without ``lattice`` lines come back with ``pbc=False`` (validation
    rejects them). ``key=value`` tokens of the ``comment`` line become ``info`` entries
    (``stress=[...]``, Voigt, in the file's energy/length³, becomes the stress label); the
    per-atom charge and atomic-energy columns are ignored.
    """
    path = Path(path)
    length, energy_unit = _unit_factors(units)
    frames: list[Atoms] = []
    block = None  # current frame being parsed
    frame_no = -1

    def fail(lineno, msg):
        raise FrameError(str(path), frame_no, f"line {lineno}: {msg}")

    def floats(parts, lineno, what):
        try:
            return [float(x) for x in parts]
        except ValueError:
            fail(lineno, f"cannot read numbers in {what!r} line: {' '.join(parts)!r}")

    try:
        fd = open(path, errors="replace")
    except OSError as exc:
        raise FrameError(str(path), None, f"cannot open: {exc}") from exc
    with fd:
        lineno = 0
        for lineno, line in enumerate(fd, start=1):
            parts = line.split()
            if not parts:
                continue
            key = parts[0]
            if key == "begin":
                if block is not None:
                    fail(lineno, "'begin' before the 'end' of the previous frame")
                frame_no += 1
                block = {"lattice": [], "symbols": [], "pos": [], "forces": [],
                         "energy": None, "comment": [], "start": lineno}
                continue
            if block is None:
                frame_no = max(frame_no, len(frames))
                fail(lineno, f"{key!r} outside a begin/end block")
            if key == "comment":
                block["comment"].append(line.strip()[len("comment"):].strip())
            elif key == "lattice":
                if len(parts) != 4:
                    fail(lineno, f"expected 3 numbers after 'lattice', got {len(parts) - 1}")
                block["lattice"].append(floats(parts[1:], lineno, "lattice"))
            elif key == "atom":
                if len(parts) != 10:
                    fail(lineno, "expected 'atom x y z element charge energy fx fy fz' "
                                 f"(10 fields), got {len(parts)} fields")
                if parts[4] not in atomic_numbers:
                    fail(lineno, f"unknown element symbol {parts[4]!r}")
                vals = floats(parts[1:4] + parts[7:10], lineno, "atom")
                block["symbols"].append(parts[4])
                block["pos"].append(vals[:3])
                block["forces"].append(vals[3:])
            elif key == "energy":
                if len(parts) != 2:
                    fail(lineno, "expected 'energy E'")
                block["energy"] = floats(parts[1:], lineno, "energy")[0]
            elif key == "charge":
                if len(parts) != 2:
                    fail(lineno, "expected 'charge Q'")
                floats(parts[1:], lineno, "charge")
            elif key == "end":
                frames.append(_n2p2_frame(block, path, frame_no, lineno, length, energy_unit))
                block = None
            else:
                fail(lineno, f"unknown keyword {key!r}")
    if block is not None:
        raise FrameError(str(path), frame_no,
                         f"file ends at line {lineno} inside the frame begun at line "
                         f"{block['start']} (no 'end'; truncated file?)")
    return frames


def _n2p2_frame(block, path, frame_no, lineno, length, energy_unit) -> Atoms:
    where = f"frame ending at line {lineno}"
    if not block["symbols"]:
        raise FrameError(str(path), frame_no, f"{where} has no 'atom' lines")
    if block["energy"] is None:
        raise FrameError(str(path), frame_no, f"{where} has no 'energy' line")
    nlat = len(block["lattice"])
    if nlat not in (0, 3):
        raise FrameError(str(path), frame_no, f"{where} has {nlat} 'lattice' lines (need 0 or 3)")
    info = {}
    for text in block["comment"]:
        info.update(_parse_comment(text))
    stress = info.pop("stress", None)
    if stress is not None:
        try:
            stress = np.asarray(stress, dtype=float).reshape(6) * (energy_unit / length**3)
        except (TypeError, ValueError):
            raise FrameError(str(path), frame_no, f"{where}: comment 'stress' is not 6 numbers")
    for key in _ENERGY_INFO_KEYS:
        if isinstance(info.get(key), numbers.Real) and not isinstance(info[key], bool):
            info[key] = float(info[key]) * energy_unit
    if nlat == 3:
        atoms = Atoms(block["symbols"], positions=np.array(block["pos"]) * length,
                      cell=np.array(block["lattice"]) * length, pbc=True)
    else:
        atoms = Atoms(block["symbols"], positions=np.array(block["pos"]) * length, pbc=False)
    attach_labels(atoms, block["energy"] * energy_unit,
                  np.array(block["forces"]) * (energy_unit / length), stress)
    atoms.info.update(info)
    return mark_source(atoms, path, frame_no)


def write_n2p2(path: str | os.PathLike, frames: Iterable[Atoms], units: str = "metal") -> None:
    """Write frames to an n2p2 ``input.data`` file.

    Lattice rows are the cell vectors (omitted for a frame not periodic in any direction;
    n2p2 knows no partial periodicity, so a frame periodic in some directions is written
    periodic in all),
    numbers with 17 significant digits (exact round trip), atomic charge and atomic energy
    columns 0.0, total charge 0.0. The ``comment`` line carries the scalar ``info`` tags and
    the stress (``stress=[xx,yy,zz,yz,xz,xy]``) as ``key=value`` (JSON values), which
    :func:`read_n2p2` restores. ``units``: "metal" (eV, Å), "atomic" (Hartree, Bohr) or "lj".
    The file is written under a temporary name and renamed when complete.
    """
    length, energy_unit = _unit_factors(units)
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "w") as fd:
            for n, atoms in enumerate(frames):
                fd.write(_n2p2_block(atoms, n, path, length, energy_unit))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _n2p2_block(atoms: Atoms, n: int, path, length: float, energy_unit: float) -> str:
    """One ``begin`` … ``end`` block (file units: ``length`` Å, ``energy_unit`` eV)."""
    fmt = "{:24.16E}"
    lab = labels(atoms)
    if "energy" not in lab or "forces" not in lab:
        raise FrameError(str(atoms.info.get("source", path)), atoms.info.get("source_index", n),
                         "cannot write to n2p2: the frame has no energy or no forces")
    lines = ["begin"]
    tokens = []
    for key, value in atoms.info.items():
        if key in _RESULT_KEYS or not re.fullmatch(r"[A-Za-z_][\w.\-]*", str(key)):
            continue
        if key in _ENERGY_INFO_KEYS and isinstance(_py(value), numbers.Real):
            value = float(value) / energy_unit
        text = _n2p2_encode(value)
        if text is not None:
            tokens.append(f"{key}={text}")
    if "stress" in lab:
        s = np.asarray(lab["stress"], dtype=float)
        if s.shape == (3, 3):
            s = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        tokens.append("stress=" + _n2p2_encode(s.reshape(6) / (energy_unit / length**3)))
    if tokens:
        lines.append("comment " + " ".join(tokens))
    if atoms.pbc.any():
        for vec in atoms.cell.array / length:
            lines.append("lattice " + " ".join(fmt.format(x) for x in vec))
    forces = np.asarray(lab["forces"], dtype=float).reshape(-1, 3) / (energy_unit / length)
    zero = fmt.format(0.0)
    for sym, pos, f in zip(atoms.get_chemical_symbols(), atoms.positions / length, forces):
        lines.append("atom " + " ".join(fmt.format(x) for x in pos)
                     + f" {sym:2s} {zero} {zero} " + " ".join(fmt.format(x) for x in f))
    lines.append("energy " + fmt.format(float(lab["energy"]) / energy_unit))
    lines.append("charge " + fmt.format(0.0))
    lines.append("end")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------
# writing


def _ase_str_roundtrips(value: str) -> bool:
    from ase.io.extxyz import key_val_dict_to_str, key_val_str_to_dict

    try:
        back = key_val_str_to_dict(key_val_dict_to_str({"k": value, "z": 1}))
    except Exception:  # noqa: BLE001
        return False
    return isinstance(back.get("k"), str) and back["k"] == value and back.get("z") == 1


def _extxyz_copy(atoms: Atoms) -> Atoms:
    lab = labels(atoms)
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    for key, value in atoms.arrays.items():
        if key not in ("numbers", "positions") and key not in _RESULT_KEYS:
            out.arrays[key] = value.copy()
    if "energy" in lab and "forces" in lab:
        attach_labels(out, float(lab["energy"]), lab["forces"], lab.get("stress"))
    elif lab:
        from ase.calculators.singlepoint import SinglePointCalculator
        out.calc = SinglePointCalculator(out, **lab)
    for key, value in atoms.info.items():
        if key in _RESULT_KEYS:
            continue
        value = _py(value)
        if isinstance(value, str) and (value.startswith(_STR_MARK)
                                       or not _ase_str_roundtrips(value)):
            value = _STR_MARK + quote(value, safe="")
        out.info[key] = value
    return out


def write_frames(path: str | os.PathLike, frames: Iterable[Atoms], format: str | None = None) -> None:
    """Write frames (eV, Å) as extxyz, n2p2, DeePMD npy folders or an ASE database (format
    guessed from the name when None; a DeePMD target folder needs ``format="deepmd-npy"``).

    extxyz keeps energy (force-consistent), forces, stress and every ``info`` entry;
    every float is written with 17 significant digits, so that a frame read back equals the
    frame written (ASE's own writer rounds positions and forces to 8 decimals, which
    would shift energies of labelled frames by ~1e-6 eV). String tags that ASE's
    key=value parser would change (empty, numeric- or boolean-looking) are written
    percent-encoded behind a ``_str:`` prefix and restored by :func:`read_frames`. An extxyz
    file is written whole or not at all (through ``<name>.part``); no frames make an empty file.
    """
    path = Path(path)
    fmt = guess_format(path) if format is None else _check_format(format, _WRITE_FORMATS)
    if fmt not in _WRITE_FORMATS:
        raise ValueError(f"{path}: cannot write format {fmt!r}; expected one of "
                         + ", ".join(_WRITE_FORMATS))
    frames = list(frames)
    if fmt == "n2p2":
        write_n2p2(path, frames)
        return
    if fmt == "deepmd-npy":
        from .deepmd import write_deepmd

        write_deepmd(path, frames)
        return
    if fmt == "ase-db":
        from .asedb import write_asedb

        write_asedb(path, frames)
        return
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "w") as fh:
            for atoms in frames:
                fh.write(_extxyz_block(_extxyz_copy(atoms)))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def append_extxyz(path: str | os.PathLike, atoms: Atoms) -> None:
    """Append one frame to an extxyz file with the tag encoding of :func:`write_frames`.

    For streaming long trajectories; the caller makes the file final (e.g. by renaming).
    """
    with open(path, "a") as fh:
        fh.write(_extxyz_block(_extxyz_copy(atoms)))


def _extxyz_block(atoms: Atoms) -> str:
    """One extxyz frame at full float precision, readable by ASE's extxyz reader.

    The comment line is built with ASE's own ``key_val_dict_to_str`` (Lattice, Properties,
    pbc, labels, info); per-atom columns are species, positions, any other per-atom
    arrays (momenta, ...), then forces.
    """
    from ase.io.extxyz import key_val_dict_to_str

    n = len(atoms)
    lab = labels(atoms)
    columns = [("species", "S", 1, np.array(atoms.get_chemical_symbols(), dtype=object)[:, None]),
               ("pos", "R", 3, atoms.positions)]
    for key, value in atoms.arrays.items():
        if key in ("numbers", "positions"):
            continue
        value = np.asarray(value)
        if value.shape[0] != n or value.ndim > 2 or value.dtype.kind not in "fiub":
            continue
        kind = "R" if value.dtype.kind == "f" else ("L" if value.dtype.kind == "b" else "I")
        value = value.reshape(n, -1)
        columns.append((key, kind, value.shape[1], value))
    if "forces" in lab:
        columns.append(("forces", "R", 3, lab["forces"].reshape(n, 3)))
    header = {"Lattice": atoms.cell.array.reshape(9),
              "Properties": ":".join(f"{name}:{kind}:{width}" for name, kind, width, _ in columns)}
    if "energy" in lab:
        header["energy"] = float(lab["energy"])
        header["free_energy"] = float(lab["energy"])
    if "stress" in lab:
        st = np.asarray(lab["stress"], dtype=float)
        st = st if st.shape == (3, 3) else np.array([[st[0], st[5], st[4]], [st[5], st[1], st[3]],
                                                     [st[4], st[3], st[2]]])
        header["stress"] = st.reshape(9)
    header.update({k: v for k, v in atoms.info.items() if k not in header})
    header["pbc"] = np.asarray(atoms.pbc, dtype=bool)

    def fmt(kind, x):
        if kind == "R":
            return repr(float(x))
        if kind == "L":
            return "T" if x else "F"
        return str(x) if kind == "S" else str(int(x))

    lines = [str(n), key_val_dict_to_str(header)]
    for i in range(n):
        lines.append(" ".join(fmt(kind, x) for _, kind, _, col in columns for x in col[i]))
    return "\n".join(lines) + "\n"
