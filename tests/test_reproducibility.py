"""Pinned CPU kernels (meltpot.reproducibility): the command line sets them before torch loads,
respects what the user set, and ``MELTPOT_CPU_KERNELS=native`` opts out."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from meltpot.reproducibility import PINNED, _cpu_flags, pin_cpu_kernels

AVX2 = {"avx2", "fma"} <= _cpu_flags()


@pytest.mark.skipif(not AVX2, reason="needs an x86-64 CPU with AVX2 and FMA")
def test_pin_sets_only_what_is_unset():
    env = {"MKL_CBWR": "COMPATIBLE"}
    added = pin_cpu_kernels(env)
    assert env["MKL_CBWR"] == "COMPATIBLE" and "MKL_CBWR" not in added
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["DNNL_MAX_CPU_ISA"] == "AVX2"
    assert pin_cpu_kernels({"MELTPOT_CPU_KERNELS": "native"}) == {}


def _capability(extra_env):
    """torch's CPU capability in a fresh process that runs the CLI's pinning first."""
    code = ("from meltpot.reproducibility import pin_cpu_kernels; pin_cpu_kernels(); import torch; "
            "print(torch.backends.cpu.get_cpu_capability())")
    env = {k: v for k, v in os.environ.items() if k not in PINNED and k != "MELTPOT_CPU_KERNELS"}
    out = subprocess.run([sys.executable, "-c", code], env={**env, **extra_env}, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


@pytest.mark.skipif(not AVX2, reason="needs an x86-64 CPU with AVX2 and FMA")
def test_torch_runs_the_pinned_kernels_and_a_user_choice_wins():
    assert _capability({}) == "AVX2"
    assert _capability({"ATEN_CPU_CAPABILITY": "default"}) == "DEFAULT"    # the user's setting is kept


def test_manifest_records_the_kernels(tmp_path):
    from meltpot.manifest import build_manifest

    m = build_manifest({"run_id": "x"})
    assert "torch_cpu_capability" in m["cpu_kernels"] and set(PINNED) <= set(m["cpu_kernels"])
    json.dumps(m, default=str)
