"""Local order of single frames (``ase.Atoms``) and of trajectories.

* Common neighbour analysis (OVITO): adaptive, or conventional with a fixed cutoff (the
  first minimum of g(r), Å) → a class per atom among ``CNA_CLASSES``; fractions; a
  fractions-vs-time table over a trajectory. "crystalline" = fcc + hcp + bcc (the thesis's
  40 % criterion counts these).
* Inherent structures: energy minimisation of a frame in LAMMPS at fixed cell
  (:class:`Minimizer`, :func:`inherent_structure`), to strip thermal noise before CNA.
* Averaged Steinhardt parameters q̄_l (Lechner & Dellago 2008) with pyscal3
  (:func:`steinhardt`) and the OVITO cross-check (:func:`steinhardt_ovito`); histograms.
* Solid-like atoms (ten Wolde–Frenkel bond criterion on q6, pyscal3 ``find_solids``) and
  the largest solid cluster and its CNA composition (the nucleation pathway, :func:`cluster_cna`);
  a table of these vs time.

Lengths are Å (or σ in LJ units), times as in the trajectory: ``time = timestep × dt``
when ``dt`` is given, else ``atoms.info["time"]`` if present, else the timestep itself.
The analysis functions never modify the ``Atoms`` they are given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.data import atomic_numbers

from ..errors import EngineError, FrameError, MeltpotError

#: CNA class names in the order of OVITO's structure ids (0 … 4); "ico" = icosahedral.
CNA_CLASSES = ("other", "fcc", "hcp", "bcc", "ico")
#: classes counted as crystalline (thesis: time to 40 % crystalline atoms by CNA)
CRYSTALLINE = ("fcc", "hcp", "bcc")
#: q4, q6 of perfect crystals with the first shell (12, 12, 8+6 neighbours); for even l the
#: neighbour-averaged values of a perfect crystal are the same.
CRYSTAL_Q = {"fcc": {4: 0.19094, 6: 0.57452}, "hcp": {4: 0.09722, 6: 0.48476},
             "bcc": {4: 0.03637, 6: 0.51069}}


# --------------------------------------------------------------------------- helpers
def _check_frame(atoms: Atoms, what: str) -> None:
    if len(atoms) == 0:
        raise MeltpotError(f"{what}: the frame has no atoms")
    if abs(atoms.cell.volume) < 1e-12:
        raise MeltpotError(f"{what}: the frame has no cell (volume 0)")


def _bare(atoms: Atoms) -> Atoms:
    """Positions, numbers, cell and pbc only: pyscal3 writes its results into the copy."""
    return Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)


def to_ovito(atoms: Atoms):
    """OVITO ``DataCollection`` with the cell and positions of ``atoms`` (no per-atom loop,
    unlike ``ovito.io.ase.ase_to_ovito``; particle types are not needed here)."""
    from ovito.data import DataCollection

    dc = DataCollection()
    origin = np.asarray(atoms.info.get("cell_origin", np.zeros(3)), dtype=float)
    dc.create_cell(matrix=np.column_stack([np.asarray(atoms.cell).T, origin]),
                   pbc=tuple(bool(p) for p in atoms.pbc))
    particles = dc.create_particles(count=len(atoms))
    particles.create_property("Position", data=np.ascontiguousarray(atoms.positions, dtype=float))
    return dc


def frame_time(atoms: Atoms, index: int, dt: float | None = None) -> tuple[int, float]:
    """``(timestep, time)`` of a frame: timestep from ``info["timestep"]`` (or ``"step"``,
    else the frame index); time = timestep × dt, else ``info["time"]``, else the timestep."""
    step = int(atoms.info.get("timestep", atoms.info.get("step", index)))
    if dt is not None:
        return step, step * float(dt)
    return step, float(atoms.info.get("time", step))


# --------------------------------------------------------------------------- CNA
def cna(atoms: Atoms, cutoff: float | None = None) -> np.ndarray:
    """Per-atom CNA class id (index into ``CNA_CLASSES``) with OVITO.

    ``cutoff`` None: adaptive CNA; a number: conventional CNA with that fixed cutoff (Å),
    normally the first minimum of g(r) (:func:`rdf_first_minimum`).
    """
    from ovito.modifiers import CommonNeighborAnalysisModifier as CNA

    _check_frame(atoms, "CNA")
    if cutoff is None:
        mod = CNA(mode=CNA.Mode.AdaptiveCutoff)
    else:
        if not cutoff > 0:
            raise MeltpotError(f"CNA cutoff must be > 0, got {cutoff}")
        mod = CNA(mode=CNA.Mode.FixedCutoff, cutoff=float(cutoff))
    dc = to_ovito(atoms)
    dc.apply(mod)
    return np.asarray(dc.particles["Structure Type"]).astype(np.int8)


def class_counts(classes: np.ndarray) -> dict[str, int]:
    """Number of atoms per CNA class."""
    counts = np.bincount(np.asarray(classes, dtype=np.int64), minlength=len(CNA_CLASSES))
    return {name: int(c) for name, c in zip(CNA_CLASSES, counts[: len(CNA_CLASSES)])}


def cna_fractions(classes: np.ndarray) -> dict[str, float]:
    """Fraction of atoms per CNA class plus ``crystalline`` (fcc + hcp + bcc)."""
    n = max(len(classes), 1)
    out = {name: c / n for name, c in class_counts(classes).items()}
    out["crystalline"] = sum(out[c] for c in CRYSTALLINE)
    return out


def cluster_cna(classes: np.ndarray, mask: np.ndarray, prefix: str = "cluster_") -> dict[str, float]:
    """CNA composition of a group of atoms (e.g. the largest solid cluster): fraction of the
    atoms in ``mask`` per class of ``CNA_CLASSES`` (keys ``prefix + class``, summing to 1);
    NaN for every class when the group is empty."""
    classes = np.asarray(classes)
    mask = np.asarray(mask, dtype=bool)
    if classes.shape != mask.shape:
        raise MeltpotError(f"CNA classes ({classes.shape}) and atom mask ({mask.shape}) differ in length")
    n = int(mask.sum())
    counts = class_counts(classes[mask])
    return {prefix + name: (counts[name] / n if n else float("nan")) for name in CNA_CLASSES}


def rdf_first_minimum(frames: Atoms | Iterable[Atoms], r_max: float | None = None, bins: int = 200) -> float:
    """First minimum of the total g(r) (Å), the conventional CNA cutoff: g(r) from
    :func:`meltpot.analysis.structure.compute_rdf` (OVITO), averaged over ``frames`` (one
    frame or several), minimum by :func:`~meltpot.analysis.structure.first_minimum`.
    ``r_max`` defaults to 2 (V/N)^(1/3) of the first frame (past the first minimum of a dense
    liquid). MeltpotError when g(r) shows no minimum (e.g. a gas)."""
    from .structure import compute_rdf, first_minimum

    frames = [frames] if isinstance(frames, Atoms) else list(frames)
    if not frames:
        raise MeltpotError("g(r): no frames given")
    _check_frame(frames[0], "g(r)")
    if r_max is None:
        r_max = 2.0 * (abs(frames[0].cell.volume) / len(frames[0])) ** (1.0 / 3.0)
    rdf = compute_rdf(frames, rmax=float(r_max), bins=int(bins))
    r_min = first_minimum(rdf.r, rdf.total)
    if not np.isfinite(r_min):
        raise MeltpotError(f"g(r) up to {r_max:.3g} has no first minimum; give the cutoff explicitly")
    return float(r_min)



def parse_cutoff(value: str | None, allowed: tuple[str, ...]) -> float | str | None:
    """A neighbour cutoff given as text: a positive length, or one of the keywords ``allowed``
    (e.g. "adaptive", "auto"); None stays None."""
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


def first_frame_cutoff(path, start: int = 0, types=None) -> float:
    """The first minimum of g(r) of frame ``start`` of a trajectory (:func:`rdf_first_minimum`)."""
    from .trajectory import iter_frames

    first = next(iter(iter_frames(path, start=start, stop=start + 1, types=types)), None)
    if first is None:
        raise MeltpotError(f"{path}: no frame at index {start}")
    return rdf_first_minimum(first)

# --------------------------------------------------------------------------- Steinhardt
def _pyscal_neighbors(atoms: Atoms, cutoff: float | str) -> Atoms:
    import pyscal3

    a = _bare(atoms)
    if isinstance(cutoff, str):
        if cutoff not in ("adaptive", "sann"):
            raise MeltpotError(f"neighbour cutoff must be a length, 'adaptive' or 'sann', got {cutoff!r}")
    elif not cutoff > 0:
        raise MeltpotError(f"neighbour cutoff must be > 0, got {cutoff}")
    pyscal3.find_neighbors(a, method="cutoff", cutoff=cutoff, store_rows=False)
    return a


def steinhardt(atoms: Atoms, l: Sequence[int] = (4, 6), cutoff: float | str = "adaptive",
               averaged: bool = True) -> dict[int, np.ndarray]:
    """Per-atom Steinhardt q_l (``averaged=False``) or Lechner–Dellago q̄_l (default),
    computed with pyscal3: ``{l: array (N,)}``.

    Neighbours: all atoms within ``cutoff`` (Å; the first minimum of g(r)), or pyscal3's
    ``"adaptive"`` / ``"sann"`` neighbour sets. q̄_l averages q_lm over the atom and its
    neighbours before forming the invariant (second shell included).
    """
    import pyscal3

    _check_frame(atoms, "Steinhardt")
    ls = [int(x) for x in l]
    a = _pyscal_neighbors(atoms, cutoff)
    vals = pyscal3.steinhardt_parameter(a, l=ls, averaged=averaged)
    return {x: np.asarray(v, dtype=float) for x, v in zip(ls, vals)}


def steinhardt_ovito(atoms: Atoms, l: Sequence[int] = (4, 6), cutoff: float | None = None,
                     num_neighbors: int = 12, averaged: bool = True) -> dict[int, np.ndarray]:
    """The same as :func:`steinhardt` with OVITO's ``SteinhardtParametersModifier``
    (a cross-check): neighbours within ``cutoff`` (Å), or the ``num_neighbors`` nearest."""
    from ovito.modifiers import SteinhardtParametersModifier as SPM

    _check_frame(atoms, "Steinhardt (OVITO)")
    ls = [int(x) for x in l]
    if min(ls) < 2:
        raise MeltpotError(f"OVITO computes q_l for l >= 2 only, got l = {ls}")
    if cutoff is None:
        mod = SPM(neighbor_mode=SPM.NeighborMode.NearestNeighbors, num_neighbors=int(num_neighbors))
    else:
        mod = SPM(neighbor_mode=SPM.NeighborMode.Cutoff, cutoff=float(cutoff))
    mod.max_l = max(ls)
    mod.compute_averaged = bool(averaged)
    dc = to_ovito(atoms)
    dc.apply(mod)
    prop = dc.particles["Smooth Steinhardt" if averaged else "Steinhardt"]
    arr = np.asarray(prop)
    names = list(prop.component_names)
    return {x: np.array(arr[:, names.index(f"q{x}")], dtype=float) for x in ls}


def histograms(values: Mapping[int, np.ndarray], bins: int = 100,
               value_range: tuple[float, float] = (0.0, 1.0)) -> pd.DataFrame:
    """Histogram per l of per-atom q_l: columns ``bin_lo``, ``bin_hi``, ``q<l>`` (counts)."""
    edges = np.linspace(value_range[0], value_range[1], int(bins) + 1)
    out = {"bin_lo": edges[:-1], "bin_hi": edges[1:]}
    for x, v in values.items():
        out[f"q{x}"] = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)[0]
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- solids
@dataclass
class SolidResult:
    """Solid-like atoms of one frame.

    ``solid`` (N,) bool; ``cluster`` (N,) cluster id of solid atoms (-1 for liquid ones);
    ``largest`` (N,) bool mask of the largest cluster; ``sizes`` cluster sizes, descending.
    """

    solid: np.ndarray
    cluster: np.ndarray
    largest: np.ndarray
    sizes: np.ndarray

    @property
    def n_solid(self) -> int:
        return int(self.solid.sum())

    @property
    def largest_size(self) -> int:
        return int(self.sizes[0]) if len(self.sizes) else 0


def find_solids(atoms: Atoms, cutoff: float | str = "adaptive", bonds: int | float = 6,
                threshold: float = 0.5, avgthreshold: float = 0.6) -> SolidResult:
    """Solid-like atoms and their clusters with pyscal3 ``find_solids``.

    A bond i–j is solid when the normalised q6 vector product s_ij > ``threshold``; an atom
    is solid with more than ``bonds`` solid bonds (an int; a float in [0, 1] is a fraction of
    its neighbours) and mean s_ij > ``avgthreshold``. Clusters: solid atoms that are
    neighbours (same ``cutoff``: Å, or ``"adaptive"``).
    """
    import pyscal3

    _check_frame(atoms, "find_solids")
    a = _pyscal_neighbors(atoms, cutoff)
    pyscal3.find_solids(a, bonds=bonds, threshold=threshold, avgthreshold=avgthreshold, cluster=True)
    solid = np.asarray(a.arrays["pyscal_solid"]) > 0
    cluster = np.asarray(a.arrays["pyscal_cluster"], dtype=np.int64)
    ids, counts = np.unique(cluster[cluster >= 0], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    largest = cluster == ids[order[0]] if len(ids) else np.zeros(len(a), dtype=bool)
    return SolidResult(solid=solid, cluster=cluster, largest=largest, sizes=counts[order])


# --------------------------------------------------------------------------- inherent structures
def _pair_coeff_elements(pair_coeff: Sequence[str]) -> list[str] | None:
    """Elements named at the end of a ``* * file El1 El2 …`` pair_coeff line (eam/fs, eam/alloy,
    meam, snap style), or None."""
    for line in pair_coeff:
        tok = str(line).split()
        if len(tok) >= 4 and tok[:2] == ["*", "*"]:
            tail = []
            for t in reversed(tok[3:]):
                if t in atomic_numbers and t != "X":
                    tail.append(t)
                else:
                    break
            if tail:
                return list(reversed(tail))
    return None


def lammps_box(atoms: Atoms, n_types: int, units: str = "metal"):
    """Set-up commands of a LAMMPS box for the (any, triclinic) periodic cell of ``atoms``.

    Returns ``(prism, commands, positions)``: the ASE ``Prism`` (lower-triangular LAMMPS cell,
    lattice-reduced when strongly tilted; rotate back with ``prism.vector_to_ase``), the
    commands up to ``create_box`` and the positions in LAMMPS coordinates, wrapped.
    """
    from ase.calculators.lammps import Prism

    from ..reference.common import lammps_number as _f

    if not np.all(atoms.pbc):
        raise EngineError("LAMMPS minimisation needs a fully periodic cell (atoms.pbc all True)")
    if abs(atoms.cell.volume) < 1e-12:
        raise EngineError("LAMMPS minimisation needs a cell with non-zero volume")
    prism = Prism(np.array(atoms.cell), pbc=True, reduce_cell=True)
    c = prism.cell
    cmds = [f"units {units}", "atom_style atomic", "atom_modify map array sort 0 0", "boundary p p p",
            f"region meltpot_box prism 0 {_f(c[0, 0])} 0 {_f(c[1, 1])} 0 {_f(c[2, 2])} "
            f"{_f(c[1, 0])} {_f(c[2, 0])} {_f(c[2, 1])} units box",
            f"create_box {int(n_types)} meltpot_box"]
    return prism, cmds, prism.vector_to_lammps(atoms.positions, wrap=True)


class Minimizer:
    """Inherent structures: energy minimisation of frames in LAMMPS at fixed cell.

    ``pair_style``/``pair_coeff`` as for the LAMMPS reference engine (file tokens are
    looked up in the cwd, ``base_dir``, then the LAMMPS potentials folder); element ``i``
    of ``elements`` is atom type ``i + 1`` (default: the element names that end the
    ``* * file …`` pair_coeff line, else the sorted symbols of each frame). ``etol``
    (relative energy) and ``ftol`` (eV/Å) are LAMMPS ``minimize`` tolerances.
    Frames with only LAMMPS types (placeholder symbol X, ``arrays["type"]``) keep those types.
    ``pre_commands``: LAMMPS lines run after the box is created and before ``mass`` and
    ``pair_style`` (e.g. ``plugin load /path/meltpot.so`` for the meltpot ML pair style, as
    :attr:`meltpot.md.potential.Potential.pre_commands`); ``extra_commands`` follow ``pair_coeff``.
    Calling it on a frame returns a minimised copy (caller's orientation and cell) with
    ``info["inherent_energy"]`` (eV, total) and ``info["inherent_fnorm"]`` (eV/Å).
    """

    def __init__(self, pair_style: str = "eam/fs", pair_coeff: Sequence[str] | str = ("* * Al_mm.eam.fs Al",),
                 elements: Sequence[str] | None = None, units: str = "metal",
                 masses: Mapping[str, float] | None = None, extra_commands: Sequence[str] = (),
                 min_style: str = "cg", etol: float = 0.0, ftol: float = 1e-6,
                 maxiter: int = 10000, maxeval: int = 100000, base_dir: str | None = None,
                 pre_commands: Sequence[str] = ()):
        from ..reference.common import resolve_tokens as _resolve_tokens

        if isinstance(pair_coeff, str):
            pair_coeff = [pair_coeff]
        style = str(pair_style).split()
        if not style:
            raise EngineError("pair_style is empty")
        self.pair_style = " ".join(style[:1] + _resolve_tokens(style[1:], base_dir, f"pair_style {pair_style!r}"))
        self.pair_coeff = [" ".join(t[:2] + _resolve_tokens(t[2:], base_dir, f"pair_coeff {line!r}"))
                           for line in pair_coeff for t in [str(line).split()]]
        self.elements = list(elements) if elements is not None else _pair_coeff_elements(pair_coeff)
        self.units = units
        self.masses = dict(masses or {})
        self.pre_commands = [pre_commands] if isinstance(pre_commands, str) else [str(c) for c in pre_commands]
        self.extra_commands = [str(c) for c in extra_commands]
        self.min_style = min_style
        self.etol, self.ftol, self.maxiter, self.maxeval = float(etol), float(ftol), int(maxiter), int(maxeval)

    def __call__(self, atoms: Atoms) -> Atoms:
        from ..lammps_env import new_instance
        from ..reference.common import check_symbols, element_masses, lammps_number as _f

        if len(atoms) and np.all(atoms.numbers == 0) and "type" in atoms.arrays:
            # LAMMPS trajectory without an element mapping: keep its types
            types = np.asarray(atoms.arrays["type"], dtype=int)
            elements = self.elements
            n_types = max(int(types.max()), len(elements or ()))
            # masses do not change a cg/sd minimum; 1.0 where the elements are unknown
            masses = np.ones(n_types)
            if elements is not None:
                masses[: len(elements)] = element_masses(elements, self.units, self.masses)
        else:
            elements = self.elements or sorted(set(atoms.get_chemical_symbols()))
            types = check_symbols(atoms, elements) + 1
            n_types = len(elements)
            masses = element_masses(elements, self.units, self.masses)
        prism, cmds, pos = lammps_box(atoms, n_types, self.units)
        cmds += self.pre_commands
        cmds += [f"mass {i + 1} {_f(m)}" for i, m in enumerate(masses)]
        cmds += [f"pair_style {self.pair_style}"] + [f"pair_coeff {c}" for c in self.pair_coeff]
        cmds += self.extra_commands
        n = len(atoms)
        lmp = new_instance()
        cmd = "(setup)"
        try:
            for cmd in cmds:
                lmp.command(cmd)
            lmp.create_atoms(n, np.arange(1, n + 1), types, np.ascontiguousarray(pos).ravel())
            if lmp.get_natoms() != n:
                raise EngineError(f"LAMMPS created {lmp.get_natoms()} of {n} atoms")
            for cmd in ["thermo_style custom step pe fnorm", "thermo_modify norm no", f"min_style {self.min_style}",
                        f"minimize {_f(self.etol)} {_f(self.ftol)} {self.maxiter} {self.maxeval}"]:
                lmp.command(cmd)
            pe = float(lmp.get_thermo("pe"))
            fnorm = float(lmp.get_thermo("fnorm"))
            ids = np.asarray(lmp.numpy.extract_atom("id"))[:n] - 1
            x = np.empty((n, 3))
            x[ids] = np.asarray(lmp.numpy.extract_atom("x"))[:n]
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001 - LAMMPS raises plain Exceptions
            raise EngineError(f"LAMMPS minimisation failed at `{cmd}`: {str(exc).strip()}") from None
        finally:
            lmp.close()
        if not math.isfinite(pe):
            raise EngineError(f"LAMMPS minimisation gave a non-finite energy ({pe})")
        out = atoms.copy()
        out.calc = None
        out.positions = prism.vector_to_ase(x, wrap=True)
        out.info.update(inherent_energy=pe, inherent_fnorm=fnorm)
        return out


def inherent_structure(atoms: Atoms, **kwargs) -> Atoms:
    """Minimised copy of one frame; keyword arguments as for :class:`Minimizer`."""
    return Minimizer(**kwargs)(atoms)


# --------------------------------------------------------------------------- trajectories
def _frames_with_progress(frames: Iterable[Atoms], progress: bool, total: int | None, desc: str):
    if not progress:
        return frames
    from tqdm import tqdm

    return tqdm(frames, total=total, desc=desc, unit="frame")


def tabulate(frames: Iterable[Atoms], row: Callable[[Atoms], dict], dt: float | None = None,
             transform: Callable[[Atoms], Atoms] | None = None, progress: bool = False,
             total: int | None = None, source: str = "frames", desc: str = "analysis") -> pd.DataFrame:
    """One row per frame: ``frame``, ``timestep``, ``time``, ``n_atoms``, ``volume`` (of the
    cell, Å³ or σ³; NaN without a cell) and ``row(atoms)``.

    Frames are processed one at a time (a generator is never held in memory); ``transform``
    (e.g. a :class:`Minimizer`) is applied first. A failing frame raises ``FrameError``
    naming ``source`` and the frame's index.
    """
    rows = []
    for i, atoms in enumerate(_frames_with_progress(frames, progress, total, desc)):
        i = int(atoms.info.get("frame", i))
        source = str(atoms.info.get("source", source))
        try:
            step, time = frame_time(atoms, i, dt)
            a = transform(atoms) if transform is not None else atoms
            volume = abs(float(a.cell.volume)) or float("nan")
            rows.append({"frame": i, "timestep": step, "time": time, "n_atoms": len(a), "volume": volume} | row(a))
        except FrameError:
            raise
        except MeltpotError as exc:
            raise FrameError(source, i, str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - pyscal3/OVITO raise RuntimeError, ValueError
            raise FrameError(source, i, f"{type(exc).__name__}: {exc}") from exc
    return pd.DataFrame(rows)


def cna_table(frames: Iterable[Atoms], cutoff: float | None = None, **kwargs) -> pd.DataFrame:
    """CNA fractions vs time: columns ``other fcc hcp bcc ico crystalline`` (fractions of
    atoms) per frame; ``kwargs`` as for :func:`tabulate`."""
    kwargs.setdefault("desc", "CNA")
    return tabulate(frames, lambda a: cna_fractions(cna(a, cutoff)), **kwargs)


def cluster_table(frames: Iterable[Atoms], cutoff: float | str = "adaptive", bonds: int | float = 6,
                  threshold: float = 0.5, avgthreshold: float = 0.6, pathway: bool = True,
                  **kwargs) -> pd.DataFrame:
    """Solid-like atoms vs time: ``n_solid``, ``solid_fraction``, ``largest_cluster`` (atoms),
    ``second_cluster`` and ``n_clusters`` per frame (see :func:`find_solids`).

    ``pathway``: also the CNA composition of the largest cluster, ``cluster_other``,
    ``cluster_fcc``, ``cluster_hcp``, ``cluster_bcc``, ``cluster_ico`` (fractions of its atoms;
    adaptive CNA of the whole frame, so a small cluster's surface atoms, whose neighbours are
    liquid, count as "other"; NaN without a cluster): :func:`cluster_cna`."""
    def row(a: Atoms) -> dict:
        r = find_solids(a, cutoff, bonds, threshold, avgthreshold)
        out = {"n_solid": r.n_solid, "solid_fraction": r.n_solid / len(a), "largest_cluster": r.largest_size,
               "second_cluster": int(r.sizes[1]) if len(r.sizes) > 1 else 0, "n_clusters": len(r.sizes)}
        if pathway:
            out.update(cluster_cna(cna(a) if r.largest.any() else np.zeros(len(a), np.int8), r.largest))
        return out

    kwargs.setdefault("desc", "clusters")
    return tabulate(frames, row, **kwargs)


def steinhardt_table(frames: Iterable[Atoms], l: Sequence[int] = (4, 6), cutoff: float | str = "adaptive",
                     averaged: bool = True, engine: str = "pyscal3", bins: int = 100,
                     num_neighbors: int = 12, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Steinhardt parameters vs time: ``(table, hist)``.

    ``table``: per frame ``q<l>_mean``, ``q<l>_std``; ``hist``: long format, per frame the
    :func:`histograms` rows (``frame``, ``time``, ``bin_lo``, ``bin_hi``, ``q<l>`` counts).
    ``engine`` "pyscal3" (cutoff length or "adaptive") or "ovito" (cutoff length, or None
    for ``num_neighbors`` nearest).
    """
    if engine not in ("pyscal3", "ovito"):
        raise MeltpotError(f"Steinhardt engine must be 'pyscal3' or 'ovito', got {engine!r}")
    hists = []

    def row(a: Atoms) -> dict:
        if engine == "pyscal3":
            q = steinhardt(a, l, cutoff, averaged)
        else:
            q = steinhardt_ovito(a, l, None if isinstance(cutoff, str) else cutoff, num_neighbors, averaged)
        hists.append(histograms(q, bins))
        return {k: v for x, arr in q.items() for k, v in ((f"q{x}_mean", float(arr.mean())),
                                                          (f"q{x}_std", float(arr.std())))}

    kwargs.setdefault("desc", "Steinhardt")
    table = tabulate(frames, row, **kwargs)
    if not hists:
        return table, pd.DataFrame()
    hist = pd.concat([h.assign(frame=f, time=t) for h, f, t in zip(hists, table["frame"], table["time"])],
                     ignore_index=True)
    return table, hist[["frame", "time"] + [c for c in hist.columns if c not in ("frame", "time")]]


# --------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_cna_table(table: pd.DataFrame, path: str | Path, time_label: str = "time") -> None:
    """CNA fractions vs time (PNG)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name in CNA_CLASSES[1:] + ("crystalline",):
        if name in table:
            ax.plot(table["time"], table[name], label=name, lw=1.5 if name == "crystalline" else 1.0,
                    ls="--" if name == "crystalline" else "-")
    ax.set_xlabel(time_label)
    ax.set_ylabel("fraction of atoms")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_cluster_table(table: pd.DataFrame, path: str | Path, time_label: str = "time") -> None:
    """Number of solid-like atoms and largest-cluster size vs time (PNG, log y)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(table["time"], np.maximum(table["n_solid"], 0.8), label="solid-like atoms")
    ax.plot(table["time"], np.maximum(table["largest_cluster"], 0.8), label="largest cluster")
    ax.set_yscale("log")
    ax.set_xlabel(time_label)
    ax.set_ylabel("atoms")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_steinhardt(table: pd.DataFrame, hist: pd.DataFrame, path: str | Path, time_label: str = "time",
                    n_curves: int = 4) -> None:
    """Histograms of each q_l for up to ``n_curves`` frames (first … last) with the
    perfect-crystal values marked, and the mean q_l vs time (PNG)."""
    plt = _plt()
    ls = [int(c[1:]) for c in hist.columns if c.startswith("q") and c[1:].isdigit()]
    fig, axes = plt.subplots(1, len(ls) + 1, figsize=(4.2 * (len(ls) + 1), 3.8))
    frames = table["frame"].to_numpy()
    pick = frames[np.unique(np.linspace(0, len(frames) - 1, min(n_curves, len(frames))).round().astype(int))]
    for ax, x in zip(axes, ls):
        for f in pick:
            h = hist[hist["frame"] == f]
            centre = 0.5 * (h["bin_lo"] + h["bin_hi"])
            ax.plot(centre, h[f"q{x}"] / max(h[f"q{x}"].sum(), 1), lw=1,
                    label=f"{time_label.split(' ')[0]} {table.loc[table['frame'] == f, 'time'].iloc[0]:g}")
        for name, q in CRYSTAL_Q.items():
            if x in q:
                ax.axvline(q[x], color="grey", ls=":", lw=0.8)
                ax.text(q[x], ax.get_ylim()[1] * 0.95, name, fontsize=7, rotation=90, va="top")
        ax.set_xlabel(f"q{x}")
        ax.set_ylabel("fraction of atoms per bin")
    axes[0].legend(fontsize=7)
    for x in ls:
        axes[-1].plot(table["time"], table[f"q{x}_mean"], label=f"mean q{x}")
    axes[-1].set_xlabel(time_label)
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
