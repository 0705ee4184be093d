"""Active learning (meltpot.active): the exploration jobs, the member splits, the selection by
force deviation, the exploration in real LAMMPS (deviation of the dumped frames against the
Python committee; a run stopped by the extrapolation limit counts as failed and keeps its
frames), the held-out errors, the warm start; and two iterations of the loop through Snakemake
(slow), resumed after a stop."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT

from helpers import labelled, make_featureset, random_model
from meltpot.active.data import heldout_frames, member_splits
from meltpot.active.report import committee_errors
from meltpot.active.select import CANDIDATE, KEPT_OUT, classify, quotas, select_frames, stop_decision
from meltpot.active.settings import exploration_jobs
from meltpot.config import validate_config
from meltpot.data.io import read_frames, write_frames
from meltpot.errors import ConfigError, MeltpotError
from meltpot.sampling.labelling import farthest_point_indices, frame_summaries

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
PRESET = ROOT / "config" / "presets" / "lj-active-tiny.yaml"


def _cfg(**active):
    raw = yaml.safe_load(PRESET.read_text())
    raw["active_learning"].update(active)
    return validate_config(raw, source="test", base_dir=ROOT)


# --------------------------------------------------------------------------- config
def test_exploration_jobs_expand_lists_and_carry_md_overrides():
    cfg = _cfg()
    jobs = exploration_jobs(cfg)
    assert [j.id for j in jobs] == ["liquid_T1.2", "liquid_T2", "heat"]
    liq, heat = jobs[1], jobs[2]
    assert liq.protocol == "npt" and liq.T == 2.0 and liq.P == 1.0
    assert liq.overrides["protocols.npt.T"] == 2.0 and liq.overrides["protocols.npt.production_steps"] == 200
    assert liq.overrides["run.thermo_every"] == 20 == cfg["active_learning"]["exploration"]["every"]
    assert liq.overrides["run.dump_every"] == 0          # explore.py dumps every stage itself
    # the ramp's rate gives exactly `steps` steps at the config's timestep
    from meltpot.md.protocols import ramp_steps

    o = heat.overrides
    assert ramp_steps(o["protocols.ramp.T_start"], o["protocols.ramp.T_stop"], o["protocols.ramp.rate"],
                      cfg["md"]["timestep"]) == 200
    # the overrides make a valid md config (the protocol renders)
    from meltpot.md.plan import apply_overrides, render

    md_cfg = apply_overrides(cfg, "ramp", heat.override_args())
    assert md_cfg["md"]["protocols"]["ramp"]["phase"] == "fcc" and render(md_cfg, "ramp").total_steps == 200


@pytest.mark.parametrize("change, message", [
    ({"trust_lo": 1.0, "trust_hi": 0.5}, "trust_lo = 1.0 must be below trust_hi"),
    ({"exploration": {"jobs": [{"id": "r", "protocol": "ramp", "T_start": 1.0, "steps": 10}]}}, "needs T_stop"),
    ({"exploration": {"jobs": [{"id": "a", "protocol": "npt", "steps": 10}]}}, "needs T"),
    ({"exploration": {"jobs": [{"id": "a_T1", "protocol": "npt", "T": 1.0, "steps": 10},
                               {"id": "a", "protocol": "npt", "T": [1.0, 2.0], "steps": 10}]}}, "repeat"),
    ({"committee": 1}, "committee"),
    ({"exploration": {"jobs": [{"id": "a", "protocol": "npt", "T": 1.0, "steps": 10, "start": "gas"}]}},
     r"start state\(s\) \['gas'\] are not states of the initial data"),
    ({"exploration": {"jobs": [{"id": "a", "protocol": "npt", "T": 1.0, "steps": 10}], "halt_deviation": 1.5,
                      "halt_window": 3, "halt_clip": 1.0}}, "halt_clip = 1.0 must be above halt_deviation = 1.5"),
])
def test_bad_active_learning_block_fails_before_any_work(change, message):
    raw = yaml.safe_load(PRESET.read_text())
    raw["active_learning"].update(change)
    with pytest.raises(ConfigError, match=message):
        validate_config(raw, source="test", base_dir=ROOT)


@pytest.mark.parametrize("active, route, message", [(False, "plugin", "needs active_learning.enabled"),
                                                     (True, "mliap", "route plugin, not mliap")])
def test_validating_the_final_committee_needs_the_loop_and_the_plugin(active, route, message):
    raw = yaml.safe_load(PRESET.read_text())
    raw["active_learning"]["enabled"] = active
    raw["validation_md"] = {"model": "active", "route": route}
    with pytest.raises(ConfigError, match=message):
        validate_config(raw, source="test", base_dir=ROOT)


def test_active_learning_needs_force_training():
    raw = yaml.safe_load(PRESET.read_text())
    raw["training"]["loss"] = {"energy": 1.0, "forces": 0.0}
    with pytest.raises(ConfigError, match="training.loss.forces"):
        validate_config(raw, source="test", base_dir=ROOT)


# --------------------------------------------------------------------------- selection pieces
def test_classify_and_quotas():
    assert list(classify([0.01, 0.05, 0.2, 0.35, 0.4], 0.05, 0.35)) == \
        ["accurate", CANDIDATE, CANDIDATE, CANDIDATE, KEPT_OUT]
    assert quotas({"a": 3, "b": 2}, 10) == {"a": 3, "b": 2}
    # one per job with candidates, the other 7 in proportion to the 89, 8, 0 left (6.42, 0.58, 0)
    assert quotas({"a": 90, "b": 9, "c": 1, "d": 0}, 10) == {"a": 7, "b": 2, "c": 1, "d": 0}
    rng = np.random.default_rng(3)
    for _ in range(200):
        counts = {k: int(c) for k, c in zip("abcdef", rng.integers(0, 30, 6))}
        n = int(rng.integers(1, 60))
        q = quotas(counts, n)
        assert sum(q.values()) == min(n, sum(counts.values()))
        assert all(0 <= q[k] <= counts[k] for k in counts)
        if n >= sum(c > 0 for c in counts.values()):     # every job with candidates gets one
            assert all(q[k] >= 1 for k, c in counts.items() if c > 0)


def _index(files_frames):
    rows = []
    for file, n in files_frames:
        rows += [{"file": file, "file_index": i, "state_id": Path(file).stem} for i in range(n)]
    df = pd.DataFrame(rows)
    df.insert(0, "frame_id", np.arange(len(df)))
    return df


def test_member_splits_hold_out_the_test_frames_and_keep_each_frames_place(tmp_path):
    root = tmp_path / "dataset"
    heldout = pd.DataFrame({"source": [str((root / "../frames/a.extxyz").resolve())] * 3, "file_index": [0, 1, 2]})
    first = _index([("../frames/a.extxyz", 40), ("../frames/b.extxyz", 40)])
    pool, members = member_splits(first, root, heldout, members=3, seed=11, validation_fraction=0.25)
    test = pool["split"] == "test"
    assert test.sum() == 3 and pool.loc[~test, "split"].eq("train").all()
    for m in members:
        assert (m["split"] == "test").sum() == 3 and m.loc[test.to_numpy(), "split"].eq("test").all()
        assert 8 <= (m["split"] == "validation").sum() <= 32
    assert not members[0]["split"].equals(members[1]["split"])        # each member its own split
    # the next iteration adds labelled frames: every old frame keeps its split in every member
    later = _index([("../frames/a.extxyz", 40), ("../active/iter_000/labelled.extxyz", 6),
                    ("../frames/b.extxyz", 40)])
    _, again = member_splits(later, root, heldout, members=3, seed=11, validation_fraction=0.25)
    key = ["file", "file_index"]
    for m0, m1 in zip(members, again):
        old = first[key].assign(split=m0["split"].astype(str).to_numpy())
        new = later[key].assign(split=m1["split"].astype(str).to_numpy())
        assert old.merge(new, on=key, suffixes=("_0", "_1")).eval("split_0 == split_1").all()


def _explore_dir(path, job, deviations, status="ok", rng=None, close_at=()):
    """An exploration folder as `explore` writes it: Al frames with the given max force deviations."""
    path.mkdir(parents=True)
    frames = []
    for k, d in enumerate(deviations):
        atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
        atoms.positions += rng.normal(0, 0.05 + 0.1 * k / len(deviations), atoms.positions.shape)
        if k in close_at:
            atoms.positions[1] = atoms.positions[0] + [0.5, 0, 0]
        atoms.info.update(state_id=job, explore_job=job, step=10 * k, max_devi_f=float(d), avg_devi_f=float(d) / 2,
                          devi_e=0.001, extrapolating=0, phase="liquid", T_target=1000.0, P_target=0.0)
        frames.append(atoms)
    write_frames(path / "frames.extxyz", frames, format="extxyz")
    (path / "exploration.json").write_text(json.dumps({"job": job, "status": status}))
    return frames


def _al_cfg(**active):
    raw = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    raw["training"]["loss"] = {"energy": 1.0, "forces": 1.0}
    raw["active_learning"] = {"enabled": True, "trust_lo": 0.05, "trust_hi": 0.5, "max_candidates": 5,
                              "failed_frames": 2, "exploration": {"jobs": [
                                  {"id": "liq", "protocol": "npt", "T": 1000, "steps": 100}]}, **active}
    return validate_config(raw, source="test", base_dir=ROOT)


def test_select_frames_classifies_caps_by_fps_and_decides(tmp_path):
    rng = np.random.default_rng(5)
    cfg = _al_cfg()
    fs = make_featureset(["Al"])
    a = _explore_dir(tmp_path / "a", "a", [0.01, 0.1, 0.2, 0.3, 0.4, 0.45, 0.2, 0.1, 0.3, 0.6], rng=rng, close_at=(8,))
    _explore_dir(tmp_path / "b", "b", [0.01, 0.02, 0.9], rng=rng)
    _explore_dir(tmp_path / "c", "c", [0.01, 0.02, 0.03, 0.7], status="failed", rng=rng)
    sel = select_frames(cfg, [tmp_path / "a", tmp_path / "b", tmp_path / "c"], iteration=0, featureset=fs)
    t, st = sel.table, sel.status
    # a: 7 in the window (the close pair of frame 8 is kept out), 1 above; b: none; c (failed): its
    # last two frames below trust_hi become candidates whatever their deviation
    assert t.loc[t["job"] == "a", "class"].tolist() == ["accurate"] + [CANDIDATE] * 7 + [KEPT_OUT, KEPT_OUT]
    assert t.loc[t["job"] == "c", "class"].tolist() == ["accurate", CANDIDATE, CANDIDATE, KEPT_OUT]
    assert (st["explored"], st["candidate"], st["kept_out"], st["too_close"]) == (17, 9, 4, 1)
    assert st["failed_runs"] == 1 and st["failed_jobs"] == ["c"]
    assert stop_decision(cfg["active_learning"], st) == {
        "iteration": 0, "converged": False, "stop": False, "reason": "continue", "max_iterations": 5,
        "converged_fraction": 0.01, "converged_deviation": None, "unconverged_fraction": 9 / 17}
    # 5 of 9: a gets 4 (7/9 of 5, rounded by largest remainder), c gets 1; a's by FPS in descriptor space
    chosen = t[t["selected"]]
    assert len(sel.frames) == st["selected"] == 5 and chosen["job"].value_counts().to_dict() == {"a": 4, "c": 1}
    cand_a = [k for k in range(10) if t.loc[k, "class"] == CANDIDATE]
    fps = np.sort(np.array(cand_a)[farthest_point_indices(frame_summaries([a[k] for k in cand_a], fs), 4)])
    assert chosen.loc[chosen["job"] == "a", "step"].tolist() == [10 * k for k in fps]
    assert all(f.calc is None and f.info["sampled_from"].startswith("active:0:") for f in sel.frames)
    # convergence: few candidates and no failed run; or the iteration limit
    for sub in ("d", "e"):
        _explore_dir(tmp_path / sub, sub, [0.01] * 120 + [0.1], rng=rng)
    done = select_frames(cfg, [tmp_path / "d", tmp_path / "e"], iteration=1, featureset=fs).status
    assert done["candidate_fraction"] == pytest.approx(2 / 242)
    dec = stop_decision(cfg["active_learning"], done)
    assert dec["converged"] and dec["stop"] and dec["reason"] == "converged"
    # a stricter threshold: not converged; and a failed run never converges
    assert not stop_decision({**cfg["active_learning"], "converged_fraction": 0.005}, done)["converged"]
    assert not stop_decision(cfg["active_learning"], {**done, "failed_runs": 1})["converged"]
    # a convergence threshold of its own: frames above it (and kept out) count, not the candidates
    hot = {"f": [0.01] * 100 + [0.1] * 20 + [0.3], "g": [0.01] * 120 + [0.9]}
    for sub, devi in hot.items():
        _explore_dir(tmp_path / sub, sub, devi, rng=rng)
    hot_sel = select_frames(cfg, [tmp_path / "f", tmp_path / "g"], iteration=1, featureset=fs)
    assert hot_sel.status["candidate_fraction"] == pytest.approx(21 / 242)
    assert not stop_decision(cfg["active_learning"], hot_sel.status, hot_sel.table)["converged"]
    own = {**cfg["active_learning"], "converged_deviation": 0.2}
    dec = stop_decision(own, hot_sel.status, hot_sel.table)
    assert dec["unconverged_fraction"] == pytest.approx(2 / 242) and dec["converged"]   # the 0.3 and the kept-out 0.9
    assert not stop_decision({**own, "converged_deviation": 0.05}, hot_sel.status, hot_sel.table)["converged"]
    with pytest.raises(MeltpotError, match="needs the selection's deviation table"):
        stop_decision(own, hot_sel.status)
    last = select_frames(cfg, [tmp_path / "a"], iteration=1, featureset=fs).status
    dec = stop_decision(_al_cfg(max_iterations=2)["active_learning"], last)
    assert not dec["converged"] and dec["stop"] and dec["reason"] == "max_iterations"
    # the selection itself does not depend on the stop settings
    pd.testing.assert_frame_equal(
        select_frames(_al_cfg(max_iterations=2), [tmp_path / "a"], iteration=1, featureset=fs).table,
        select_frames(cfg, [tmp_path / "a"], iteration=1, featureset=fs).table)


def _rattled(rng, n, sigma, label=True):
    """n rattled 32-atom Al lattices, labelled by EMT unless ``label`` is False."""
    out = []
    for _ in range(n):
        a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
        a.positions += rng.normal(0, sigma, a.positions.shape)
        out.append(labelled(a, state_id="s") if label else a)
    return out


# --------------------------------------------------------------------------- held-out errors, warm start
def test_committee_errors_against_the_ase_calculator(tmp_path):
    from meltpot.model.calculator import MeltpotCalculator
    from meltpot.model.modelfile import save_model

    rng = np.random.default_rng(2)
    fs = make_featureset(["Al"])
    frames = _rattled(rng, 3, 0.1)
    paths = []
    for seed in (1, 2):
        path = tmp_path / f"m{seed}.pt"
        save_model(random_model(fs, frames, seed=seed, refs={"Al": -3.0}), path, units="metal")
        paths.append(path)
    res = committee_errors(paths, frames)
    e_err = {p: [] for p in paths}
    f_err = {p: [] for p in paths}
    mean_f = []
    for fr in frames:
        ref_e, ref_f = fr.get_potential_energy(), fr.get_forces()
        fs_k = []
        for p in paths:
            a = fr.copy()
            a.calc = MeltpotCalculator(str(p))
            e_err[p].append((a.get_potential_energy() - ref_e) / len(a))
            f_err[p].append((a.get_forces() - ref_f).ravel())
            fs_k.append(a.get_forces())
        mean_f.append((np.mean(fs_k, axis=0) - ref_f).ravel())
    for k, p in enumerate(paths):
        assert res["member_energy_rmse"][k] == pytest.approx(np.sqrt(np.mean(np.square(e_err[p]))), rel=1e-9)
        assert res["member_force_rmse"][k] == pytest.approx(np.sqrt(np.mean(np.square(f_err[p]))), rel=1e-9)
    assert res["mean_force_rmse"] == pytest.approx(np.sqrt(np.mean(np.square(mean_f))), rel=1e-9)
    assert res["force_rmse"] == pytest.approx(np.mean(res["member_force_rmse"]))


def test_heldout_set_is_the_initial_test_split_plus_test_files(tmp_path):
    from meltpot.data.dataset import build_dataset

    rng = np.random.default_rng(4)
    cfg = _al_cfg()
    frames = _rattled(rng, 10, 0.08)
    write_frames(tmp_path / "frames.extxyz", frames, format="extxyz")
    write_frames(tmp_path / "extra.extxyz", frames[:2], format="extxyz")
    cfg["split"] = {**cfg["split"], "by": "frame", "train": 0.6, "validation": 0.2, "test": 0.2, "holdout_states": []}
    ds = build_dataset(cfg, [tmp_path / "frames.extxyz"], tmp_path / "ds")
    cfg["active_learning"]["test_files"] = ["extra.extxyz"]
    got, table = heldout_frames(cfg, ds.index_path, config_dir=tmp_path)
    assert len(got) == 2 + 2 and (table["file_index"] >= 0).sum() == 2
    ids = table.loc[table["file_index"] >= 0, "file_index"].tolist()
    for fr, i in zip(got[:2], ids):
        np.testing.assert_array_equal(fr.positions, frames[i].positions)


def test_train_init_starts_from_the_given_model_and_refuses_another_architecture(tmp_path):
    from meltpot.model.modelfile import load_model, save_model
    from meltpot.train.run import warm_start

    rng = np.random.default_rng(1)
    fs = make_featureset(["Al"])
    frames = _rattled(rng, 2, 0.08)
    start = random_model(fs, frames, seed=3, refs={"Al": -2.5})
    save_model(start, tmp_path / "start.pt", units="metal")
    fresh = random_model(fs, frames, seed=9, refs={"Al": -1.0})
    prep = warm_start(fresh, tmp_path / "start.pt", {"scaling": "cache", "reference_energies": {"Al": -1.0}})
    loaded = load_model(tmp_path / "start.pt")
    for (name, p), q in zip(fresh.state_dict().items(), loaded.state_dict().values()):
        assert np.array_equal(p.numpy(), q.numpy()), name
    assert prep["reference_energies"] == {"Al": -2.5} and prep["warm_start"].endswith("start.pt")
    other = random_model(fs, frames, seed=9, hidden=(5,))
    with pytest.raises(Exception, match="hidden layers"):
        warm_start(other, tmp_path / "start.pt", prep)


# --------------------------------------------------------------------------- exploration in LAMMPS
@pytest.fixture(scope="module")
def plugin():
    from meltpot.plugin.build import build_plugin

    return build_plugin()


def _explore_cfg(steps=60, **exploration):
    ex = {"n_atoms": 32, "every": 10, "jobs": [{"id": "fcc", "protocol": "nvt", "phase": "fcc", "T": 600,
                                                "steps": steps}], **exploration}
    return _al_cfg(exploration=ex)


def _committee(tmp_path, narrow_range=False):
    from meltpot.descriptors.compute import AtomsDescriptor
    from meltpot.export.torchscript import write_committee

    fs = make_featureset(["Al"])
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    frames = _rattled(np.random.default_rng(0), 2, 0.1, label=False)
    members = [random_model(fs, frames, seed=s, refs={"Al": -3.0}) for s in (21, 22)]
    G = AtomsDescriptor(fs).per_element(atoms if narrow_range else frames[0])
    lo = {el: g.min(0) - (0 if narrow_range else 10) for el, g in G.items()}
    hi = {el: g.max(0) + (0 if narrow_range else 10) for el, g in G.items()}
    return members, write_committee(members, tmp_path / "committee.pt", lo, hi)


def test_exploration_deviation_equals_the_python_committee_on_the_dumped_frames(tmp_path, plugin):
    from meltpot.active.explore import explore
    from meltpot.model.committee import Committee

    members, path = _committee(tmp_path)
    rec = explore(_explore_cfg(), "fcc", path, plugin, tmp_path / "run", iteration=3)
    assert rec["status"] == "ok" and rec["frames"] == 7 and rec["deviation_lines"] == 7
    frames = read_frames(tmp_path / "run" / "frames.extxyz")
    assert [f.info["step"] for f in frames] == list(range(0, 61, 10))
    committee = Committee(members)
    for fr in frames[1:]:        # (step 0: the perfect lattice, zero forces by symmetry)
        ref = committee.deviation(fr)
        # the dump's positions have 12 significant digits
        assert fr.info["max_devi_f"] == pytest.approx(ref["max_devi_f"], rel=1e-7)
        assert fr.info["avg_devi_f"] == pytest.approx(ref["avg_devi_f"], rel=1e-7)
        assert fr.info["devi_e"] == pytest.approx(ref["devi_e"], rel=1e-6, abs=1e-12)
        assert fr.info["iteration"] == 3 and fr.info["state_id"] == "fcc" and fr.calc is None
    assert frames[1].info["max_devi_f"] > 0


def test_exploration_stopped_by_the_extrapolation_limit_is_failed_and_keeps_its_frames(tmp_path, plugin):
    from meltpot.active.explore import explore

    _, path = _committee(tmp_path, narrow_range=True)      # the lattice's own range: heating leaves it
    cfg = _explore_cfg(extrapolation_limit=0)
    rec = explore(cfg, "fcc", path, plugin, tmp_path / "run")
    assert rec["status"] == "failed" and "extrapolat" in rec["error"].lower() + str(rec["warnings"]).lower()
    assert rec["steps_run"] < 60
    frames = read_frames(tmp_path / "run" / "frames.extxyz") if rec["frames"] else []
    assert len(frames) == rec["frames"] and all(f.info["step"] <= rec["steps_run"] for f in frames)


def test_exploration_halted_by_the_force_deviation_is_failed_at_the_first_line_above(tmp_path, plugin):
    from meltpot.active.explore import explore
    from meltpot.model.committee import read_deviation

    _, path = _committee(tmp_path)
    free = explore(_explore_cfg(), "fcc", path, plugin, tmp_path / "free")
    devi = read_deviation(tmp_path / "free" / "model_devi.out")
    halt = float(devi["max_devi_f"].iloc[3]) * 0.999      # the 4th line (step 30) is the first above, or earlier
    first = int(devi.loc[devi["max_devi_f"] > halt, "step"].iloc[0])
    rec = explore(_explore_cfg(halt_deviation=halt), "fcc", path, plugin, tmp_path / "halted")
    assert free["status"] == "ok" and rec["status"] == "failed" and rec["steps_run"] == first < 60
    frames = read_frames(tmp_path / "halted" / "frames.extxyz")
    # LAMMPS halts before it dumps the step that crossed: the frames before it
    assert [f.info["step"] for f in frames] == list(range(0, first, 10))
    # the same trajectory up to the halt (same seeds): the same deviations
    np.testing.assert_allclose([f.info["max_devi_f"] for f in frames],
                               devi.loc[devi["step"] < first, "max_devi_f"], rtol=1e-12)


def test_exploration_halt_on_the_windowed_mean_of_the_deviation(tmp_path, plugin):
    """With halt_window = 3 the run stops at the first line where the mean max force deviation of the
    last three lines exceeds halt_deviation (not at a single line above it); a threshold that no
    window mean crosses lets the run finish. The steps are predicted from a free run's deviations
    (same seeds, same trajectory)."""
    from meltpot.active.explore import explore
    from meltpot.model.committee import read_deviation

    _, path = _committee(tmp_path)
    free = explore(_explore_cfg(steps=120), "fcc", path, plugin, tmp_path / "free")
    d = read_deviation(tmp_path / "free" / "model_devi.out")
    steps, dev = d["step"].to_numpy(), d["max_devi_f"].to_numpy()
    mean3 = np.convolve(dev, np.ones(3) / 3, mode="valid")       # mean3[k]: lines k, k+1, k+2

    def first_window_above(halt):
        k = np.flatnonzero(mean3 > halt)
        return int(steps[k[0] + 2]) if len(k) else None

    # a threshold that a single line crosses before any window mean does
    for halt in np.sort(dev[1:]) * 0.999:
        single = int(steps[np.flatnonzero(dev > halt)[0]])
        window = first_window_above(halt)
        if window is not None and window > single:
            break
    else:
        pytest.skip("no line of this trajectory crosses a threshold before its window mean does")
    one = explore(_explore_cfg(steps=120, halt_deviation=float(halt)), "fcc", path, plugin, tmp_path / "one")
    three = explore(_explore_cfg(steps=120, halt_deviation=float(halt), halt_window=3), "fcc", path, plugin,
                    tmp_path / "three")
    assert free["status"] == "ok"
    assert one["status"] == "failed" and one["steps_run"] == single
    assert three["status"] == "failed" and three["steps_run"] == window > single
    # each line clipped before the mean: the step predicted from the clipped deviations; a clip that
    # moves the halt later than the plain mean's (or removes it) where this trajectory has one

    def clipped_halt(clip):
        k = np.flatnonzero(np.convolve(np.minimum(dev, clip), np.ones(3) / 3, mode="valid") > halt)
        return k, (int(steps[k[0] + 2]) if len(k) else None)

    clips = [c for c in np.sort(dev[dev > halt]) * 1.0001 if clipped_halt(c)[1] != window]
    clip = float(clips[-1]) if clips else float(halt) * 1.2
    k, _ = clipped_halt(clip)
    capped = explore(_explore_cfg(steps=120, halt_deviation=float(halt), halt_window=3, halt_clip=clip), "fcc", path,
                     plugin, tmp_path / "clipped")
    if len(k):
        assert capped["status"] == "failed" and capped["steps_run"] == int(steps[k[0] + 2]) >= window
        assert not clips or capped["steps_run"] > window
        # the value LAMMPS halted on is the mean of the clipped lines, not of the raw ones
        value = float(capped["error"].split("with value ")[1].split()[0])
        assert value == pytest.approx(np.minimum(dev, clip)[k[0]:k[0] + 3].mean(), rel=1e-9)
        assert value < dev[k[0]:k[0] + 3].mean() or dev[k[0]:k[0] + 3].max() <= clip
    else:
        assert capped["status"] == "ok" and capped["steps_run"] == 120
    # above every window mean but below the largest line: the run goes to its end
    high = float(mean3.max()) * 1.001
    assert high < dev.max()
    ok = explore(_explore_cfg(steps=120, halt_deviation=high, halt_window=3), "fcc", path, plugin, tmp_path / "ok")
    assert ok["status"] == "ok" and ok["steps_run"] == 120


def test_exploration_started_from_a_data_frame_skips_melting(tmp_path, plugin):
    """A `start` job begins from a frame of the named state (drawn by the iteration's seed), with
    no melt stage; an unknown state is a clear error naming the index and its states."""
    from meltpot.active.explore import START_FILE, explore

    _, path = _committee(tmp_path)
    rng = np.random.default_rng(4)
    liquid = _rattled(rng, 3, 0.25, label=False)
    for k, a in enumerate(liquid):
        a.positions += rng.normal(0, 0.05, a.positions.shape)
    data = tmp_path / "data"
    data.mkdir()
    write_frames(data / "liquid.extxyz", liquid, format="extxyz")
    write_frames(data / "fcc.extxyz", _rattled(rng, 2, 0.01, label=False), format="extxyz")
    index = pd.DataFrame({"frame_id": range(5), "state_id": ["liquid_1250K"] * 3 + ["fcc_300K"] * 2,
                          "file": ["liquid.extxyz"] * 3 + ["fcc.extxyz"] * 2, "file_index": [0, 1, 2, 0, 1]})
    index.to_parquet(data / "index.parquet")
    jobs = [{"id": "hot", "protocol": "npt", "phase": "liquid", "T": 900, "steps": 30, "start": "liquid_1250K"}]
    cfg = _explore_cfg(jobs=jobs, melt_steps=500, cool_steps=500)
    recs = [explore(cfg, "hot", path, plugin, tmp_path / f"run{it}", iteration=it, index=data / "index.parquet")
            for it in (0, 1, 2, 3)]
    for it, rec in enumerate(recs):
        run = tmp_path / f"run{it}"
        src = rec["started_from"]
        assert rec["status"] == "ok" and src["state_id"] == "liquid_1250K" and src["file"].endswith("liquid.extxyz")
        # the run began at the data frame's positions (step 0 of the dump), and ran only its 30 steps
        first = read_frames(run / "frames.extxyz")[0]
        assert first.info["step"] == 0
        frac = first.get_scaled_positions(wrap=False) - liquid[src["file_index"]].get_scaled_positions(wrap=False)
        np.testing.assert_allclose(frac - np.round(frac), 0, atol=1e-9)    # LAMMPS wraps into the box
        np.testing.assert_allclose(read_frames(run / START_FILE)[0].cell[:], liquid[0].cell[:], atol=1e-12)
        assert rec["total_steps"] == 30          # no melt or cool stage
    assert len({r["started_from"]["file_index"] for r in recs}) > 1     # drawn per iteration
    again = explore(cfg, "hot", path, plugin, tmp_path / "again", iteration=2, index=data / "index.parquet")
    assert again["started_from"] == recs[2]["started_from"]
    bad = _explore_cfg(jobs=[dict(jobs[0], start="liquid_950K")])    # a state of the config, not of this index
    with pytest.raises(MeltpotError, match=r"start state 'liquid_950K' has no frame in .*index.parquet .*'fcc_300K'"):
        explore(bad, "hot", path, plugin, tmp_path / "bad", index=data / "index.parquet")


# --------------------------------------------------------------------------- the loop through Snakemake
@pytest.mark.slow
def test_two_iterations_through_snakemake_resume_after_a_stop(tmp_path):
    for name in ("Snakefile", "workflow", "config", "report", "envs"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", OMP_NUM_THREADS="1")
    run = tmp_path / "results" / "lj-active-tiny"
    one = tmp_path / "one_iteration.yaml"     # the preset with max_iterations 1
    raw = yaml.safe_load(PRESET.read_text())
    raw["active_learning"]["max_iterations"] = 1
    one.write_text(yaml.safe_dump(raw))

    def snakemake(target, configfile=PRESET):
        res = subprocess.run([str(BIN / "snakemake"), target, "--cores", "2", "--configfile", str(configfile)],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
        return res

    # a loop that stopped at max_iterations 1 is extended by raising it: iteration 0's exploration,
    # training and selection are not redone, only its stop decision (then it labels and goes on)
    snakemake("results/lj-active-tiny/active/iterations.csv", one)
    first = pd.read_csv(run / "active" / "iterations.csv")
    assert first["iteration"].tolist() == [0] and first["reason"].tolist() == ["max_iterations"]
    it0 = run / "active" / "iter_000"
    assert not (it0 / "labelled.extxyz").exists()
    stamps = {p: p.stat().st_mtime_ns for p in it0.rglob("*") if p.is_file() and p.name != "stop.json"}
    res = snakemake("results/lj-active-tiny/active/iterations.csv")
    assert "rule al_label" in res.stderr and "rule al_train" in res.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert json.loads((it0 / "stop.json").read_text())["reason"] == "continue"
    table = pd.read_csv(run / "active" / "iterations.csv")
    assert table["iteration"].tolist() == [0, 1] and table["reason"].tolist() == ["continue", "max_iterations"]
    for it, row in table.iterrows():     # every dumped frame of every job (melting stages too) is classified
        recs = [json.loads(p.read_text()) for p in (run / "active" / f"iter_{it:03d}" / "explore").glob("*/exploration.json")]
        assert len(recs) == 3 and row["explored"] == sum(r["frames"] for r in recs) > 33
    assert (table["failed_runs"] == 0).all()
    s0 = json.loads((it0 / "select" / "selection.json").read_text())
    assert s0["explored"] == s0["accurate"] + s0["candidate"] + s0["kept_out"] and s0["selected"] <= 6
    # iteration 0 labelled its selection with the reference (LAMMPS LJ single points)
    lab = read_frames(it0 / "labelled.extxyz")
    assert len(lab) == s0["selected"] == table["added"][0] and {f.info["engine"] for f in lab} == {"lammps"}
    # versioned datasets: iteration 1 = iteration 0's frames + the labelled ones
    idx0 = pd.read_parquet(it0 / "dataset" / "index.parquet")
    idx1 = pd.read_parquet(run / "active" / "iter_001" / "dataset" / "index.parquet")
    assert len(idx1) == len(idx0) + len(lab) == table["dataset_frames"][1]
    # the held-out frames are test in every member's split, in both iterations
    held = pd.read_csv(run / "active" / "heldout" / "heldout.csv")
    for it, idx in (("iter_000", idx0), ("iter_001", idx1)):
        for k in range(2):
            m = pd.read_parquet(run / "active" / it / "dataset" / f"member_{k}.parquet")
            assert (m["split"] == "test").sum() == len(held)
    # warm start: iteration 1's members start from iteration 0's
    log = (run / "logs" / "active" / "iter_001" / "train_0.log").read_text()
    assert "training an HDNNP" in log
    m1 = torch_load_metadata(run / "active" / "iter_001" / "committee" / "member_0.pt")
    assert m1["epochs"] <= 20
    assert np.isfinite(table[["test_energy_rmse", "test_force_rmse", "test_mean_force_rmse"]].to_numpy()).all()
    for png in ("deviation_hist.png", "rmse_vs_frames.png"):
        assert (run / "active" / png).stat().st_size > 5000
    # final_dataset: the run's own dataset (dense model, feature selection) is the loop's final data
    final = tmp_path / "final_dataset.yaml"
    raw = yaml.safe_load(PRESET.read_text())
    raw["active_learning"]["final_dataset"] = True
    final.write_text(yaml.safe_dump(raw))
    res = snakemake("results/lj-active-tiny/dataset/splits.parquet", final)
    assert "rule al_" not in res.stderr, res.stderr[-3000:]       # the loop is done: nothing of it reruns
    assert (run / "dataset" / "index.parquet").exists(), res.stderr[-3000:]
    idx = pd.read_parquet(run / "dataset" / "index.parquet")
    assert len(idx) == len(idx1)
    assert idx["state_id"].value_counts().to_dict() == idx1["state_id"].value_counts().to_dict()
    assert len(pd.read_parquet(run / "dataset" / "splits.parquet")) == len(idx1)


def torch_load_metadata(path):
    from meltpot.model.modelfile import read_payload

    return read_payload(path)["metadata"]

