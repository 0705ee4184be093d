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

_DFT_HINT = ("install the optional extra with `pip install meltpot[dft]`; GPAW compiles from "
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

    def _evaluate(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None, float]:
        """(force-consistent energy, forces, stress or None, extrapolated energy)."""
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
            hint = CALCULATORS.get(self.calculator.lower(), (None, None, ""))[2]
            raise EngineError(f"{self.name} calculation failed: {type(exc).__name__}: {exc}"
                              + (f" ({hint})" if hint else "")) from None
        if not math.isfinite(energy) or not np.all(np.isfinite(forces)):
            raise EngineError(f"{self.name} returned a non-finite energy/forces (E = {energy})")
        return energy, forces, stress, e0

    def _attach(self, frame: Atoms, energy, forces, stress, e0) -> Atoms:
        info = {"engine": self.name, "units": self.units}
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
    def md(self, atoms: Atoms, segments: Sequence[MDSegment],
           seed: int) -> Iterator[tuple[int, Atoms]]:
        """ASE MD over ``segments`` back to back; yields ``(segment_index, frame)``.

        Velocities carry over between segments; the thermostat state restarts at each
        segment (as with LAMMPS's per-segment fixes).
        """
        from ase.md.velocitydistribution import Stationary, force_temperature, thermalize_momenta

        segments = list(segments)
        work = self._working_copy(atoms)
        has_vel = np.any(work.get_momenta() != 0.0)
        start_steps, start_times = segment_times(segments)
        for iseg, seg in enumerate(segments):
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
            every = seg.sample_every if seg.sample_every > 0 else seg.steps
            done = 0
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
                    yield iseg, frame
                elif not math.isfinite(float(work.get_potential_energy())):
                    raise EngineError(f"energy is NaN in segment {iseg} {seg.label!r}, "
                                      f"step {step + k}")
            work.set_constraint()

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
