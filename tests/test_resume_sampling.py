"""A killed sampling run resumes from its last frame and gives the frames of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from meltpot.config import validate_config
from meltpot.data.io import read_frames
from meltpot.reference import make_engine
from meltpot.sampling.checkpoint import checkpoint_path, partial_path
from meltpot.sampling.grid import expand_states
from meltpot.sampling.protocols import sample_unit

from helpers import Killed, KilledAfter


def _cfg(thermostat="nose-hoover", ensemble="nvt"):
    state = {"id": "liq", "phase": "liquid", "T": 900.0}
    if ensemble == "npt":
        state["P"] = 0.0
    else:
        state["density"] = 6.0
    return validate_config({
        "run_id": "t", "seed": 5, "units": "metal", "elements": ["Al", "Ni"],
        "reference": {"engine": "ase", "calculator": "EMT", "thermostat": thermostat},
        "md": {"timestep": 0.002},
        "sampling": {"n_atoms": 32, "melt_temperature": 2000, "melt_steps": 10, "equilibration_steps": 10,
                     "production_steps": 60, "sample_every": 10,
                     "states": [dict(state, composition={"Al": 0.75, "Ni": 0.25})]}})


def _engine(cfg):
    return make_engine(cfg["reference"], cfg["elements"], cfg["units"])


@pytest.mark.parametrize("thermostat,ensemble", [("nose-hoover", "nvt"), ("langevin", "nvt"),
                                                 ("nose-hoover", "npt")])
def test_interrupted_run_resumes_to_the_same_frames(tmp_path, thermostat, ensemble):
    cfg = _cfg(thermostat, ensemble)
    unit = expand_states(cfg)[0]
    full = tmp_path / "full.extxyz"
    sample_unit(cfg, unit, _engine(cfg), full, progress=False)

    out = tmp_path / "resumed.extxyz"
    with pytest.raises(Killed):
        sample_unit(cfg, unit, KilledAfter(_engine(cfg), 3), out, progress=False)
    assert not out.exists() and checkpoint_path(out).exists()
    written = partial_path(out).read_bytes()
    with open(partial_path(out), "a") as fh:      # a frame cut off half-way by the kill
        fh.write("32\nLattice=\"1 0 0")
    summary = sample_unit(cfg, unit, _engine(cfg), out, progress=False)
    assert summary["resumed_after_frames"] == 3
    assert out.read_bytes().startswith(written)   # the frames already written were kept as they were
    assert not checkpoint_path(out).exists() and not partial_path(out).exists()
    a, b = read_frames(full), read_frames(out)
    assert len(a) == len(b) == 6
    # equal to round-off: the frames before the kill bit for bit; after it, EMT's neighbour list is
    # rebuilt at the restart, which changes the order of its sums (1e-15 Å after 60 steps)
    for fa, fb in zip(a, b):
        np.testing.assert_allclose(fb.positions, fa.positions, rtol=0, atol=1e-11)
        np.testing.assert_allclose(fb.get_forces(), fa.get_forces(), rtol=0, atol=1e-10)
        assert fb.get_potential_energy() == pytest.approx(fa.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(fb.cell.array, fa.cell.array, rtol=0, atol=1e-11)
        assert fa.info["step"] == fb.info["step"]
    for fa, fb in zip(a[:3], b[:3]):
        assert np.array_equal(fa.positions, fb.positions)


def test_checkpoint_of_another_config_is_not_used(tmp_path):
    cfg = _cfg()
    unit = expand_states(cfg)[0]
    out = tmp_path / "u.extxyz"
    with pytest.raises(Killed):
        sample_unit(cfg, unit, KilledAfter(_engine(cfg), 2), out, progress=False)
    cfg2 = dict(cfg, seed=6)
    summary = sample_unit(cfg2, unit, _engine(cfg2), out, progress=False)
    assert summary["resumed_after_frames"] == 0 and len(read_frames(out)) == 6


def test_killed_sample_command_resumes(tmp_path):
    """`meltpot sample` killed with SIGKILL mid-run, then run again: same frames as one run."""
    cfg = _cfg()
    cfg["sampling"].update(production_steps=400, sample_every=20)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in cfg.items() if not k.startswith("_")}))
    cmd = [sys.executable, "-m", "meltpot.cli", "sample", str(path), "--unit", "liq", "--no-progress"]
    subprocess.run(cmd + ["--out", str(tmp_path / "full.extxyz")], check=True, capture_output=True)
    out = tmp_path / "killed.extxyz"
    proc = subprocess.Popen(cmd + ["--out", str(out)], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if checkpoint_path(out).exists() and partial_path(out).stat().st_size > 0 \
                and len(read_frames(partial_path(out))) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be killed")
    done = subprocess.run(cmd + ["--out", str(out), "--summary", str(tmp_path / "s.json")], check=True,
                          capture_output=True, text=True)
    import json

    assert json.loads((tmp_path / "s.json").read_text())["resumed_after_frames"] >= 3, done.stderr
    a, b = read_frames(tmp_path / "full.extxyz"), read_frames(out)
    assert len(a) == len(b) == 20
    for x, y in zip(a, b):   # to round-off (see above)
        np.testing.assert_allclose(y.positions, x.positions, rtol=0, atol=1e-9)
        np.testing.assert_allclose(y.get_forces(), x.get_forces(), rtol=0, atol=1e-8)
