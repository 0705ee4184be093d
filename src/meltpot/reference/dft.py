"""DFT reference engines: GPAW (plane waves) and CP2K (Gaussian basis + plane-wave density grid).

A config's ``reference`` block names ``engine: gpaw`` or ``engine: cp2k`` and a typed ``dft``
block (:class:`DftSettings`, checked before any work starts)::

    reference:
      engine: gpaw
      dft: {xc: PBE, ecut: 250, kpts: gamma, smearing: {method: fermi-dirac, width: 0.1},
            scf: {max_iterations: 100, energy: 1.0e-5}}

Units: ``ecut`` in eV (GPAW: the plane-wave cutoff, default 300 eV; CP2K: the density-grid
``CUTOFF``, default 400 Ry = 5442 eV),
``smearing.width`` in eV (CP2K: electronic temperature width/k_B), ``scf.energy`` GPAW's
energy criterion (eV per valence electron), ``scf.eps_scf`` CP2K's ``EPS_SCF`` (a.u.).

Labels are the force-consistent (free, Mermin) energy, whose derivatives the forces are; the
σ→0 extrapolation goes to ``info["energy_zero"]`` where the code gives one (GPAW). Every
labelled frame records ``info["scf_converged"]`` and ``info["scf_iterations"]``. An SCF that
does not converge raises :class:`ScfNotConverged` (an :class:`EngineError`): single-point
labelling drops or fails on it by ``on_error`` (:mod:`meltpot.sampling.labelling`); in MD it
ends the run, because a trajectory through unconverged forces is not the reference's dynamics
(the frames written so far stay, and the run resumes from its checkpoint).

MD (``md_driver``): ``ase`` (the default) steps ASE's integrators (:meth:`AseEngine.md`, one
force call per step); ``native`` (CP2K only) has CP2K run its own MD, one ``cp2k`` process per
segment (:mod:`meltpot.reference.cp2k_md`; NVT and NVE only).

Both codes run one process on one core per job here (GPAW built without MPI, CP2K's
``cp2k_shell``, threads from ``OMP_NUM_THREADS``): parallelism comes from jobs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ase import units as ase_units

from ..errors import ConfigError, EngineError, ScfNotConverged
from .ase_engine import AseEngine

CODES = ("gpaw", "cp2k")
#: eV; CP2K's density grid needs far more than GPAW's plane waves (400 Ry, CP2K's own default)
DEFAULT_ECUT = {"gpaw": 300.0, "cp2k": 400 * ase_units.Rydberg}
SMEARING = {"gpaw": ("fermi-dirac", "gaussian", "methfessel-paxton", "marzari-vanderbilt"),
            "cp2k": ("fermi-dirac",)}
_SCF_KEYS = {"gpaw": ("max_iterations", "energy", "density"), "cp2k": ("max_iterations", "eps_scf")}
#: which driver steps the MD by default. CP2K: benchmarks/aimd_cp2k.py measured both on 32-atom
#: liquid Al (SZV, Γ): the same CPU time per step within 3 % (the force evaluation is all of it;
#: CP2K extrapolates the wavefunction in shell mode too, so the SCF counts are equal), so ASE's,
#: which also runs NPT and temperature ramps, stays the default
DEFAULT_MD_DRIVER = {"gpaw": "ase", "cp2k": "ase"}
MD_DRIVERS = ("ase", "native")
_CODE_ONLY = {"basis": "cp2k", "basis_file": "cp2k", "pseudopotential": "cp2k", "potential_file": "cp2k",
              "added_mos": "cp2k", "magmoms": "gpaw"}


@dataclass(frozen=True)
class DftSettings:
    """The typed ``dft`` block of a GPAW or CP2K reference (see the module docstring)."""

    code: str
    xc: str = "PBE"
    ecut: float = 300.0
    kpts: str | tuple[int, int, int] = "gamma"
    smearing_method: str = "fermi-dirac"
    smearing_width: float = 0.1
    max_iterations: int = 100
    scf_energy: float | None = None
    scf_density: float | None = None
    eps_scf: float | None = None
    spin: bool = False
    magmoms: dict = field(default_factory=dict)
    basis: str = "DZVP-MOLOPT-SR-GTH"
    basis_file: str = "BASIS_MOLOPT"
    pseudopotential: str = "GTH-PBE"
    potential_file: str = "GTH_POTENTIALS"
    added_mos: int = 20
    md_driver: str = "ase"
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, code: str, block: Mapping | None, where: str = "reference.dft") -> "DftSettings":
        """Settings from a config's ``dft`` block; ConfigError naming the key at fault."""
        if code not in CODES:
            raise ConfigError(f"reference.engine {code!r} is not a DFT code; allowed: {', '.join(CODES)}")
        block = dict(block or {})
        for key, owner in _CODE_ONLY.items():
            if key in block and owner != code:
                raise ConfigError(f"{where}.{key} applies to {owner} only, not {code}")
        smearing = dict(block.get("smearing") or {})
        method = str(smearing.get("method", "fermi-dirac"))
        if method not in SMEARING[code]:
            raise ConfigError(f"{where}.smearing.method {method!r} is not available with {code}; "
                              f"allowed: {', '.join(SMEARING[code])}")
        width = float(smearing.get("width", 0.1))
        if not width > 0:
            raise ConfigError(f"{where}.smearing.width must be > 0 eV, got {width}")
        scf = dict(block.get("scf") or {})
        unknown = sorted(set(scf) - set(_SCF_KEYS[code]))
        if unknown:
            raise ConfigError(f"{where}.scf: {', '.join(unknown)} not used by {code}; allowed: "
                              f"{', '.join(_SCF_KEYS[code])}")
        kpts = block.get("kpts", "gamma")
        if isinstance(kpts, str):
            if kpts != "gamma":
                raise ConfigError(f"{where}.kpts must be 'gamma' or three integers, got {kpts!r}")
        else:
            if len(kpts) != 3 or any(int(k) != k or k < 1 for k in kpts):
                raise ConfigError(f"{where}.kpts must be 'gamma' or three integers >= 1, got {kpts!r}")
            kpts = tuple(int(k) for k in kpts)
        ecut = float(block.get("ecut", DEFAULT_ECUT[code]))
        if not ecut > 0:
            raise ConfigError(f"{where}.ecut must be > 0 eV, got {ecut}")
        max_it = int(scf.get("max_iterations", 100))
        if max_it < 1:
            raise ConfigError(f"{where}.scf.max_iterations must be >= 1, got {max_it}")
        magmoms = dict(block.get("magmoms") or {})
        if magmoms and not block.get("spin", False):
            raise ConfigError(f"{where}.magmoms needs spin: true")
        driver = str(block.get("md_driver", DEFAULT_MD_DRIVER[code]))
        if driver not in MD_DRIVERS:
            raise ConfigError(f"{where}.md_driver {driver!r} unknown; allowed: {', '.join(MD_DRIVERS)}")
        if driver == "native" and code != "cp2k":
            raise ConfigError(f"{where}.md_driver native is for cp2k only (CP2K runs its own MD); "
                              f"{code} MD runs through ASE (md_driver: ase)")
        kw = {k: block[k] for k in ("basis", "basis_file", "pseudopotential", "potential_file", "added_mos")
              if k in block}
        return cls(code=code, xc=str(block.get("xc", "PBE")), ecut=ecut, kpts=kpts, smearing_method=method,
                   smearing_width=width, max_iterations=max_it,
                   scf_energy=None if scf.get("energy") is None else float(scf["energy"]),
                   scf_density=None if scf.get("density") is None else float(scf["density"]),
                   eps_scf=None if scf.get("eps_scf") is None else float(scf["eps_scf"]),
                   spin=bool(block.get("spin", False)), magmoms={str(k): float(v) for k, v in magmoms.items()},
                   md_driver=driver, extra=dict(block.get("extra") or {}), **kw)

    def check_elements(self, elements: Sequence[str], where: str = "reference.dft") -> None:
        extra = sorted(set(self.magmoms) - set(elements))
        if extra:
            raise ConfigError(f"{where}.magmoms names {', '.join(extra)}, not among the elements "
                              f"{list(elements)}")

    def describe(self) -> dict:
        d = {k: getattr(self, k) for k in ("code", "xc", "ecut", "smearing_method", "smearing_width",
                                           "max_iterations", "spin")}
        d["kpts"] = self.kpts if isinstance(self.kpts, str) else list(self.kpts)
        for k in ("scf_energy", "scf_density", "eps_scf"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.code == "cp2k":
            d.update(basis=self.basis, pseudopotential=self.pseudopotential, added_mos=self.added_mos,
                     md_driver=self.md_driver)
        if self.magmoms:
            d["magmoms"] = dict(self.magmoms)
        if self.extra:
            d["extra"] = dict(self.extra)
        return d


# --------------------------------------------------------------------------- calculators
def gpaw_kwargs(s: DftSettings, txt: str | None) -> dict:
    """GPAW keyword arguments: PW mode, no symmetry reduction (MD frames have none)."""
    occupations = {"name": s.smearing_method, "width": s.smearing_width}
    if s.smearing_method == "methfessel-paxton":
        occupations["order"] = 1
    convergence = {}
    if s.scf_energy is not None:
        convergence["energy"] = s.scf_energy
    if s.scf_density is not None:
        convergence["density"] = s.scf_density
    kw = dict(mode={"name": "pw", "ecut": s.ecut}, xc=s.xc, occupations=occupations, maxiter=s.max_iterations,
              kpts=(1, 1, 1) if s.kpts == "gamma" else {"size": s.kpts, "gamma": True},
              symmetry="off", txt=txt, spinpol=s.spin)
    if convergence:
        kw["convergence"] = convergence
    kw.update(s.extra)
    return kw


def cp2k_input(s: DftSettings) -> str:
    """The CP2K input sections ASE's CP2K calculator does not write: smearing (Fermi–Dirac at
    T = width/k_B), added MOs, Broyden mixing, k-points, spin (UKS)."""
    t_el = s.smearing_width / ase_units.kB
    kp = "" if s.kpts == "gamma" else (
        "    &KPOINTS\n      SCHEME MONKHORST-PACK " + " ".join(str(k) for k in s.kpts)
        + "\n      SYMMETRY OFF\n      FULL_GRID ON\n    &END KPOINTS\n")
    uks = "    UKS TRUE\n" if s.spin else ""
    eps = f"      EPS_SCF {s.eps_scf!r}\n" if s.eps_scf is not None else ""
    return ("&FORCE_EVAL\n  &DFT\n" + uks + kp
            + "    &SCF\n" + eps + f"      ADDED_MOS {int(s.added_mos)}\n"
            + f"      &SMEAR ON\n        METHOD FERMI_DIRAC\n        ELECTRONIC_TEMPERATURE [K] {t_el!r}\n"
            + "      &END SMEAR\n      &MIXING\n        METHOD BROYDEN_MIXING\n        ALPHA 0.2\n"
            + "        NBROYDEN 8\n      &END MIXING\n    &END SCF\n  &END DFT\n&END FORCE_EVAL\n")


def cp2k_kwargs(s: DftSettings, directory: str) -> dict:
    kw = dict(command=os.environ.get("ASE_CP2K_COMMAND", "cp2k_shell"), basis_set=s.basis,
              basis_set_file=s.basis_file, pseudo_potential=s.pseudopotential, potential_file=s.potential_file,
              xc=s.xc, cutoff=s.ecut, max_scf=s.max_iterations, inp=cp2k_input(s), print_level="LOW",
              directory=directory, stress_tensor=True, poisson_solver="auto")
    kw.update(s.extra)
    return kw


# --------------------------------------------------------------------------- engine
class DftEngine(AseEngine):
    """A GPAW or CP2K reference (an :class:`AseEngine` whose calculator comes from typed
    settings, and which checks SCF convergence after every evaluation).

    ``workdir``: folder for the code's own files (GPAW's text log, CP2K's input, output and
    wavefunction restart); default ``./dft-<code>``. One engine, one folder: parallel jobs
    need their own.
    """

    def __init__(self, elements: Sequence[str], settings: DftSettings, workdir: str | os.PathLike | None = None,
                 masses: Mapping[str, float] | None = None, thermostat: str = "nose-hoover"):
        settings.check_elements(elements)
        self.settings = settings
        self.workdir = Path(workdir or f"dft-{settings.code}").resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if settings.code == "gpaw":
            calc, kw = "GPAW", gpaw_kwargs(settings, str(self.workdir / "gpaw.txt"))
        else:
            calc, kw = "CP2K", cp2k_kwargs(settings, str(self.workdir))
        self._out_offset = 0
        self._last_scf = (True, 0)
        super().__init__(elements, "metal", calc, kw, masses=masses, thermostat=thermostat)
        self.name = settings.code

    def describe(self) -> dict:
        d = super().describe()
        d["dft"] = self.settings.describe()
        d.pop("kwargs", None)
        return d

    def _working_copy(self, atoms):
        work = super()._working_copy(atoms)
        if self.settings.magmoms:
            work.set_initial_magnetic_moments([self.settings.magmoms.get(s, 0.0)
                                               for s in work.get_chemical_symbols()])
        return work

    def label(self, atoms):
        try:
            return super().label(atoms)
        except ScfNotConverged:
            if self.settings.code == "gpaw":   # a fresh calculator for the next frame
                self.calc = _new_gpaw(self.kwargs)
            raise

    def md(self, atoms, segments, seed, resume=None):
        """MD through ASE's integrators (``md_driver: ase``, :meth:`AseEngine.md`) or CP2K's own
        (``native``, :func:`meltpot.reference.cp2k_md.run_md`); same frames and tags."""
        if self.settings.md_driver == "native":
            from .cp2k_md import run_md

            return run_md(self, atoms, segments, seed, resume=resume)
        return super().md(atoms, segments, seed, resume=resume)

    def checkpoint(self) -> dict:
        if self.settings.md_driver != "native":
            return super().checkpoint()
        if self._run_state is None:
            raise EngineError("no MD frame yielded yet: nothing to checkpoint")
        st = self._run_state
        return {"segment": st["segment"], "done": st["done"], "meta": {"cp2k_restart": st["restart"]},
                "arrays": {"positions": st["positions"], "momenta": st["momenta"], "cell": st["cell"]}}

    def _failure(self, exc: Exception) -> EngineError:
        if type(exc).__name__ == "KohnShamConvergenceError":
            self._last_scf = (False, self.settings.max_iterations)
            return ScfNotConverged(f"gpaw: SCF not converged within {self.settings.max_iterations} iterations "
                                   f"(see {self.workdir / 'gpaw.txt'})")
        return super()._failure(exc)

    def scf_status(self) -> tuple[bool, int]:
        """(converged, iterations) of the latest SCF cycle (GPAW: its counter, as GPAW raises
        when it does not converge; CP2K: its output since the last look)."""
        if self.settings.code == "gpaw":
            try:
                self._last_scf = (True, int(self.calc.get_number_of_iterations()))
            except Exception:   # nothing computed yet
                pass
            return self._last_scf
        out = self.workdir / "cp2k.out"
        if not out.exists():
            return self._last_scf
        with open(out, "rb") as fh:
            fh.seek(self._out_offset)
            text = fh.read().decode(errors="replace")
            self._out_offset = fh.tell()
        for line in text.splitlines():
            if "SCF run converged in" in line:
                self._last_scf = (True, int(line.split("converged in")[1].split()[0]))
            elif "SCF run NOT converged" in line:
                self._last_scf = (False, self.settings.max_iterations)
        return self._last_scf

    def _check(self, atoms) -> dict:
        converged, n = self.scf_status()
        if not converged:
            raise ScfNotConverged(f"{self.settings.code}: SCF not converged within {self.settings.max_iterations} "
                                  f"iterations (see {self.workdir / 'cp2k.out'})")
        return {"scf_converged": True, "scf_iterations": n}


def _new_gpaw(kwargs: dict):
    from gpaw import GPAW

    return GPAW(**kwargs)


def make_dft_engine(spec: Mapping, elements: Sequence[str], units: str = "metal",
                    workdir: str | os.PathLike | None = None) -> DftEngine:
    """The engine of a config's ``reference`` block with ``engine: gpaw`` or ``cp2k``."""
    if units != "metal":
        raise ConfigError(f"reference.engine {spec['engine']}: DFT needs units: metal, got {units}")
    settings = DftSettings.from_config(spec["engine"], spec.get("dft"))
    return DftEngine(elements, settings, workdir=workdir, masses=spec.get("masses"),
                     thermostat=spec.get("thermostat", "nose-hoover"))
