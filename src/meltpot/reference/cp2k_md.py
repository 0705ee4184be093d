"""CP2K's own MD driver for the ``cp2k`` engine (``dft.md_driver: native``).

Instead of ASE stepping the integrator and asking ``cp2k_shell`` for forces at every step,
each MD segment is one ``cp2k`` run (``RUN_TYPE MD``) whose input is the engine's own
single-point input (ASE's CP2K input generator fed with the same :class:`DftSettings`, so
both drivers evaluate the same ``FORCE_EVAL``) plus

* ``&MOTION/&MD``: ``ENSEMBLE NVE`` (velocity Verlet) or ``NVT`` with a global Nosé–Hoover
  chain of length 3 (ASE's default chain) and ``TIMECON`` = the segment's ``tdamp`` (CP2K's
  masses N_f·kT·τ², kT·τ², as ASE's but with N_f = 3N − 3 where ASE counts 3N; the chain
  starts at rest as ASE's does, where CP2K alone would draw its velocities at random);
  ``TIMESTEP`` in fs, ``STEPS``, ``TEMPERATURE`` in K;
* ``&SUBSYS/&VELOCITY``: meltpot's velocities (seeded draws, carried over between segments),
  so the seed, not CP2K, controls them; ``&KIND … MASS``: the engine's masses (amu);
* ``&MOTION/&PRINT``: positions (Å), velocities (Å/fs), forces (eV/Å), cell (Å) every
  ``sample_every`` steps, plus a restart file at each such step (``RESTART_HISTORY``) and at
  the end; the energy is the ``E =`` of the position frame (CP2K's total energy, which with
  smearing is the free (Mermin) energy the forces derive from; Hartree → eV with CP2K's
  own constant, as ``cp2k_shell`` converts), SCF convergence and the stress (``STRESS| Analytical stress tensor``, GPa →
  eV/Å³) come from the output file, one record per force evaluation (record 0: step 0).

Frames are read while CP2K runs and yielded as soon as all their pieces are on disk, so
:func:`meltpot.sampling.protocols.sample_unit` writes and checkpoints them one by one.

Restart: a checkpoint holds the CP2K restart file of the frame's step. Resuming restarts the
segment from it with ``&EXT_RESTART`` (positions, velocities and the Nosé–Hoover chain's
positions, velocities and masses: ``RESTART_POS``, ``RESTART_VEL``, ``RESTART_THERMOSTAT``)
for the remaining steps; the SCF restarts from the atomic guess (CP2K's wavefunction
history is not kept), so the frames after a restart agree with an uninterrupted run to the
SCF tolerance, not bit for bit.

Not supported (refused before any work, :class:`~meltpot.errors.ConfigError`): NPT segments and
temperature ramps (``temperature_stop``; CP2K has no linear thermostat ramp), the
Langevin thermostat. Use ``md_driver: ase`` for those.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from ase import Atoms
from ase import units as ase_units

from ..errors import ConfigError, EngineError
from .base import MDSegment
from .common import segment_times

#: Å/fs -> ASE velocity unit
_ANG_PER_FS = 1.0 / ase_units.fs
#: bohr/a.u.(time) -> Å/fs
_AU_VELOCITY = ase_units.Bohr / (ase_units._aut * 1e15)
#: K and fs per atomic unit (CP2K's conversions)
_AU_KELVIN = 3.15774647902944e5
_AU_FS = 2.41888432650478e-2
#: eV per Hartree as CP2K 2023.1 converts it (its physcon, CODATA 2006): the factor behind the
#: energies ``cp2k_shell`` hands the ASE driver, so both drivers label the same energy
CP2K_HARTREE_EV = 27.21138386
#: the Nosé–Hoover chain length (ASE's NoseHooverChainNVT default)
CHAIN = 3
#: seconds between looks at CP2K's files
POLL = 0.05


def cp2k_command() -> list[str]:
    """The CP2K executable for native MD runs: ``$MELTPOT_CP2K`` or ``cp2k`` (one process)."""
    cmd = os.environ.get("MELTPOT_CP2K", "cp2k").split()
    if shutil.which(cmd[0]) is None:
        raise EngineError(f"CP2K executable {cmd[0]!r} not found (md_driver: native runs `cp2k` itself); "
                          "`apt-get install cp2k cp2k-data`, or set MELTPOT_CP2K")
    return cmd


def check_segments(segments: Sequence[MDSegment], thermostat: str) -> None:
    """ConfigError for anything CP2K's own MD does not do here (before any work)."""
    if thermostat != "nose-hoover":
        raise ConfigError(f"reference.dft.md_driver native: thermostat {thermostat!r} is not supported "
                          "(Nosé–Hoover chain only); use md_driver: ase")
    for i, seg in enumerate(segments):
        if seg.ensemble == "npt":
            raise ConfigError(f"reference.dft.md_driver native: segment {i} {seg.label!r} is NPT, which the "
                              "native CP2K driver does not run; use md_driver: ase (MTK barostat)")
        if seg.ensemble == "nvt" and seg.temperature_stop is not None and seg.temperature_stop != seg.temperature:
            raise ConfigError(f"reference.dft.md_driver native: segment {i} {seg.label!r} ramps the temperature "
                              f"({seg.temperature} → {seg.temperature_stop} K), which CP2K's thermostat cannot do; "
                              "use md_driver: ase or melt_steps: 0")


def check_config(cfg: Mapping, source: str = "config") -> None:
    """ConfigError, at validation, when a config's cp2k reference runs native MD that
    :func:`check_segments` refuses: every sampling unit whose MD the reference runs (all of
    them, or only the ``aimd`` states when labelling is enabled) is checked."""
    from ..sampling.grid import expand_states
    from ..sampling.protocols import build_segments

    ref = cfg["reference"]
    labelling = bool(cfg.get("labelling", {}).get("enabled", False))
    for unit in expand_states(cfg):
        if labelling and not unit.aimd:
            continue
        segments, _ = build_segments(cfg, unit, unit.n_atoms, 0)
        try:
            check_segments(segments, ref.get("thermostat", "nose-hoover"))
        except ConfigError as exc:
            raise ConfigError(f"{source}: sampling unit {unit.unit_id}: {exc}") from None


# ----------------------------------------------------------------------------- input
def md_input(engine, work: Atoms, seg: MDSegment, steps: int, project: str, restart: str | None = None) -> str:
    """The full CP2K input of one native MD segment of ``steps`` steps from ``work`` (positions
    Å, cell Å, momenta in ASE units). ``restart``: a CP2K restart file to take positions,
    velocities and thermostat from (a resumed segment)."""
    from ase.calculators.cp2k import CP2K, parse_input

    calc = engine.calc
    stub = SimpleNamespace(parameters=calc.parameters, atoms=work, label=project,
                           _shell=SimpleNamespace(version=getattr(calc._shell, "version", 99.0)))
    root = parse_input(CP2K._generate_input(stub))          # the single points' own input
    root.add_keyword("GLOBAL", "RUN_TYPE MD")
    masses = dict(zip(work.get_chemical_symbols(), work.get_masses()))
    for sec in root.get_subsection("FORCE_EVAL/SUBSYS").subsections:
        if sec.name == "KIND" and sec.params in masses:
            sec.keywords.append(f"MASS {float(masses[sec.params])!r}")
    v_au = work.get_velocities() / _ANG_PER_FS / _AU_VELOCITY     # bohr per a.u. of time
    vel = root.get_subsection("FORCE_EVAL/SUBSYS/VELOCITY")
    vel.keywords.extend("%.17e %.17e %.17e" % tuple(v) for v in v_au)
    dt_fs = seg.timestep * 1000.0
    md = root.get_subsection("MOTION/MD")
    md.keywords.extend([f"ENSEMBLE {seg.ensemble.upper()}", f"STEPS {int(steps)}", f"TIMESTEP [fs] {dt_fs!r}",
                        f"TEMPERATURE [K] {float(seg.temperature)!r}"])
    if seg.ensemble == "nvt":
        nose = root.get_subsection("MOTION/MD/THERMOSTAT/NOSE")
        root.add_keyword("MOTION/MD/THERMOSTAT", "TYPE NOSE")
        root.add_keyword("MOTION/MD/THERMOSTAT", "REGION GLOBAL")
        nose.keywords.extend([f"LENGTH {CHAIN}", f"TIMECON [fs] {seg.t_damp * 1000.0!r}"])
        if restart is None:
            # the chain starts at rest, as ASE's does (CP2K would draw its velocities from its own
            # random stream): positions, velocities, forces 0; masses CP2K's own N_f·kT·τ², kT·τ²
            # (atomic units). A resumed segment takes the chain from the restart file instead.
            kt = seg.temperature / _AU_KELVIN
            tau = seg.t_damp * 1000.0 / _AU_FS
            q = [(3 * len(work) - 3) * kt * tau ** 2] + [kt * tau ** 2] * (CHAIN - 1)
            for name, values in (("COORD", [0.0] * CHAIN), ("VELOCITY", [0.0] * CHAIN), ("MASS", q),
                                 ("FORCE", [0.0] * CHAIN)):
                root.get_subsection(f"MOTION/MD/THERMOSTAT/NOSE/{name}").keywords.append(
                    " ".join(repr(float(x)) for x in values))     # one line: a list, not repeats
    every = seg.sample_every if seg.sample_every > 0 else steps
    root.add_keyword("MOTION/MD/PRINT/ENERGY/EACH", f"MD {int(every)}")
    for key, extra in (("TRAJECTORY", ["FORMAT XYZ"]), ("VELOCITIES", ["FORMAT XYZ", "UNIT angstrom*fs^-1"]),
                       ("FORCES", ["FORMAT XYZ", "UNIT eV*angstrom^-1"]), ("CELL", []),
                       ("RESTART_HISTORY", []), ("RESTART", ["BACKUP_COPIES 0", "ADD_LAST NUMERIC"])):
        for line in extra:
            root.add_keyword(f"MOTION/PRINT/{key}", line)
        root.add_keyword(f"MOTION/PRINT/{key}/EACH", f"MD {int(every)}")
    if restart is not None:
        for line in (f"RESTART_FILE_NAME {restart}", "RESTART_DEFAULT F", "RESTART_POS T", "RESTART_VEL T",
                     "RESTART_THERMOSTAT T"):
            root.add_keyword("EXT_RESTART", line)
    return "\n".join(["! native MD input written by meltpot (FORCE_EVAL from ASE's CP2K input generator)"]
                     + root.write()) + "\n"


# ----------------------------------------------------------------------------- reading
class _Files:
    """Incremental reader of one CP2K MD run's printed files (complete lines only)."""

    def __init__(self, folder: Path, project: str, n_atoms: int):
        self.n = n_atoms
        self.folder, self.project = folder, project
        self.paths = {"pos": folder / f"{project}-pos-1.xyz", "vel": folder / f"{project}-vel-1.xyz",
                      "frc": folder / f"{project}-frc-1.xyz", "cell": folder / f"{project}-1.cell",
                      "out": folder / f"{project}.out"}
        self.lines: dict[str, list[str]] = {k: [] for k in self.paths}
        self.offset = dict.fromkeys(self.paths, 0)
        self.records: list[dict] = []      # one per force evaluation: scf, iterations, stress
        self._out_pos = 0

    def poll(self) -> None:
        for key, path in self.paths.items():
            if not path.exists():
                continue
            with open(path, "rb") as fh:
                fh.seek(self.offset[key])
                data = fh.read()
            cut = data.rfind(b"\n") + 1
            if cut:
                self.offset[key] += cut
                self.lines[key].extend(data[:cut].decode(errors="replace").splitlines())
        self._parse_out()

    def _parse_out(self) -> None:
        lines = self.lines["out"]
        while self._out_pos < len(lines):
            line = lines[self._out_pos]
            if "SCF run converged in" in line:
                self.records.append({"scf_converged": True, "scf_iterations": int(line.split("converged in")[1].split()[0])})
            elif "SCF run NOT converged" in line:
                self.records.append({"scf_converged": False, "scf_iterations": None})
            elif "STRESS| Analytical stress tensor [GPa]" in line:
                rows = lines[self._out_pos + 2:self._out_pos + 5]
                if len(rows) < 3:
                    return                      # the block is not complete yet
                if self.records:
                    self.records[-1]["stress"] = np.array([[float(x) for x in r.split()[2:5]] for r in rows])
                self._out_pos += 5
                continue
            self._out_pos += 1

    def xyz_frame(self, key: str, k: int) -> tuple[str, np.ndarray, list[str]] | None:
        """The k-th printed frame of an XYZ file: (comment line, N×3 values, symbols)."""
        lines = self.lines[key]
        start = k * (self.n + 2)
        if len(lines) < start + self.n + 2:
            return None
        body = [ln.split() for ln in lines[start + 2:start + 2 + self.n]]
        return lines[start + 1], np.array([[float(x) for x in b[1:4]] for b in body]), [b[0] for b in body]

    def cell(self, k: int) -> np.ndarray | None:
        rows = [ln for ln in self.lines["cell"] if not ln.lstrip().startswith("#")]
        if len(rows) <= k:
            return None
        return np.array([float(x) for x in rows[k].split()[2:11]]).reshape(3, 3)

    def forget_restart(self, step: int) -> None:
        (self.folder / f"{self.project}-1_{step}.restart").unlink(missing_ok=True)

    def restart_text(self, step: int) -> str | None:
        """The restart file CP2K wrote at ``step``, once complete (ends with its last section)."""
        path = self.folder / f"{self.project}-1_{step}.restart"
        if not path.exists():
            return None
        text = path.read_text(errors="replace").rstrip()
        # a resumed run's restart file ends with its &EXT_RESTART section, after FORCE_EVAL
        last = text.rsplit("\n", 1)[-1].strip()
        return text + "\n" if "&END FORCE_EVAL" in text and last in ("&END FORCE_EVAL", "&END EXT_RESTART") \
            else None


def _step_of(comment: str) -> int:
    return int(re.search(r"i\s*=\s*(\d+)", comment).group(1))


def _energy_of(comment: str) -> float:
    """eV, from the ``E = `` (Hartree) of a CP2K XYZ comment line."""
    return float(re.search(r"E\s*=\s*(\S+)", comment).group(1)) * CP2K_HARTREE_EV


def restart_state(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(positions Å, velocities in ASE units) of a CP2K restart file's ``&COORD``/``&VELOCITY``."""
    subsys = text[text.index("&SUBSYS"):]
    coord = [r for r in _block_rows(subsys, "COORD") if r[0].upper() not in ("UNIT", "SCALED")]
    vel = _block_rows(subsys, "VELOCITY")
    pos = np.array([[float(x) for x in r[1:4]] for r in coord])
    v = np.array([[float(x) for x in r[:3]] for r in vel]) * _AU_VELOCITY * _ANG_PER_FS
    return pos, v


def _block_rows(text: str, name: str) -> list[list[str]]:
    m = re.search(rf"^\s*&{name}\b[^\n]*\n(.*?)^\s*&END {name}", text, re.M | re.S)
    if m is None:
        raise EngineError(f"CP2K restart file has no &{name} section")
    return [ln.split() for ln in m.group(1).splitlines() if ln.strip()]


# ----------------------------------------------------------------------------- the run
def run_md(engine, atoms: Atoms, segments: Sequence[MDSegment], seed: int,
           resume: Mapping | None = None) -> Iterator[tuple[int, Atoms]]:
    """Native CP2K MD over ``segments``: the same contract and frame tags as
    :meth:`meltpot.reference.ase_engine.AseEngine.md` (see the module docstring for what a
    resume restores)."""
    from ase.md.velocitydistribution import Stationary, force_temperature, thermalize_momenta

    from ..errors import ScfNotConverged

    segments = list(segments)
    check_segments(segments, engine.thermostat)
    cmd = cp2k_command()
    folder = engine.workdir / "md"
    folder.mkdir(parents=True, exist_ok=True)
    work = engine._working_copy(atoms)
    work.calc = None
    first, done0 = 0, 0
    if resume is not None:
        first, done0 = int(resume["segment"]), int(resume["done"])
        if not 0 <= first < len(segments) or not 0 <= done0 <= segments[first].steps \
                or "cp2k_restart" not in resume["meta"]:
            raise EngineError(f"checkpoint at segment {first}, step {done0} is not a native CP2K checkpoint "
                              f"of this run's {len(segments)} segments")
        work.set_cell(resume["arrays"]["cell"], scale_atoms=False)
        pos, v = restart_state(resume["meta"]["cp2k_restart"])    # full precision, as CP2K resumes
        work.set_positions(pos)
        work.set_velocities(v)
    has_vel = np.any(work.get_momenta() != 0.0)
    start_steps, start_times = segment_times(segments)
    want_stress = bool(engine.calc.parameters.get("stress_tensor"))
    engine._run_state = None
    n = len(work)
    for iseg, seg in enumerate(segments):
        if iseg < first:
            continue
        resumed = resume is not None and iseg == first
        if not resumed:
            engine._start_segment(work, iseg, seg, seed, has_vel, thermalize_momenta, Stationary, force_temperature)
        done = done0 if resumed else 0
        if seg.steps - done == 0:
            continue
        project = f"seg{iseg:03d}"
        for old in folder.glob(f"{project}*"):      # CP2K appends to existing trajectory files
            old.unlink()
        restart = None
        if resumed:
            restart = folder / f"{project}-from.restart.inp"
            restart.write_text(resume["meta"]["cp2k_restart"])
        (folder / f"{project}.inp").write_text(md_input(engine, work, seg, seg.steps - done, project,
                                                       None if restart is None else restart.name))
        files = _Files(folder, project, n)
        where = f"segment {iseg} {seg.label!r}"
        log = open(folder / f"{project}.log", "wb")
        proc = subprocess.Popen(cmd + ["-i", f"{project}.inp", "-o", f"{project}.out"], cwd=folder,
                                stdout=log, stderr=subprocess.STDOUT)
        every = seg.sample_every
        todo = seg.steps - done                   # steps of this CP2K run
        n_frames = todo // every if every > 0 else 0
        try:
            k, checked = 1, 0                     # printed frame 0 is the run's start
            while True:
                finished = proc.poll() is not None
                files.poll()
                for rec in files.records[checked:]:
                    if not rec["scf_converged"]:
                        raise ScfNotConverged(f"cp2k: SCF not converged within {engine.settings.max_iterations} "
                                              f"iterations in {where}, step {start_steps[iseg] + done + checked} "
                                              f"(see {files.paths['out']})")
                    checked += 1
                frame = _frame(files, k, k * every, n, want_stress) if k <= n_frames else None
                if frame is not None:
                    pos, v, forces, energy, cell, rec, rtext = frame
                    work.set_cell(cell, scale_atoms=False)
                    work.set_positions(pos)
                    work.set_velocities(v)
                    out = work.copy()
                    out.set_constraint()
                    out.wrap()
                    stress = None if rec.get("stress") is None else _voigt(rec["stress"])
                    engine._attach(out, energy, forces, stress, energy,
                                   {"scf_converged": True, "scf_iterations": rec["scf_iterations"]})
                    at = done + k * every             # step within the segment
                    out.info.update(T_inst=float(work.get_temperature()), step=int(start_steps[iseg]) + at,
                                    time=float(start_times[iseg]) + at * seg.timestep, segment=seg.label,
                                    md_driver="native")
                    engine._run_state = {"segment": iseg, "done": at, "restart": rtext,
                                         "positions": work.get_positions(), "momenta": work.get_momenta(),
                                         "cell": np.array(work.get_cell())}
                    k += 1
                    yield iseg, out
                    files.forget_restart(at - done)       # its text is in the checkpoint now
                    continue
                if finished:
                    break
                time.sleep(POLL)
            if proc.returncode != 0:
                tail = (folder / f"{project}.log").read_text(errors="replace")[-2000:]
                raise EngineError(f"cp2k MD failed in {where} (exit {proc.returncode}); see "
                                  f"{folder / (project + '.out')}: {tail}")
            if k <= n_frames:
                raise EngineError(f"cp2k MD in {where} ended after {k - 1} of {n_frames} frames; see "
                                  f"{files.paths['out']}")
            last = folder / f"{project}-1.restart"
            if not last.exists():
                raise EngineError(f"cp2k MD in {where} wrote no restart file {last}")
            pos, v = restart_state(last.read_text())
            work.set_positions(pos)
            work.set_velocities(v)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()


def _frame(files: _Files, k: int, step: int, n: int, want_stress: bool):
    """All pieces of printed frame ``k`` (run step ``step``), or None while one is missing."""
    parts = [files.xyz_frame(key, k) for key in ("pos", "vel", "frc")]
    if any(p is None for p in parts):
        return None
    cell = files.cell(k)
    if cell is None or len(files.records) <= step:
        return None
    rec = files.records[step]
    if want_stress and "stress" not in rec:
        return None                                 # the stress block of this step is not out yet
    rtext = files.restart_text(step)
    if rtext is None:
        return None
    (c_pos, pos, _), (_, vel, _), (_, frc, _) = parts
    if _step_of(c_pos) != step:
        raise EngineError(f"CP2K printed step {_step_of(c_pos)} where step {step} was expected")
    return pos, vel * _ANG_PER_FS, frc, _energy_of(c_pos), cell, rec, rtext


def _voigt(stress_gpa: np.ndarray) -> np.ndarray:
    """ASE Voigt stress (eV/Å³, positive = tensile) from CP2K's stress tensor in GPa (positive =
    compressive, the sign ASE's CP2K calculator flips too)."""
    s = -np.asarray(stress_gpa) * ase_units.GPa
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
