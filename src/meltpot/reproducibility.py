"""The same numbers on every x86 machine: pin the CPU kernels of torch and its maths libraries.

torch picks its vectorised CPU kernels by the instruction set of the machine (AVX2, AVX-512),
and MKL and oneDNN do the same for matrix products. Different kernels round differently: two
machines of one kind, one with AVX-512 and one without, train the same model to weights that
differ in the last bits (measured here: ``ATEN_CPU_CAPABILITY=default`` against ``avx2``, 3
epochs of the default Al training, weights differ by 8e-10). Most stages do not care, but the
λ path amplifies such differences into different feature sets (issue 17).

:func:`pin_cpu_kernels` (called by the ``meltpot`` command line before torch is imported) sets,
on an x86-64 CPU with AVX2 and FMA, ``ATEN_CPU_CAPABILITY=avx2``, ``MKL_CBWR=AVX2`` (MKL's
conditional numerical reproducibility) and ``DNNL_MAX_CPU_ISA=AVX2`` — unless they are set
already, or ``MELTPOT_CPU_KERNELS=native`` asks for the machine's fastest kernels. The networks
here are small, so the cost on AVX-512 machines is small. Runs on the same machine with one
thread are bitwise reproducible either way (checked: a λ step recomputed gives the same bits).
"""

from __future__ import annotations

import os
import platform

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"}


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def pin_cpu_kernels(environ=None) -> dict[str, str]:
    """Set the variables of :data:`PINNED` that are not set yet (see the module docstring);
    returns the ones it set. Must run before torch is imported to take effect."""
    env = os.environ if environ is None else environ
    if env.get("MELTPOT_CPU_KERNELS", "").lower() == "native":
        return {}
    if platform.machine().lower() not in ("x86_64", "amd64") or not {"avx2", "fma"} <= _cpu_flags():
        return {}
    added = {k: v for k, v in PINNED.items() if k not in env}
    env.update(added)
    return added


def cpu_kernels() -> dict:
    """What the manifest records: torch's CPU capability in use and the pinning variables."""
    info = {k: os.environ.get(k) for k in (*PINNED, "MELTPOT_CPU_KERNELS")}
    try:
        import torch

        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - torch missing or too old: nothing to record
        pass
    return info
