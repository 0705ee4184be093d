"""Labelling by single points: how many frames are picked, which ones (every k-th; farthest-point
sampling against a brute-force implementation), and single points with drop/fail."""

import numpy as np
import pytest
from ase.build import bulk

from meltpot.config import load_run_featureset, validate_config
from meltpot.data.io import read_frames

from meltpot.errors import ConfigError, EngineError
from meltpot.reference import make_engine
from meltpot.sampling.grid import expand_states
from meltpot.sampling.labelling import (farthest_point_indices, frame_summaries, label_frames, n_chunks,
                                        pick_frames, planned_picks, write_chunks)
from meltpot.sampling.protocols import sample_unit

EMT = {"engine": "ase", "calculator": "EMT"}


def _cfg(**labelling):
    return validate_config({
        "run_id": "t", "seed": 1, "units": "metal", "elements": ["Al"],
        "reference": EMT, "md": {"timestep": 0.002},
        "labelling": {"enabled": True, "sampler": EMT, **labelling},
        "sampling": {"n_atoms": 32, "melt_temperature": 2000, "melt_steps": 20, "equilibration_steps": 20,
                     "production_steps": 100, "sample_every": 10,
                     "states": [{"id": "fcc", "phase": "fcc", "T": 300, "P": 0.0},
                                {"id": "liq", "phase": "liquid", "T": 1500, "density": 2.3},
                                {"id": "md", "phase": "liquid", "T": 1000, "density": 2.3, "aimd": True,
                                 "production_steps": 20}]}})


def _sample(cfg, tmp_path):
    files = []
    for unit in expand_states(cfg):
        if unit.aimd:
            continue
        engine = make_engine(cfg["labelling"]["sampler"], cfg["elements"], cfg["units"])
        sample_unit(cfg, unit, engine, tmp_path / f"{unit.unit_id}.extxyz", progress=False)
        files.append(tmp_path / f"{unit.unit_id}.extxyz")
    return files


def test_planned_picks_and_chunks_from_the_config():
    cfg = _cfg(pick={"method": "every", "every": 3}, chunk_size=4)
    assert planned_picks(cfg) == 2 * 4          # 10 frames per sampled state: 0, 3, 6, 9; AIMD not picked
    assert n_chunks(cfg) == 2
    cfg = _cfg(pick={"method": "fps", "n_frames": 7}, chunk_size=3)
    assert planned_picks(cfg) == 7 and n_chunks(cfg) == 3


@pytest.mark.parametrize("labelling,message", [
    ({"pick": {"method": "fps"}}, "n_frames is required with method fps"),
    ({"pick": {"method": "fps", "n_frames": 21}}, "n_frames = 21 is more than the 20 frames"),
])
def test_bad_labelling_fails_before_any_work(labelling, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(**labelling)


def test_labelling_needs_a_sampler():
    cfg = _cfg()
    raw = {k: v for k, v in cfg.items() if not k.startswith("_")}
    raw["labelling"] = {"enabled": True}
    with pytest.raises(ConfigError, match="labelling.sampler is required"):
        validate_config(raw)


def test_pick_every_and_chunks(tmp_path):
    cfg = _cfg(pick={"method": "every", "every": 3}, chunk_size=3)
    files = _sample(cfg, tmp_path)
    picked = pick_frames(cfg, files)
    assert [(a.info["state_id"], a.info["sampled_index"]) for a in picked] == \
        [(s, k) for s in ("fcc", "liq") for k in (0, 3, 6, 9)]
    sampled = read_frames(files[1])
    for a in picked[4:]:
        assert a.calc is None and a.info["sampled_from"] == str(files[1])
        assert a.info["sampler_energy"] == sampled[a.info["sampled_index"]].get_potential_energy()
    paths = write_chunks(picked, 3, tmp_path / "chunks", n_chunks(cfg))
    assert [len(read_frames(p)) for p in paths] == [3, 3, 2]


def _greedy_fps(X, n):
    """Farthest-point sampling written out: standardise, start farthest from the mean, then
    repeatedly the frame farthest from the picked set."""
    s = X.std(axis=0)
    Z = (X[:, s > 0] - X[:, s > 0].mean(axis=0)) / s[s > 0]
    chosen = [int(np.argmax((Z ** 2).sum(axis=1)))]
    d = np.linalg.norm(Z - Z[chosen[0]], axis=1)
    while len(chosen) < n:
        k = int(np.argmax(d))
        chosen.append(k)
        d = np.minimum(d, np.linalg.norm(Z - Z[k], axis=1))
    return chosen


def test_pick_fps_spreads_over_states_and_equals_a_plain_implementation(tmp_path):
    cfg = _cfg(pick={"method": "fps", "n_frames": 6}, chunk_size=10)
    files = _sample(cfg, tmp_path)
    fs = load_run_featureset(cfg)
    frames = [a for f in files for a in read_frames(f)]
    X = frame_summaries(frames, fs)
    assert X.shape == (20, 2 * len(fs.per_element["Al"]))
    assert sorted(farthest_point_indices(X, 6).tolist()) == sorted(_greedy_fps(X, 6))
    picked = pick_frames(cfg, files, featureset=fs)
    assert len(picked) == 6 and {a.info["state_id"] for a in picked} == {"fcc", "liq"}
    again = pick_frames(cfg, files, featureset=fs)
    assert [a.info["sampled_index"] for a in again] == [a.info["sampled_index"] for a in picked]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # EMT on two atoms at one site
def test_label_frames_keeps_tags_and_drops_or_fails_on_a_bad_frame():
    engine = make_engine(EMT, ["Al"])
    good = bulk("Al", "fcc", a=4.05, cubic=True)
    good.positions[0] += [0.1, 0, 0]
    good.info.update(state_id="s", sampled_index=4, sampled_from="x.extxyz", T_target=300.0)
    bad = good.copy()
    bad.positions[1] = bad.positions[0]         # two atoms on one site: EMT's energy is not finite
    labelled, dropped, timing = label_frames([good, bad, good], engine, on_error="drop", progress=False)
    assert len(labelled) == 2 and timing["dropped"] == 1 and dropped[0]["frame"] == 1
    assert "non-finite" in dropped[0]["error"]
    direct = engine.label(good)
    assert labelled[0].get_potential_energy() == direct.get_potential_energy()
    assert labelled[0].info["state_id"] == "s" and labelled[0].info["sampled_index"] == 4
    with pytest.raises(EngineError, match="frame 1 \\(sampled frame 4 of x.extxyz\\)"):
        label_frames([good, bad], engine, on_error="fail", progress=False)


def test_aimd_liquid_is_melted_by_the_sampler_and_run_by_the_reference(tmp_path):
    """An `aimd: true` liquid: the cheap sampler (LAMMPS EAM) melts and cools it, the reference
    (here EMT, standing in for DFT) runs only equilibration and production from there."""
    cfg = validate_config({
        "run_id": "t", "seed": 1, "units": "metal", "elements": ["Al"], "reference": EMT, "md": {"timestep": 0.002},
        "labelling": {"enabled": True, "sampler": {"engine": "lammps", "pair_style": "eam/fs",
                                                   "pair_coeff": ["* * Al_mm.eam.fs Al"]}},
        "sampling": {"n_atoms": 32, "melt_temperature": 2500, "melt_steps": 2000, "equilibration_steps": 10,
                     "production_steps": 20, "sample_every": 10,
                     "states": [{"id": "liq", "phase": "fcc", "T": 300, "P": 0.0},
                                {"id": "md", "phase": "liquid", "T": 1200, "density": 2.3, "aimd": True}]}})
    unit = next(u for u in expand_states(cfg) if u.aimd)
    sampler = make_engine(cfg["labelling"]["sampler"], cfg["elements"], cfg["units"])
    reference = make_engine(cfg["reference"], cfg["elements"], cfg["units"])
    out = tmp_path / "md.extxyz"
    summary = sample_unit(cfg, unit, reference, out, progress=False, melt_engine=sampler)
    frames = read_frames(out)
    assert len(frames) == 2 and summary["states"]["md"]["frames"] == 2
    assert all(f.info["engine"] == "ase:EMT" for f in frames)
    assert [f.info["step"] for f in frames] == [20, 30]      # steps of the reference's own segments
    # melted: the 32 atoms are far from any fcc arrangement (mean distance to the nearest site of
    # the starting lattice, periodic, well above thermal vibration)
    from meltpot.sampling.structures import initial_structure

    lattice = initial_structure("liquid", 32, frames[0].get_volume() / 32, {}, ["Al"], np.random.default_rng(0))
    d = frames[0].positions[:, None, :] - lattice.positions[None, :, :]
    cell = frames[0].cell.array
    frac = d @ np.linalg.inv(cell)
    d = (frac - np.round(frac)) @ cell
    assert np.linalg.norm(d, axis=-1).min(axis=1).mean() > 0.5


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # EMT on two atoms at one site
def test_label_run_reuses_earlier_labels_of_the_same_frames_only(tmp_path):
    """`meltpot label run --reuse FILE` takes an earlier labelled file (its dropped frames listed in
    the report beside it) when the frames are the same; other frames are computed afresh."""
    import json

    import yaml

    from meltpot.cli import main
    from meltpot.data.io import write_frames

    cfg = _cfg()
    cfg.pop("_base_dir", None)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    rng = np.random.default_rng(0)
    frames = []
    for k in range(3):
        a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        a.info.update(state_id="s", sampled_index=k, sampled_from="x")
        frames.append(a)
    frames[1].positions[1] = frames[1].positions[0]          # dropped: EMT's energy is not finite
    write_frames(tmp_path / "chunk_000.extxyz", frames)
    first = tmp_path / "first"
    first.mkdir()
    args = ["label", "run", str(tmp_path / "c.yaml"), "--frames", str(tmp_path / "chunk_000.extxyz"), "--no-progress"]
    assert main([*args, "--out", str(first / "chunk_000.extxyz"), "--report", str(first / "chunk_000.json")]) == 0
    assert json.loads((first / "chunk_000.json").read_text())["dropped"] == 1
    # the same frames: taken from the earlier file, equal labels, the dropped frame still listed
    assert main([*args, "--out", str(tmp_path / "again.extxyz"), "--report", str(tmp_path / "again.json"),
                 "--reuse", str(first / "chunk_000.extxyz")]) == 0
    rep = json.loads((tmp_path / "again.json").read_text())
    assert rep["reused_from"] == str(first / "chunk_000.extxyz") and rep["dropped_frames"][0]["frame"] == 1
    a, b = read_frames(first / "chunk_000.extxyz"), read_frames(tmp_path / "again.extxyz")
    assert [f.get_potential_energy() for f in a] == [f.get_potential_energy() for f in b]
    # other positions: recomputed (no reused_from), labels of the moved frame differ
    frames[2].positions[0] += 0.1
    write_frames(tmp_path / "chunk_000.extxyz", frames)
    assert main([*args, "--out", str(tmp_path / "new.extxyz"), "--report", str(tmp_path / "new.json"),
                 "--reuse", str(first / "chunk_000.extxyz")]) == 0
    assert "reused_from" not in json.loads((tmp_path / "new.json").read_text())
    c = read_frames(tmp_path / "new.extxyz")
    assert c[0].get_potential_energy() == a[0].get_potential_energy()
    assert c[1].get_potential_energy() != a[1].get_potential_energy()
