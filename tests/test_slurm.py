"""The cluster profiles against a real Slurm: a single-node cluster on localhost
(scripts/slurm_local.sh: munged, slurmctld, slurmd; partitions compute and gpu; a test-only GPU
gres backed by /dev/null) runs a subset of the default workflow (two sampling states → dataset →
split → descriptors → training) through `snakemake --profile workflow/profiles/slurm` and
snakemake-executor-plugin-slurm, and the faults a cluster run meets.

`make slurm` installs Slurm and munge. Outside CI a missing Slurm skips these tests with the
reason; in CI (CI=true) it fails them, because CI installs it. The cluster is started for this
module and stopped after it (left running when it was running before).
"""

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = ROOT / "config" / "presets" / "lj-tiny.yaml"
CLUSTER = ROOT / "scripts" / "slurm_local.sh"
RUN = Path("results/slurm-tiny")
TARGET = str(RUN / "models" / "dense.pt")
# plugin settings for a cluster without accounting (status from squeue), polling fast, logs kept
SLURM_ARGS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
              "--slurm-keep-successful-logs"]
# the node-size adjustments a user of a 2-CPU cluster passes on top of the profile
SMALL_NODE = ["--set-threads", "descriptors=2", "train=2"]

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


# ----------------------------------------------------------------------------- cluster
def _require_slurm():
    sbin = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [t for t in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")
               if shutil.which(t, path=sbin) is None]
    reasons = [f"Slurm/munge not installed ({', '.join(missing)} missing)"] if missing else []
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        reasons.append("snakemake-executor-plugin-slurm not installed")
    if os.geteuid() != 0 and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode != 0:
        reasons.append("starting slurmd needs root or passwordless sudo")
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and "scripts/slurm_local.sh" not in conf.read_text():
        reasons.append(f"{conf} belongs to another cluster; the test cluster would replace it")
    if reasons:
        msg = "; ".join(reasons) + " (`make slurm` installs Slurm, munge and the plugin)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + ": CI installs them, so this is an error")
        pytest.skip(msg)


def _script(*args, timeout=120):
    return subprocess.run([str(CLUSTER), *args], capture_output=True, text=True, timeout=timeout)


def _daemon_pids():
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    files = dict(re.findall(r"^(Slurm(?:ctld|d)PidFile)\s*=\s*(\S+)", out, re.M))
    return {k: Path(v).read_text().strip() for k, v in files.items() if Path(v).exists()}


@pytest.fixture(scope="module")
def cluster():
    """The local Slurm, started for this module (idempotent) and stopped after it."""
    _require_slurm()
    was_up = _script("status").returncode == 0
    res = _script("start")
    assert res.returncode == 0, res.stdout + res.stderr
    cpus, mem = subprocess.run(["sinfo", "-h", "-N", "-o", "%c %m"], capture_output=True, text=True,
                               check=True).stdout.split()[:2]
    yield {"cpus": int(cpus), "mem_mb": int(mem)}
    if not was_up:
        res = _script("stop")
        assert res.returncode == 0, res.stdout + res.stderr


# ----------------------------------------------------------------------------- helpers
def _config(path, **training):
    """lj-tiny with two states (split by frame) and a short training, under run_id slurm-tiny."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["run_id"] = "slurm-tiny"
    cfg["sampling"]["grid"] = [{"phase": ["fcc"], "T": [0.5], "number_density": [1.1]},
                               {"phase": ["liquid"], "T": [1.5], "number_density": [0.9]}]
    cfg["split"] = {"by": "frame", "train": 0.6, "validation": 0.4, "test": 0.0, "holdout_states": []}
    cfg["training"].update({"max_epochs": 10, **training})
    path.write_text(yaml.safe_dump(cfg))
    return path


def _workdir(path):
    path.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "config", "report", "envs"):
        (path / name).symlink_to(ROOT / name)
    return path


def _env(**extra):
    return dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", OMP_NUM_THREADS="1", **extra)


def _snakemake(cwd, *args, env=None, timeout=600, watch=None):
    """Run snakemake in its own session; on timeout kill the whole group (Snakemake ignores
    SIGTERM while it waits for cluster jobs) and fail. ``watch()`` is called every second."""
    proc = subprocess.Popen([str(BIN / "snakemake"), *args], cwd=cwd, env=env or _env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            reader.join(5)
            pytest.fail(f"snakemake {' '.join(args)} still running after {timeout} s:\n{''.join(out)[-3000:]}")
        if watch:
            watch()
        time.sleep(1.0)
    reader.join(30)
    return proc.returncode, "".join(out)


def _submissions(log):
    """(Slurm job id, Slurm log path) of every job Snakemake submitted, in order."""
    return [(int(j), path) for j, path in re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)", log)]


def _job(job_id):
    """`scontrol show job` of one job as a dict (the job record stays for MinJobAge = 1 h)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", str(job_id)], capture_output=True, text=True,
                         check=True).stdout
    return dict(tok.split("=", 1) for tok in out.split() if "=" in tok)


def _rule(job):
    return re.sub(r"^rule_|_wildcards_.*$", "", job["Comment"])


def _job_table(ids, title):
    """The jobs' table from Slurm's own records: id, rule, state, CPUs, memory, partition, GPUs."""
    rows = [f"{title}", f"{'job':>5} {'rule':<12} {'wildcards':<18} {'state':<10} {'CPUs':>4} {'mem':>6} "
                         f"{'partition':<9} {'gpus':<5} {'time limit':<10}"]
    for i in ids:
        j = _job(i)
        wc = j["Comment"].split("_wildcards_")[1] if "_wildcards_" in j["Comment"] else ""
        gpus = _gpus(j)
        rows.append(f"{i:>5} {_rule(j):<12} {wc:<18} {j['JobState']:<10} {j['NumCPUs']:>4} {j['MinMemoryNode']:>6} "
                    f"{j['Partition']:<9} {gpus or '-':<5} {j['TimeLimit']:<10}")
    return "\n".join(rows)


def _gpus(job):
    """GPUs the job asked for (TresPerJob from --gpus, TresPerNode from --gres); 0 for none."""
    m = re.search(r"gres:gpu(?::\w+)?:(\d+)", job.get("TresPerJob", "") + " " + job.get("TresPerNode", ""))
    return int(m.group(1)) if m else 0


def _show(capsys, text):
    with capsys.disabled():
        print("\n" + text)


def _jobcomp():
    """The job-completion log (JobCompLoc): job id → its fields."""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    path = Path(re.search(r"^JobCompLoc\s*=\s*(\S+)", out, re.M).group(1))
    jobs = {}
    for line in path.read_text().splitlines():
        fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        jobs[int(fields["JobId"])] = fields
    return jobs


def _mtimes(run_dir):
    files = [*sorted((run_dir / "frames").glob("*.extxyz")), run_dir / "dataset" / "index.parquet",
             run_dir / "dataset" / "splits.parquet", run_dir / "descriptors" / "lj-thesis.h5"]
    return {str(f): f.stat().st_mtime_ns for f in files}


# ----------------------------------------------------------------------------- the runs
@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """The subset run twice: locally (2 cores) and through the Slurm profile, same threads."""
    base = tmp_path_factory.mktemp("slurm")
    cfg = _config(base / "tiny.yaml")
    local, slurm = _workdir(base / "local"), _workdir(base / "slurm")
    t0 = time.monotonic()
    rc, local_log = _snakemake(local, TARGET, "--cores", "2", *SMALL_NODE, "--configfile", str(cfg))
    assert rc == 0, local_log[-3000:]
    t1 = time.monotonic()
    # the memory of the subset's rules, set apart from the rules' own defaults so that each
    # value can be traced to its job; dataset and split keep the profile's default-resources
    rc, log = _snakemake(slurm, TARGET, "--profile", "workflow/profiles/slurm", *SMALL_NODE,
                         "--set-resources", "sample:mem_mb=1000", "descriptors:mem_mb=1500", "train:mem_mb=1800",
                         "--configfile", str(cfg), *SLURM_ARGS)
    assert rc == 0, log[-3000:]
    return {"cfg": cfg, "local": local, "slurm": slurm, "log": log, "seconds": (t1 - t0, time.monotonic() - t1)}


def test_local_cluster_start_is_idempotent_and_restarts_clean(cluster):
    """A second start leaves the running daemons alone; stop ends them; start brings an idle node back."""
    before = _daemon_pids()
    assert len(before) == 2
    res = _script("start")
    assert res.returncode == 0 and "idle" in res.stdout and _daemon_pids() == before
    res = _script("stop")
    assert res.returncode == 0, res.stderr
    assert _script("status").returncode == 1
    res = _script("start")
    assert res.returncode == 0, res.stdout + res.stderr
    after = _daemon_pids()
    assert len(after) == 2 and after != before
    out = subprocess.run(["sinfo", "-h", "-o", "%P %t %G"], capture_output=True, text=True).stdout.split("\n")
    assert {line.split()[0] for line in out if line} == {"compute*", "gpu"}
    assert all(line.split()[1] == "idle" and line.split()[2] == "gpu:1" for line in out if line)


def test_subset_through_the_slurm_profile_equals_a_local_run(runs, capsys):
    """Every non-local job went through sbatch with the threads and memory the profile (plus the
    small-node overrides) gave it; frames, dataset, splits and descriptors equal the local run's
    exactly, and so does the model (same threads: 2 for descriptors and training)."""
    log, slurm, local = runs["log"], runs["slurm"] / RUN, runs["local"] / RUN
    subs = _submissions(log)
    ids = [i for i, _ in subs]
    _show(capsys, _job_table(ids, f"Slurm jobs of the subset run ({runs['seconds'][1]:.0f} s; "
                                   f"the same subset locally: {runs['seconds'][0]:.0f} s)"))
    jobs = {i: _job(i) for i in ids}
    rules = sorted(_rule(j) for j in jobs.values())
    assert rules == ["dataset", "descriptors", "sample", "sample", "split", "train"]
    # every job Snakemake ran was one of these submissions; the config rules stay local
    ran = re.findall(r"^(?:local)?rule (\w+):", log, re.M)
    assert sorted(r for r in ran if r not in ("run_config", "stage_config")) == rules
    # Slurm's own records: the job-completion log and scontrol agree, all completed
    done = _jobcomp()
    want = {"sample": (1, "1000M", "01:00:00"), "dataset": (1, "4000M", "02:00:00"),
            "split": (1, "4000M", "02:00:00"), "descriptors": (2, "1500M", "02:00:00"),
            "train": (2, "1800M", "02:00:00")}
    for i, j in jobs.items():
        cpus, mem, limit = want[_rule(j)]
        assert j["JobState"] == "COMPLETED" and j["Partition"] == "compute"
        assert (int(j["NumCPUs"]), j["MinMemoryNode"], j["TimeLimit"]) == (cpus, mem, limit), (i, j)
        assert done[i]["JobState"] == "COMPLETED" and done[i]["Tres"].startswith(f"cpu={cpus},mem={mem}")
        assert Path(done[i]["WorkDir"]) == runs["slurm"]
    # inside the job: the job step's Snakemake ran the rule with those threads
    for i, path in subs:
        rule = _rule(jobs[i])
        text = Path(path).read_text()
        assert f"rule {rule}:" in text and "--executor slurm-jobstep" in text
        if rule in ("descriptors", "train"):
            assert "threads: 2" in text and "--threads 2" in text
    # outputs: the reference MD frames byte for byte, the tables and descriptor arrays exactly
    for f in sorted(local.glob("frames/*.extxyz")):
        assert f.read_bytes() == (slurm / "frames" / f.name).read_bytes()
    for name in ("index.parquet", "splits.parquet"):
        assert pd.read_parquet(local / "dataset" / name).equals(pd.read_parquet(slurm / "dataset" / name))
    with h5py.File(local / "descriptors" / "lj-thesis.h5") as a, h5py.File(slurm / "descriptors" / "lj-thesis.h5") as b:
        names = []
        a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert len(names) > 10
        for n in names:
            assert np.array_equal(a[n][()], b[n][()]), n
        assert {k for k in a.attrs if not np.array_equal(a.attrs[k], b.attrs[k])} <= {"created", "seconds"}
    # the model: weights and everything else equal but the timings
    ma = torch.load(local / "models" / "dense.pt", weights_only=False)
    mb = torch.load(slurm / "models" / "dense.pt", weights_only=False)
    assert ma["state_dict"].keys() == mb["state_dict"].keys()
    assert all(torch.equal(ma["state_dict"][k], mb["state_dict"][k]) for k in ma["state_dict"])
    assert {k: v for k, v in ma.items() if k not in ("state_dict", "metadata")} == \
        {k: v for k, v in mb.items() if k not in ("state_dict", "metadata")}
    timing = {"seconds", "train_seconds"}
    assert {k: v for k, v in ma["metadata"].items() if k not in timing} == \
        {k: v for k, v in mb["metadata"].items() if k not in timing}


def test_cancelled_job_is_resubmitted_on_rerun_and_finished_outputs_kept(runs, capsys):
    """scancel of the training job mid-run (and of its retry, which the profile's `retries: 1`
    submits): the run fails naming the state; the same command then submits only the training
    again and finishes; the sampling, dataset and descriptor outputs are not recomputed."""
    work = runs["slurm"]
    cfg = _config(work / "long.yaml", max_epochs=60, early_stopping={"patience": None})  # a longer training only
    kept = _mtimes(work / RUN)
    cancelled = []

    def cancel_running_training():
        # squeue's %M: time run so far as [days-][hours:]minutes:seconds
        out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k %M"], capture_output=True, text=True).stdout
        for job_id, comment, ran in (line.split() for line in out.splitlines()):
            if comment == "rule_train" and job_id not in cancelled and ran not in ("0:00", "0:01", "0:02"):
                subprocess.run(["scancel", job_id], check=True)
                cancelled.append(job_id)

    args = [TARGET, "--profile", "workflow/profiles/slurm", *SMALL_NODE, "--configfile", str(cfg), *SLURM_ARGS]
    rc, log = _snakemake(work, *args, watch=cancel_running_training)
    assert rc != 0, log[-3000:]
    first = _submissions(log)
    assert [_rule(_job(i)) for i, _ in first] == ["train", "train"], log[-3000:]  # the retry
    assert [str(i) for i, _ in first] == cancelled
    assert all(_job(i)["JobState"] == "CANCELLED" for i, _ in first)
    assert "CANCELLED" in log and first[-1][1] in log  # the state and the job's log file
    assert not (work / TARGET).exists() and _mtimes(work / RUN) == kept
    rc, log = _snakemake(work, *args)
    assert rc == 0, log[-3000:]
    again = _submissions(log)
    _show(capsys, _job_table([i for i, _ in first + again], "Slurm jobs: training cancelled twice, then rerun"))
    assert [_rule(_job(i)) for i, _ in again] == ["train"] and _job(again[0][0])["JobState"] == "COMPLETED"
    assert _mtimes(work / RUN) == kept
    model = torch.load(work / TARGET, weights_only=False)
    assert model["metadata"]["epochs"] == 60


def test_gpu_profile_request_reaches_slurm_and_a_job_without_a_gpu_fails_clearly(runs, capsys):
    """slurm-gpu sends the training to partition gpu with --gpus=1: the test-only gres accepts
    it and the job gets CUDA_VISIBLE_DEVICES=0, but no device exists, so meltpot stops with its
    message; the profile's retry runs it a second time and the run ends printing the log paths.
    A request for more GPUs than the cluster has is refused by sbatch, and the run says so."""
    work = runs["slurm"]
    cfg = _config(work / "gpu.yaml", device="cuda")
    rc, log = _snakemake(work, TARGET, "--profile", "workflow/profiles/slurm-gpu", *SMALL_NODE,
                         "--configfile", str(cfg), *SLURM_ARGS)
    assert rc != 0, log[-3000:]
    subs = _submissions(log)
    _show(capsys, _job_table([i for i, _ in subs], "Slurm jobs: training on the gpu partition without a GPU"))
    assert len(subs) == 2, log[-3000:]  # the first attempt and the profile's one retry
    for i, slurm_log in subs:
        j = _job(i)
        assert _rule(j) == "train" and j["Partition"] == "gpu" and j["JobState"] == "FAILED"
        assert _gpus(j) == 1 and int(j["NumCPUs"]) == 2
        assert slurm_log in log  # the job's Slurm log, printed
    rule_log = "results/slurm-tiny/logs/train_dense.log"
    assert rule_log in log
    text = (work / rule_log).read_text()
    assert "training.device = cuda, but torch sees no CUDA device" in text and "CUDA_VISIBLE_DEVICES=0" in text
    # two GPUs on a node with one: sbatch refuses, the run ends with Slurm's reason
    rc, log = _snakemake(work, TARGET, "--profile", "workflow/profiles/slurm-gpu", *SMALL_NODE,
                         "--set-resources", "train:slurm_partition=gpu", "train:gpu=2",
                         "--configfile", str(cfg), *SLURM_ARGS, timeout=300)
    assert rc != 0 and "Requested node configuration is not available" in log, log[-3000:]
    assert not _submissions(log)


def test_failing_status_query_ends_the_run_in_bounded_time(cluster, tmp_path):
    """The plugin's sacct status query on a cluster without accounting fails every time; the run
    ends after MELTPOT_SLURM_STATUS_TIMEOUT with the command, its error and what to do, the lock
    released, the job findable by the printed squeue/scancel command."""
    work = _workdir(tmp_path / "run")
    cfg = _config(tmp_path / "tiny.yaml")
    t0 = time.monotonic()
    rc, log = _snakemake(work, str(RUN / "frames" / "fcc_T0.5_n1.1.summary.json"),
                         "--profile", "workflow/profiles/slurm", "--configfile", str(cfg),
                         "--slurm-status-command", "sacct", "--slurm-init-seconds-before-status-checks", "2",
                         env=_env(MELTPOT_SLURM_STATUS_TIMEOUT="15"), timeout=300)
    seconds = time.monotonic() - t0
    assert rc != 0 and seconds < 120, log[-3000:]
    assert "meltpot: the Slurm status query has failed for" in log
    assert "Slurm accounting storage is disabled" in log and "--slurm-status-command squeue" in log
    name = re.search(r"scancel --name (\S+)`", log).group(1)
    assert subprocess.run(["scancel", "--name", name]).returncode == 0
    listed = subprocess.run(["squeue", "-h", "--states=all", "--name", name, "-o", "%i"], capture_output=True,
                            text=True).stdout.split()
    assert [int(i) for i in listed] == [i for i, _ in _submissions(log)]
    rc, out = _snakemake(work, str(RUN / "frames" / "fcc_T0.5_n1.1.summary.json"), "-n", "--configfile", str(cfg))
    assert rc == 0, out[-2000:]  # no stale lock


def test_slurm_check_asks_slurm_about_each_rules_request(cluster, tmp_path):
    """scripts/slurm_check.py: the dry run's requests of the subset under slurm-gpu, each put to
    `sbatch --test-only`; Slurm's answers follow the node (CPUs, memory) and the test-only GPU."""
    work = _workdir(tmp_path / "run")
    cfg = _config(tmp_path / "tiny.yaml")
    check = [sys.executable, str(ROOT / "scripts" / "slurm_check.py"), TARGET, "--profile",
             "workflow/profiles/slurm-gpu", "--configfile", str(cfg)]
    res = subprocess.run(check, cwd=work, env=_env(), capture_output=True, text=True, timeout=300)
    verdict = {rules: word for word, rules in re.findall(r"^(accepted|REJECTED)\s+(\S+):", res.stdout, re.M)}
    assert set(verdict) == {"sample", "dataset,split", "descriptors", "train"}, res.stdout + res.stderr
    # the profile as shipped: descriptors 8 threads and 16000 MB, train 4 threads + 1 GPU
    fits = {"sample": (1, 2000), "dataset,split": (1, 4000), "descriptors": (8, 16000), "train": (4, 4000)}
    for rules, (cpus, mem) in fits.items():
        ok = cpus <= cluster["cpus"] and mem <= cluster["mem_mb"]
        assert verdict[rules] == ("accepted" if ok else "REJECTED"), res.stdout
    assert res.returncode == (0 if all(v == "accepted" for v in verdict.values()) else 1)
    assert re.search(r"^REJECTED\s+train: sbatch -p gpu .*--gpus=1 --cpus-per-task=4", res.stdout, re.M) or \
        cluster["cpus"] >= 4, res.stdout
    # with the small-node threads the training's GPU request is accepted
    res = subprocess.run([*check, *SMALL_NODE], cwd=work, env=_env(), capture_output=True, text=True, timeout=300)
    assert re.search(r"^accepted\s+train: sbatch -p gpu .*--gpus=1 --cpus-per-task=2", res.stdout, re.M), res.stdout
