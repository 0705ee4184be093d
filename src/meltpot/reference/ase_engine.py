"""Reference engine that uses any ASE calculator (EMT, LennardJones, EAM, GPAW, CP2K, ...).

Units. In ``metal`` units everything is ASE's own (eV, Å, amu, K); MD segment timesteps
(ps) are converted to ASE time units (× 1000 × ``ase.units.fs``) and pressures (GPa) to
eV/Å³. In ``lj`` units ASE's native units are *read as* reduced units: eV ≡ ε, Å ≡ σ,
amu ≡ m, so ASE's time unit Å·√(amu/eV) is exactly τ and timesteps are used unchanged;
masses default to 1; temperatures T* = k_B T/ε are passed to ASE as T*/k_B kelvin (ASE's
k_B is in eV/K), and ``info["T_inst"]`` is reported back in reduced units.

MD mirrors :class:`~meltpot.reference.lammps_engine.LammpsEngine`:

* NVT: Nosé–Hoover chain (:class:`ase.md.nose_hoover_chain.NoseHooverChainNVT`) or, with
  ``thermostat="langevin"``, :class:`ase.md.langevin.Langevin` (friction 1/tdamp, centre
  of mass fixed with :class:`ase.constraints.FixCom`, random numbers from the run's seed).
* NPT: Martyna–Tobias–Klein barostat with a Nosé–Hoover-chain thermostat, the algorithm of
  LAMMPS's ``fix npt``: ``iso`` → ``IsotropicMTKNPT``, ``aniso`` → ``MaskedMTKNPT``
  (a, b, c lengths), ``tri`` → ``MTKNPT`` (full cell). The thermostat setting does not
  change NPT.
* NVE: velocity Verlet.
* A temperature ramp (``temperature_stop``) moves the thermostat target linearly step by
  step, like LAMMPS (for Nosé–Hoover the chain masses, ∝ k_B T, follow as in LAMMPS).
* Velocities are drawn from Maxwell–Boltzmann with a seeded NumPy generator, the total
  momentum removed and the kinetic temperature scaled to the target exactly.

``info["T_inst"]`` is ASE's kinetic temperature (3N degrees of freedom), the quantity its
thermostats control (LAMMPS uses 3N − 3).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from ase import Atoms
from ase import units as ase_units
from ase.calculators.calculator import PropertyNotImplementedError

from ..data.frames import attach_labels
from ..errors import ConfigError, EngineError
from .base import MDSegment, ReferenceEngine
from .common import check_symbols, element_masses, potential_search_dirs, resolve_file, segment_times

_DFT_HINT = ("install it with `make dft` (GPAW and CP2K); GPAW compiles from "
             "source and needs `apt-get install libxc-dev libopenblas-dev liblapack-dev "
             "libfftw3-dev pkg-config` and `GPAW_CONFIG=siteconfig.py` (compiler='g++', "
             "mpi=False, fftw=True; see design.md)")

#: name (lower case) -> (module, class, install hint)
CALCULATORS: dict[str, tuple[str, str, str]] = {
    "emt": ("ase.calculators.emt", "EMT", "part of ASE: `pip install ase`"),
    "lennardjones": ("ase.calculators.lj", "LennardJones", "part of ASE: `pip install ase`"),
    "eam": ("ase.calculators.eam", "EAM", "part of ASE: `pip install ase`"),
    "gpaw": ("gpaw", "GPAW", _DFT_HINT),
    "cp2k": ("ase.calculators.cp2k", "CP2K",
             "needs the `cp2k_shell` executable: `apt-get install cp2k cp2k-data`"),
    "espresso": ("ase.calculators.espresso", "Espresso",
                 "needs Quantum ESPRESSO's `pw.x` and pseudopotentials (ASE_ESPRESSO_COMMAND)"),
    "vasp": ("ase.calculators.vasp", "Vasp",
             "needs a licensed VASP (ASE_VASP_COMMAND, VASP_PP_PATH)"),
}


def calculator_class(name: str):
    """The calculator class for a table name (case-insensitive) or ``"pkg.module:Class"``."""
    key = str(name).strip()
    if ":" in key:
        modname, _, clsname = key.partition(":")
        hint = f"`pip install {modname.split('.')[0]}`"
    elif key.lower() in CALCULATORS:
        modname, clsname, hint = CALCULATORS[key.lower()]
    else:
        allowed = ", ".join(CALCULATORS[k][1] for k in CALCULATORS)
        raise EngineError(f"ASE calculator {name!r} unknown; allowed: {allowed}, "
                          "or a dotted path 'package.module:ClassName'")
    try:
        module = importlib.import_module(modname)
    except ImportError as exc:
        pkg = (exc.name or modname).split(".")[0]
        raise EngineError(f"calculator {name!r} needs the Python package {pkg!r}, which is not "
                          f"installed ({exc}); {hint}") from None
    try:
        return getattr(module, clsname)
    except AttributeError:
        raise EngineError(f"module {modname!r} has no class {clsname!r}") from None


def _set_target_temperature(dyn, temperature_k: float) -> None:
    """Move the target temperature of a running ASE thermostat (K)."""
    if hasattr(dyn, "set_temperature"):  # Langevin
        dyn.set_temperature(temperature_K=temperature_k)
        return
    thermostat = getattr(dyn, "_thermostat", None)
    if thermostat is None or not hasattr(thermostat, "_kT"):
        raise EngineError(f"temperature ramps are not supported with {type(dyn).__name__} "
                          "in this ASE version")
    kt = ase_units.kB * temperature_k
    old = thermostat._kT
    if kt <= 0 or old <= 0:
        raise EngineError("Nosé–Hoover temperature ramps need temperatures > 0")
    factor = kt / old
    # Nosé–Hoover chain and MTK masses are all proportional to kT (LAMMPS does the same)
    for obj in (thermostat, getattr(dyn, "_barostat", None)):
        if obj is None:
            continue
        obj._kT = kt
        for attr in ("_Q", "_W", "_R"):
            if hasattr(obj, attr):
                setattr(obj, attr, getattr(obj, attr) * factor)
    if hasattr(dyn, "_kT"):
        dyn._kT = kt
    if hasattr(dyn, "_temperature_K"):
        dyn._temperature_K = temperature_k


class AseEngine(ReferenceEngine):
    """An ASE calculator as reference.

    Parameters
    ----------
    elements: chemical symbols the engine accepts.
    units: ``"metal"`` or ``"lj"`` (see the module docstring).
    calculator: ``EMT``, ``LennardJones``, ``EAM``, ``GPAW``, ``CP2K``, ``Espresso``,
        ``Vasp`` (case-insensitive) or ``"package.module:ClassName"``.
    kwargs: keyword arguments of the calculator. A ``potential`` file name (EAM) is looked
        up in the cwd and the LAMMPS potentials folder.
    masses: ``{symbol: mass}`` overriding the defaults (amu, or 1.0 in lj units).
    thermostat: ``"nose-hoover"`` or ``"langevin"`` for NVT segments.
    """

    def __init__(self, elements: Sequence[str], units: str = "metal", calculator: str = "EMT",
                 kwargs: Mapping | None = None, masses: Mapping[str, float] | None = None,
                 thermostat: str = "nose-hoover"):
        super().__init__(elements, units)
        if thermostat not in ("nose-hoover", "langevin"):
            raise ConfigError(f"thermostat {thermostat!r} unknown; allowed: nose-hoover, langevin")
        self.calculator = str(calculator)
        self.name = f"ase:{self.calculator}"
        self.thermostat = thermostat
        self.kwargs = dict(kwargs or {})
        if isinstance(self.kwargs.get("potential"), str):
            path = resolve_file(self.kwargs["potential"])
            if path is None:
                where = ", ".join(str(d) for d in potential_search_dirs())
                raise EngineError(f"potential file {self.kwargs['potential']!r} not found; "
                                  f"looked in: {where}")
            self.kwargs["potential"] = str(path)
        self.masses = element_masses(self.elements, self.units, masses)
        cls = calculator_class(self.calculator)
        try:
            self.calc = cls(**self.kwargs)
        except EngineError:
            raise
        except Exception as exc:
            hint = CALCULATORS.get(self.calculator.lower(), (None, None, ""))[2]
            raise EngineError(f"cannot create ASE calculator {self.calculator!r} with "
                              f"{self.kwargs}: {type(exc).__name__}: {exc}"
                              + (f" ({hint})" if hint else "")) from None
        metal = self.units == "metal"
        self._tconv = 1000.0 * ase_units.fs if metal else 1.0      # segment time -> ASE time
        self._pconv = ase_units.GPa if metal else 1.0              # segment pressure -> eV/Å³
        self._kconv = 1.0 if metal else 1.0 / ase_units.kB         # segment T -> kelvin

    def describe(self) -> dict:
        d = super().describe()
        d.update(calculator=self.calculator, kwargs={k: (v if isinstance(v, (int, float, str, bool,
                 type(None), list, dict)) else repr(v)) for k, v in self.kwargs.items()},
                 masses=dict(zip(self.elements, self.masses.tolist())), thermostat=self.thermostat)
        return d

    # ------------------------------------------------------------------ helpers
    def _working_copy(self, atoms: Atoms) -> Atoms:
        """Copy of ``atoms`` with the engine's masses (velocities kept) and calculator; no
        constraints (labels are the raw forces)."""
        idx = check_symbols(atoms, self.elements)
        work = atoms.copy()
        work.set_constraint()
        vel = work.get_velocities()
        work.set_masses(self.masses[idx])
        if vel is not None:
            work.set_velocities(vel)
        work.calc = self.calc
        return work

    def _evaluate(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None, float, dict]:
        """(force-consistent energy, forces, stress or None, extrapolated energy, extra info)."""
        try:
            e0 = float(atoms.get_potential_energy())
            try:
                energy = float(atoms.get_potential_energy(force_consistent=True))
            except (PropertyNotImplementedError, NotImplementedError, KeyError):
                energy = e0
            forces = np.array(atoms.get_forces())
            stress = None
            if "stress" in getattr(atoms.calc, "implemented_properties", ()):
                try:
                    stress = np.array(atoms.get_stress(voigt=True))
                except (PropertyNotImplementedError, NotImplementedError):
                    stress = None
        except EngineError:
            raise
        except Exception as exc:
            raise self._failure(exc) from None
        if not math.isfinite(energy) or not np.all(np.isfinite(forces)):
            raise EngineError(f"{self.name} returned a non-finite energy/forces (E = {energy})")
        return energy, forces, stress, e0, self._check(atoms)

    def _failure(self, exc: Exception) -> EngineError:
        """The EngineError for an exception of the calculator."""
        hint = CALCULATORS.get(self.calculator.lower(), (None, None, ""))[2]
        return EngineError(f"{self.name} calculation failed: {type(exc).__name__}: {exc}"
                           + (f" ({hint})" if hint else ""))

    def _check(self, atoms: Atoms) -> dict:
        """Checks after every evaluation (SCF convergence in DFT engines); info tags for the frame."""
        return {}

    def _attach(self, frame: Atoms, energy, forces, stress, e0, extra=None) -> Atoms:
        info = {"engine": self.name, "units": self.units, **(extra or {})}
        if e0 != energy:
            info["energy_zero"] = e0
        return attach_labels(frame, energy, forces, stress, **info)

    # ------------------------------------------------------------------ label
    def label(self, atoms: Atoms) -> Atoms:
        """Single point: force-consistent energy (eV), forces (eV/Å) and, where the
        calculator has it, stress (eV/Å³). The extrapolated energy goes to
        ``info["energy_zero"]`` when it differs."""
        work = self._working_copy(atoms)
        result = self._evaluate(work)
        out = atoms.copy()
        out.calc = None
        return self._attach(out, *result)

    # ------------------------------------------------------------------ md
    #: the run can be saved between sampled frames and resumed (:meth:`checkpoint`)
    supports_checkpoints = True

    def md(self, atoms: Atoms, segments: Sequence[MDSegment], seed: int,
           resume: Mapping | None = None) -> Iterator[tuple[int, Atoms]]:
        """ASE MD over ``segments`` back to back; yields ``(segment_index, frame)``.

        Velocities carry over between segments; the thermostat state restarts at each
        segment (as with LAMMPS's per-segment fixes). After each yielded frame,
        :meth:`checkpoint` gives the run's state; ``resume`` (such a state, from the same
        ``atoms``, ``segments`` and ``seed``) continues the run from there: positions, momenta,
        cell, integrator and thermostat/barostat variables and random-number state are
        restored, so the frames that follow equal those of an uninterrupted run (bit for bit
        with a deterministic calculator; within the SCF tolerance with DFT, whose first SCF
        after a restart starts from scratch).
        """
        from ase.md.velocitydistribution import Stationary, force_temperature, thermalize_momenta

        segments = list(segments)
        work = self._working_copy(atoms)
        first, done0 = 0, 0
        if resume is not None:
            first, done0 = int(resume["segment"]), int(resume["done"])
            if not 0 <= first < len(segments) or not 0 <= done0 <= segments[first].steps:
                raise EngineError(f"checkpoint at segment {first}, step {done0} does not fit this run's "
                                  f"{len(segments)} segments")
            arrays = resume["arrays"]
            if arrays["positions"].shape != (len(work), 3):
                raise EngineError(f"checkpoint holds {len(arrays['positions'])} atoms, the run {len(work)}")
            work.set_cell(arrays["cell"], scale_atoms=False)
            work.set_positions(arrays["positions"])
            work.set_momenta(arrays["momenta"])
        has_vel = np.any(work.get_momenta() != 0.0)
        start_steps, start_times = segment_times(segments)
        self._run_state = None
        for iseg, seg in enumerate(segments):
            if iseg < first:
                continue
            resumed = resume is not None and iseg == first
            if not resumed:
                self._start_segment(work, iseg, seg, seed, has_vel, thermalize_momenta, Stationary,
                                    force_temperature)
            if seg.steps == 0:
                continue
            dyn = self._dynamics(work, seg, np.random.default_rng([int(seed) & 0xFFFFFFFF, iseg]))
            if seg.temperature_stop is not None and seg.ensemble != "nve" \
                    and seg.temperature_stop != seg.temperature:
                t0, t1 = seg.temperature * self._kconv, seg.temperature_stop * self._kconv
                n = seg.steps

                def ramp(dyn=dyn, t0=t0, t1=t1, n=n):
                    _set_target_temperature(dyn, t0 + (t1 - t0) * min(dyn.nsteps + 1, n) / n)

                dyn.attach(ramp, interval=1)
            if type(self)._check is not AseEngine._check:   # e.g. SCF convergence at every MD step
                dyn.attach(lambda: self._check(work), interval=1)
            done = 0
            if resumed:
                _restore_dynamics(dyn, resume)
                done = done0
            every = seg.sample_every if seg.sample_every > 0 else seg.steps
            while done < seg.steps:
                k = min(every, seg.steps - done)
                step = int(start_steps[iseg]) + done
                try:
                    dyn.run(k)
                except EngineError as exc:
                    raise EngineError(f"segment {iseg} {seg.label!r}, steps {step}-{step + k}: "
                                      f"{exc}") from None
                except Exception as exc:
                    raise EngineError(f"ASE MD failed in segment {iseg} {seg.label!r}, steps "
                                      f"{step}-{step + k}: {type(exc).__name__}: {exc}") from None
                done += k
                if seg.sample_every > 0 and done % seg.sample_every == 0:
                    result = self._evaluate(work)
                    if not math.isfinite(result[0]):
                        raise EngineError(f"energy is {result[0]} in segment {iseg} {seg.label!r}"
                                          f", step {step + k}")
                    frame = work.copy()
                    frame.set_constraint()
                    frame.wrap()
                    self._attach(frame, *result)
                    t_inst = work.get_temperature() / self._kconv
                    frame.info.update(T_inst=float(t_inst), step=int(start_steps[iseg]) + done,
                                      time=float(start_times[iseg]) + done * seg.timestep,
                                      segment=seg.label)
                    self._run_state = (iseg, done, dyn, work)
                    yield iseg, frame
                elif not math.isfinite(float(work.get_potential_energy())):
                    raise EngineError(f"energy is NaN in segment {iseg} {seg.label!r}, "
                                      f"step {step + k}")
            work.set_constraint()

    def checkpoint(self) -> dict:
        """The state of the running :meth:`md` right after its last yielded frame: ``segment``,
        ``done`` (steps of that segment), ``arrays`` (positions, momenta, cell and the
        integrator's variables) and ``meta`` (step counter, random-number state), for
        ``md(..., resume=state)``."""
        if self._run_state is None:
            raise EngineError("no MD frame yielded yet: nothing to checkpoint")
        iseg, done, dyn, work = self._run_state
        arrays, meta = _dynamics_state(dyn)
        arrays.update(positions=work.get_positions(), momenta=work.get_momenta(),
                      cell=np.array(work.get_cell()))
        return {"segment": iseg, "done": done, "arrays": arrays, "meta": meta}

    def _start_segment(self, work: Atoms, iseg: int, seg: MDSegment, seed: int, has_vel: bool,
                       thermalize_momenta, Stationary, force_temperature) -> None:
        """Volume rescaling and velocity draw at the start of a segment."""
        if seg.volume is not None:
            if seg.volume <= 0:
                raise EngineError(f"segment {iseg}: requested volume {seg.volume} must be > 0")
            s = (seg.volume / work.get_volume()) ** (1.0 / 3.0)
            work.set_cell(np.array(work.cell) * s, scale_atoms=True)
        vseed = seg.velocity_seed
        if vseed is None and iseg == 0 and not has_vel:
            vseed = seed
        if vseed is not None:
            t_k = seg.temperature * self._kconv
            if t_k > 0:
                thermalize_momenta(work, t_k, rng=np.random.default_rng(vseed))
                Stationary(work, preserve_temperature=False)
                force_temperature(work, t_k, unit="K")
            else:
                work.set_momenta(np.zeros((len(work), 3)))

    def _dynamics(self, atoms: Atoms, seg: MDSegment, rng: np.random.Generator):
        """The ASE integrator for one segment (ASE time units inside)."""
        dt = seg.timestep * self._tconv
        tdamp = seg.t_damp * self._tconv
        t_k = seg.temperature * self._kconv
        if seg.ensemble == "nve":
            from ase.md.verlet import VelocityVerlet

            return VelocityVerlet(atoms, timestep=dt)
        if seg.ensemble == "nvt":
            if self.thermostat == "langevin":
                from ase.constraints import FixCom
                from ase.md.langevin import Langevin

                atoms.set_constraint(FixCom())  # removed again after the segment
                return Langevin(atoms, dt, temperature_K=t_k, friction=1.0 / tdamp, rng=rng,
                                fixcm=False)
            from ase.md.nose_hoover_chain import NoseHooverChainNVT

            return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=t_k, tdamp=tdamp)
        from ase.md import nose_hoover_chain as nhc

        if "stress" not in getattr(atoms.calc, "implemented_properties", ()):
            raise EngineError(f"NPT needs stress, which {self.name} does not compute")
        common = dict(timestep=dt, temperature_K=t_k, pressure_au=seg.pressure * self._pconv,
                      tdamp=tdamp, pdamp=seg.p_damp * self._tconv)
        if seg.barostat == "iso":
            return nhc.IsotropicMTKNPT(atoms, **common)
        if seg.barostat == "aniso":
            return nhc.MaskedMTKNPT(atoms, mask=(True, True, True), **common)
        return nhc.MTKNPT(atoms, **common)


# ----------------------------------------------------------------------------- checkpoints
#: the integrator objects whose variables a checkpoint holds
_STATE_OWNERS = ("", "_thermostat", "_barostat")
_SKIP = {"atoms", "observers", "masses", "comm", "trajectory", "logfile"}


def _owners(dyn):
    for name in _STATE_OWNERS:
        obj = dyn if not name else getattr(dyn, name, None)
        if obj is not None:
            yield name or "dyn", obj


def _dynamics_state(dyn) -> tuple[dict, dict]:
    """Every float/array variable of an ASE integrator and its thermostat/barostat objects
    (NHC η, p_η, MTK ε, p_ε, cell momenta, target kT after a ramp, …), the step counter and
    the random-number state (Langevin)."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict = {"nsteps": int(dyn.nsteps)}
    for owner, obj in _owners(dyn):
        for key, value in vars(obj).items():
            if key in _SKIP:
                continue
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                arrays[f"{owner}.{key}"] = value.copy()
            elif isinstance(value, float):
                arrays[f"{owner}.{key}"] = np.array(value)
    rng = getattr(dyn, "rng", None)
    if isinstance(rng, np.random.Generator):
        meta["rng"] = rng.bit_generator.state
    return arrays, meta


def _restore_dynamics(dyn, state: Mapping) -> None:
    """Put a :func:`_dynamics_state` back into a freshly built integrator of the same kind."""
    arrays, meta = state["arrays"], state["meta"]
    known = dict(_owners(dyn))
    for name, value in arrays.items():
        owner, _, key = name.partition(".")
        if owner not in known:
            continue
        obj = known[owner]
        current = getattr(obj, key, None)
        if isinstance(current, float):
            setattr(obj, key, float(value))
        elif isinstance(current, np.ndarray):
            setattr(obj, key, np.array(value, dtype=current.dtype))
    dyn.nsteps = int(meta["nsteps"])
    if "rng" in meta and isinstance(getattr(dyn, "rng", None), np.random.Generator):
        dyn.rng.bit_generator.state = meta["rng"]
