"""MD protocols rendered as complete LAMMPS input scripts.

Each ``render_<protocol>`` function takes plain parameters (:class:`Settings` shared by all
protocols plus a few of its own) and returns a :class:`Script`: the input text, the
:class:`Stage` list (one thermo block of ``log.lammps`` per stage, in order) and the files a
successful run leaves. The scripts read the starting structure from ``settings.data_file``
(LAMMPS data file, written by :mod:`meltpot.md.structure`) and insert the
:class:`~meltpot.md.potential.Potential` commands after it.

Units are LAMMPS's: metal (K, ps, Å; pressures given here in GPa and written in bar) or lj.
Thermostat and barostat are Nosé–Hoover (``fix nvt``/``npt``/``nph``). Every stage writes
the thermo columns ``Step Time Temp PotEng KinEng TotEng Enthalpy Press Pxx Pyy Pzz Pxy Pxz
Pyz Volume Density Lx Ly Lz`` (extensive totals, ``thermo_modify norm no``); production
stages also write

* ``dump_<tag>.lammpstrj``: ``dump custom`` with ``id type element xu yu zu`` (unwrapped, for
  MSD; ``vx vy vz`` with ``dump_velocities``), sorted, with time and units in the header;
* ``pressure_<tag>.dat``: ``fix ave/time`` rows ``Step T V pxx pyy pzz pxy pxz pyz`` every
  ``pressure_every`` steps (Green–Kubo viscosity; ``meltpot analyze viscosity`` reads it).

Protocols: :func:`render_nvt`, :func:`render_npt`, :func:`render_nph`,
:func:`render_melt_quench`, :func:`render_ramp`, :func:`render_two_phase`,
:func:`render_nucleation`. Inherent structures (``minimize``) are not a script: see
:mod:`meltpot.md.minimize`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ..errors import ConfigError
from ..reference.base import RelaxationTimes
from ..reference.common import lammps_number as _f, lammps_seed as _lmp_seed
from .potential import Potential

#: bar per GPa (LAMMPS metal pressures are bar)
BAR_PER_GPA = 1.0e4
THERMO_COLUMNS = ("step time temp pe ke etotal enthalpy press pxx pyy pzz pxy pxz pyz "
                  "vol density lx ly lz")
PROTOCOLS = ("nvt", "npt", "nph", "melt_quench", "ramp", "two_phase", "nucleation")


@dataclass
class Settings(RelaxationTimes):
    """Parameters shared by every protocol.

    timestep: ps (metal) or τ (lj). tdamp/pdamp: thermostat/barostat times (same unit;
    None = 100 / 1000 timesteps). P: GPa (metal) or reduced (lj). barostat: iso, aniso or
    tri. seed: velocity seed (1 … 9e8; others are folded into that range). thermo_every,
    dump_every, pressure_every: steps (0 = no dump / no pressure file). melt_temperature (K)
    and melt_steps/cool_steps: liquids (``melt=True``) are made by melting the starting
    lattice at melt_temperature, then cooling linearly to the protocol's first T.
    """

    units: str = "metal"
    timestep: float = 0.002
    tdamp: float | None = None
    pdamp: float | None = None
    P: float = 0.0
    barostat: str = "iso"
    seed: int = 12345
    thermo_every: int = 100
    dump_every: int = 100
    pressure_every: int = 5
    dump_velocities: bool = False
    melt: bool = False
    melt_temperature: float = 1500.0
    melt_steps: int = 5000
    cool_steps: int = 5000
    data_file: str = "structure.data"

    def __post_init__(self):
        if self.units not in ("metal", "lj"):
            raise ConfigError(f"units = {self.units!r}; allowed: metal, lj")
        if not self.timestep > 0:
            raise ConfigError(f"timestep = {self.timestep} must be > 0")
        if self.barostat not in ("iso", "aniso", "tri"):
            raise ConfigError(f"barostat = {self.barostat!r}; allowed: iso, aniso, tri")
        for key in ("thermo_every", "dump_every", "pressure_every", "melt_steps", "cool_steps"):
            if int(getattr(self, key)) < 0:
                raise ConfigError(f"{key} = {getattr(self, key)} must be >= 0")
        if self.thermo_every < 1:
            raise ConfigError(f"thermo_every = {self.thermo_every} must be >= 1")

    @property
    def pressure(self) -> float:
        """P in LAMMPS units (bar in metal)."""
        return self.P * (BAR_PER_GPA if self.units == "metal" else 1.0)


@dataclass
class Stage:
    """One ``run`` of a script (one thermo block of the log).

    kind: melt, cool, equilibrate, produce, ramp, prepare. T/T_stop: target temperatures
    (K) at its start/end; ensemble: nvt, npt, nph; dump/pressure: output files (relative
    to the run folder) or None; tag: the suffix of its per-stage files (production stages).
    """

    name: str
    kind: str
    steps: int
    ensemble: str
    T: float | None = None
    T_stop: float | None = None
    dump: str | None = None
    pressure: str | None = None
    tag: str | None = None


@dataclass
class Script:
    """A rendered protocol: ``text`` (the input script), its ``stages``, the ``outputs`` of
    a successful run (relative paths) and the parameters it was rendered from."""

    protocol: str
    text: str
    stages: list[Stage]
    outputs: list[str]
    params: dict = field(default_factory=dict)

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)


def temperature_tag(T: float) -> str:
    """File tag of a temperature: ``T900``, ``T1012.5``."""
    return f"T{float(T):g}"


# --------------------------------------------------------------------------- builder
class _Builder:
    """Accumulates the lines and stages of one script."""

    def __init__(self, protocol: str, settings: Settings, potential: Potential, params: dict):
        if potential.units != settings.units:
            raise ConfigError(f"the potential is in {potential.units} units but the MD settings "
                              f"are in {settings.units}")
        self.s = settings
        self.pot = potential
        self.protocol = protocol
        self.params = params
        self.stages: list[Stage] = []
        self.outputs: list[str] = ["log.lammps"]
        self.step = 0
        s = settings
        self.lines = [
            f"# meltpot MD protocol '{protocol}' (generated: change the config, not this file)",
            f"units {s.units}", "atom_style atomic", "atom_modify map array", "boundary p p p",
            # step 0 before the interaction: its commands may define time-dependent fixes
            f"read_data {s.data_file}", "reset_timestep 0", "", "# interaction", *potential.commands(), "",
            "neigh_modify every 1 delay 0 check yes",
            f"timestep {_f(s.timestep)}",
            "variable meltpot_vol equal vol",
            f"thermo_style custom {THERMO_COLUMNS}",
            "thermo_modify norm no lost error flush yes",
            f"thermo {int(s.thermo_every)}",
        ]

    # ------------------------------------------------------------------ pieces
    def comment(self, text: str) -> None:
        self.lines += ["", f"# {text}"]

    def velocity(self, T: float, group: str = "all") -> None:
        self.lines.append(f"velocity {group} create {_f(T)} {_lmp_seed(self.s.seed)} "
                          "mom yes rot no dist gaussian loop geom")

    def fix_args(self, ensemble: str, T0: float | None, T1: float | None, barostat: str | None = None) -> str:
        s = self.s
        temp = f"temp {_f(T0)} {_f(T1 if T1 is not None else T0)} {_f(s.t_damp)}"
        baro = f"{barostat or s.barostat} {_f(s.pressure)} {_f(s.pressure)} {_f(s.p_damp)}"
        if ensemble == "nvt":
            return f"nvt {temp}"
        if ensemble == "npt":
            return f"npt {temp} {baro}"
        if ensemble == "nph":
            return f"nph {baro}"
        raise ConfigError(f"ensemble {ensemble!r}; allowed: nvt, npt, nph")

    def stage(self, name: str, kind: str, steps: int, ensemble: str, T: float | None,
              T_stop: float | None = None, *, tag: str | None = None, group: str = "all",
              barostat: str | None = None, produce: bool = False, extra: Sequence[str] = ()) -> Stage | None:
        """Emit one stage; 0 steps emit nothing. ``produce``: dump and pressure files."""
        steps = int(steps)
        if steps <= 0:
            return None
        s = self.s
        st = Stage(name=name, kind=kind, steps=steps, ensemble=ensemble, T=T,
                   T_stop=T if T_stop is None else T_stop, tag=tag)
        what = f"{ensemble.upper()} {'' if T is None else f'{T:g} K'}" + \
               (f" -> {T_stop:g} K" if T_stop is not None and T_stop != T else "")
        self.comment(f"stage {name}: {what}, {steps} steps")
        args = self.fix_args(ensemble, T, T_stop, barostat)
        if group != "all" and ensemble != "nvt":
            args += f" dilate {group}"    # the box changes around the group only; other atoms stay put
        self.lines.append(f"fix meltpot_ens {group} {args}")
        undo = ["unfix meltpot_ens"]
        if produce:
            suffix = f"_{tag}" if tag else ""
            if s.dump_every > 0:
                st.dump = f"dump{suffix}.lammpstrj"
                cols = "id type element xu yu zu" + (" vx vy vz" if s.dump_velocities else "")
                self.lines += [f"dump meltpot_dump all custom {int(s.dump_every)} {st.dump} {cols}",
                               f"dump_modify meltpot_dump sort id time yes units yes "
                               f"element {' '.join(self.pot.elements)}"]
                undo.append("undump meltpot_dump")
                self.outputs.append(st.dump)
            if s.pressure_every > 0:
                st.pressure = f"pressure{suffix}.dat"
                n = int(s.pressure_every)
                press = " ".join(f"c_thermo_press[{i}]" for i in range(1, 7))
                self.lines.append(f"fix meltpot_press all ave/time {n} 1 {n} c_thermo_temp v_meltpot_vol "
                                  f"{press} file {st.pressure}")
                undo.append("unfix meltpot_press")
                self.outputs.append(st.pressure)
        self.lines += list(extra)
        self.lines.append(f"run {steps}")
        self.lines += undo
        self.stages.append(st)
        self.step += steps
        return st

    def melt_and_cool(self, T_target: float, ensemble: str) -> bool:
        """Melt at melt_temperature and cool to ``T_target`` when ``settings.melt``;
        returns whether velocities were created."""
        s = self.s
        if not s.melt or s.melt_steps == 0:   # no melt stage (e.g. starting from a liquid): velocities at T
            return False
        self.velocity(s.melt_temperature)
        self.stage("melt", "melt", s.melt_steps, ensemble, s.melt_temperature)
        if s.melt_temperature != T_target:
            self.stage("cool", "cool", s.cool_steps, ensemble, s.melt_temperature, T_target)
        return True

    def script(self) -> Script:
        self.comment("done")
        self.lines.append(f'print "meltpot: protocol {self.protocol} finished"')
        params = dict(self.params, settings=asdict(self.s), potential=self.pot.describe())
        return Script(self.protocol, "\n".join(self.lines) + "\n", self.stages, self.outputs, params)


def _check_steps(**steps) -> None:
    for key, value in steps.items():
        if int(value) < 0:
            raise ConfigError(f"{key} = {value} must be >= 0")


def _check_T(**temps) -> None:
    for key, value in temps.items():
        if not float(value) > 0:
            raise ConfigError(f"{key} = {value} must be > 0 (K)")


# --------------------------------------------------------------------------- protocols
def render_nvt(settings: Settings, potential: Potential, T: float, equilibration_steps: int,
               production_steps: int, volume: str = "npt_average") -> Script:
    """NVT production at ``T``. With ``settings.melt`` the lattice is melted first.

    ``volume``: "fixed" keeps the data file's box (e.g. built at a given density);
    "npt_average" (default) runs an NPT equilibration at ``P`` whose mean box
    lengths over its second half set the box (``change_box … remap``), then a quarter of
    ``equilibration_steps`` of NVT settling before production.
    """
    _check_T(T=T)
    _check_steps(equilibration_steps=equilibration_steps, production_steps=production_steps)
    if volume not in ("npt_average", "fixed"):
        raise ConfigError(f"nvt volume = {volume!r}; allowed: npt_average, fixed")
    s = settings
    b = _Builder("nvt", settings, potential, dict(T=T, equilibration_steps=equilibration_steps,
                                                   production_steps=production_steps, volume=volume))
    fixed = volume == "fixed"
    ens = "nvt" if fixed else "npt"
    if not b.melt_and_cool(T, ens):
        b.velocity(T)
    if fixed:
        b.stage("equilibrate", "equilibrate", equilibration_steps, "nvt", T)
    elif equilibration_steps > 0:
        start = b.step + equilibration_steps // 2
        avg = [f"fix meltpot_box all ave/time 1 1 1 v_meltpot_lx v_meltpot_ly v_meltpot_lz ave running start {start}"]
        b.lines += ["variable meltpot_lx equal lx", "variable meltpot_ly equal ly", "variable meltpot_lz equal lz"]
        b.stage("equilibrate", "equilibrate", equilibration_steps, "npt", T, extra=avg)
        b.lines += ["# the NVT box: mean NPT box lengths over the second half of the equilibration",
                    "change_box all x final $(xlo) $(xlo+f_meltpot_box[1]) y final $(ylo) $(ylo+f_meltpot_box[2]) "
                    "z final $(zlo) $(zlo+f_meltpot_box[3]) remap units box",
                    "unfix meltpot_box"]
        # a quarter of the equilibration, rounded to whole output intervals (keeps the
        # production's thermo, dump and pressure rows on one grid)
        grid = math.lcm(*(int(n) for n in (s.thermo_every, s.dump_every, s.pressure_every) if int(n) > 0))
        b.stage("settle", "equilibrate", equilibration_steps // 4 // grid * grid, "nvt", T)
    b.stage("produce", "produce", production_steps, "nvt", T, produce=True)
    return b.script()


def render_npt(settings: Settings, potential: Potential, T: float, equilibration_steps: int,
               production_steps: int) -> Script:
    """NPT (Nosé–Hoover, ``barostat`` coupling at ``P``) equilibration and production at ``T``."""
    return _render_npt_then(settings, potential, "npt", T, equilibration_steps, production_steps)


def render_nph(settings: Settings, potential: Potential, T: float, equilibration_steps: int,
               production_steps: int) -> Script:
    """NPT equilibration at ``T`` and ``P``, then NPH (constant enthalpy) production."""
    return _render_npt_then(settings, potential, "nph", T, equilibration_steps, production_steps)


def _render_npt_then(settings: Settings, potential: Potential, production: str, T: float,
                     equilibration_steps: int, production_steps: int) -> Script:
    """Melt if asked, NPT equilibration at ``T``, production in ensemble ``production`` (the
    protocol's name: npt or nph)."""
    _check_T(T=T)
    _check_steps(equilibration_steps=equilibration_steps, production_steps=production_steps)
    b = _Builder(production, settings, potential, dict(T=T, equilibration_steps=equilibration_steps,
                                                       production_steps=production_steps))
    if not b.melt_and_cool(T, "npt"):
        b.velocity(T)
    b.stage("equilibrate", "equilibrate", equilibration_steps, "npt", T)
    b.stage("produce", "produce", production_steps, production, T, produce=True)
    return b.script()


def render_melt_quench(settings: Settings, potential: Potential, temperatures: Sequence[float],
                       equilibration_steps: int, production_steps: int) -> Script:
    """Melt at ``melt_temperature`` (always), then for each T in order: cool linearly from
    the previous T over ``cool_steps``, equilibrate, produce (NPT at ``P``); one dump,
    pressure file and thermo table per temperature (tag ``T<T>``)."""
    temperatures = [float(t) for t in temperatures]
    if not temperatures:
        raise ConfigError("melt_quench needs at least one temperature")
    _check_T(**{f"temperatures[{i}]": t for i, t in enumerate(temperatures)})
    _check_steps(equilibration_steps=equilibration_steps, production_steps=production_steps)
    if len(set(temperatures)) != len(temperatures):
        raise ConfigError(f"melt_quench temperatures {temperatures} repeat a value")
    s = settings
    b = _Builder("melt_quench", s, potential, dict(temperatures=temperatures, equilibration_steps=equilibration_steps,
                                                    production_steps=production_steps))
    b.velocity(s.melt_temperature)
    b.stage("melt", "melt", s.melt_steps, "npt", s.melt_temperature)
    previous = s.melt_temperature
    for T in temperatures:
        tag = temperature_tag(T)
        if T != previous:
            b.stage(f"cool_{tag}", "cool", s.cool_steps, "npt", previous, T)
        b.stage(f"equilibrate_{tag}", "equilibrate", equilibration_steps, "npt", T)
        b.stage(f"produce_{tag}", "produce", production_steps, "npt", T, tag=tag, produce=True)
        previous = T
    return b.script()


def ramp_steps(T_start: float, T_stop: float, rate: float, timestep: float) -> int:
    """Steps of a linear ramp at ``rate`` (K per time unit, e.g. K/ps)."""
    if not rate > 0:
        raise ConfigError(f"ramp rate = {rate} must be > 0 (K/ps)")
    return max(1, int(round(abs(T_stop - T_start) / rate / timestep)))


def render_ramp(settings: Settings, potential: Potential, T_start: float, T_stop: float, rate: float,
                equilibration_steps: int) -> Script:
    """Heating (``T_stop > T_start``) or cooling ramp under NPT at ``P``: equilibrate at
    ``T_start``, then ramp the thermostat target linearly at ``rate`` (K/ps). The thermo
    ``Enthalpy``/``Temp`` columns give H(T) (:func:`meltpot.analysis.nucleation.analyze_ramp`);
    the ramp is the production stage (dump for CNA)."""
    _check_T(T_start=T_start, T_stop=T_stop)
    _check_steps(equilibration_steps=equilibration_steps)
    if T_start == T_stop:
        raise ConfigError(f"ramp T_start = T_stop = {T_start}: nothing to ramp")
    steps = ramp_steps(T_start, T_stop, rate, settings.timestep)
    b = _Builder("ramp", settings, potential, dict(T_start=T_start, T_stop=T_stop, rate=rate,
                                                    equilibration_steps=equilibration_steps, ramp_steps=steps))
    if not b.melt_and_cool(T_start, "npt"):
        b.velocity(T_start)
    b.stage("equilibrate", "equilibrate", equilibration_steps, "npt", T_start)
    b.stage("ramp", "ramp", steps, "npt", T_start, T_stop, produce=True)
    return b.script()


def render_two_phase(settings: Settings, potential: Potential, T: float, crystal_steps: int,
                     melt_steps: int, liquid_steps: int, production_steps: int,
                     ensemble: str = "npt") -> Script:
    """Solid–liquid coexistence along z (the data file: a crystal elongated along z).

    1. ``crystal``: the whole crystal at ``T`` (NPT ``aniso``) to its lattice at T;
    2. ``melt_half``: atoms in the upper half (z above the box middle) melted at
       ``melt_temperature`` (NVT on that group only; the lower half is not integrated);
    3. ``liquid``: the same group brought to ``T`` under NPT with the barostat on z (``dilate``
       the group: the box grows or shrinks in the liquid only), so that the liquid reaches its
       own density at T before the crystal meets it (left at the crystal's density, the liquid
       starts at ~1.5 GPa in Al, which shifts T_m by some 90 K while the barostat relaxes it);
    4. ``produce``: all atoms, NPT (or NPH with ``ensemble="nph"``) with the barostat on z
       only at ``P``, so the crystal keeps its lateral lattice. Below T_m the crystal
       grows, above it melts (NPT); NPH runs drift to T_m.
    """
    _check_T(T=T)
    _check_steps(crystal_steps=crystal_steps, melt_steps=melt_steps, liquid_steps=liquid_steps,
                 production_steps=production_steps)
    if ensemble not in ("npt", "nph"):
        raise ConfigError(f"two_phase ensemble = {ensemble!r}; allowed: npt, nph")
    s = settings
    b = _Builder("two_phase", s, potential, dict(T=T, crystal_steps=crystal_steps, melt_steps=melt_steps,
                                                  liquid_steps=liquid_steps, production_steps=production_steps,
                                                  ensemble=ensemble))
    b.velocity(T)
    b.stage("crystal", "equilibrate", crystal_steps, "npt", T, barostat="aniso")
    b.comment("the upper half (z) becomes the liquid")
    b.lines += ["region meltpot_top block INF INF INF INF $(zlo+0.5*lz) INF units box",
                "group meltpot_liquid region meltpot_top",
                "group meltpot_crystal subtract all meltpot_liquid"]
    b.stage("melt_half", "melt", melt_steps, "nvt", s.melt_temperature, group="meltpot_liquid")
    b.stage("liquid", "prepare", liquid_steps, "npt", T, group="meltpot_liquid", barostat="z")
    b.stage("produce", "produce", production_steps, ensemble, T, barostat="z", produce=True)
    return b.script()


def render_nucleation(settings: Settings, potential: Potential, T: float, quench_steps: int,
                      production_steps: int, halt_pe_drop: float | None = None,
                      halt_every: int | None = None) -> Script:
    """Melt at ``melt_temperature`` (NPT), quench linearly to ``T`` over ``quench_steps``,
    then isothermal NPT at ``T`` with dumps (Steinhardt / CNA analysis). Replicas differ
    only in ``settings.seed`` (the velocities of the melt).

    ``halt_pe_drop`` (energy per atom, eV in metal units): stop the isothermal run early
    (``fix halt … error continue``, the script goes on) once the potential energy per atom
    has fallen this far below its value at the start of it: crystallisation has happened.
    Checked every ``halt_every`` steps (default ``thermo_every``).
    """
    _check_T(T=T)
    _check_steps(quench_steps=quench_steps, production_steps=production_steps)
    s = settings
    if not T < s.melt_temperature:
        raise ConfigError(f"nucleation T = {T} must be below melt_temperature = {s.melt_temperature}")
    if halt_pe_drop is not None and not halt_pe_drop > 0:
        raise ConfigError(f"halt_pe_drop = {halt_pe_drop} must be > 0 (eV/atom) or null")
    b = _Builder("nucleation", s, potential, dict(T=T, quench_steps=quench_steps, production_steps=production_steps,
                                                   halt_pe_drop=halt_pe_drop))
    b.velocity(s.melt_temperature)
    b.stage("melt", "melt", s.melt_steps, "npt", s.melt_temperature)
    b.stage("quench", "cool", quench_steps, "npt", s.melt_temperature, T)
    extra = []
    if halt_pe_drop is not None:
        every = int(halt_every or s.thermo_every)
        b.lines += ["variable meltpot_pe_atom equal pe/atoms",
                    f"variable meltpot_pe_limit equal $(pe/atoms-{_f(halt_pe_drop)})"]
        extra = [f"fix meltpot_halt all halt {every} v_meltpot_pe_atom < ${{meltpot_pe_limit}} "
                 "error continue message yes"]
    b.stage("produce", "produce", production_steps, "npt", T, produce=True, extra=extra)
    if extra:
        b.lines.append("unfix meltpot_halt")
    return b.script()
