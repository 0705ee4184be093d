#!/usr/bin/env python3
"""Check a Slurm profile against the cluster before a run, without submitting anything.

    scripts/slurm_check.py --profile workflow/profiles/slurm --configfile config/presets/al-thesis.yaml [targets]

Runs `snakemake -n` with the given arguments (a dry run: each job's threads and resources as the
profile sets them) and asks Slurm, for every distinct request of a submitted rule, whether it
would accept it: `sbatch --test-only` with the options snakemake-executor-plugin-slurm 2.8 builds
from the resources (partition, account, CPUs = cpus_per_task or threads, memory, time, GPUs,
gres, constraint, qos). Prints one line per request; exit status 1 when Slurm rejects one.
Run it where `sbatch` works (a login node). Rules in the Snakefile's `localrules` are skipped.
"""

import re
import subprocess
import sys
from pathlib import Path


def dry_run(args):
    """The (rule, threads, resources) of every job in `snakemake -n ARGS` (threads uncapped)."""
    # a dry run caps threads at the local cores; a cluster job gets what the rule asks for
    res = subprocess.run(["snakemake", "-n", "--cores", "100000", *args], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"snakemake -n failed:\n{(res.stdout + res.stderr)[-3000:]}")
    jobs, job = [], None
    for line in res.stdout.splitlines() + res.stderr.splitlines():
        head = re.match(r"^(?:rule|checkpoint) (\w+):$", line)
        if head:
            job = {"rule": head.group(1), "threads": 1, "resources": {}}
            jobs.append(job)
        elif job and line.strip().startswith("threads:"):
            job["threads"] = int(line.split(":", 1)[1])
        elif job and line.strip().startswith("resources:"):
            for item in line.split(":", 1)[1].split(", "):
                key, _, value = item.strip().partition("=")
                job["resources"][key] = value
    return jobs


def local_rules(snakefile="Snakefile"):
    """Rule names of the Snakefile's `localrules:` lines (never submitted)."""
    text = Path(snakefile).read_text() if Path(snakefile).exists() else ""
    return {name.strip() for line in re.findall(r"^localrules:(.*)$", text, re.M) for name in line.split(",")}


def sbatch_options(job):
    """The sbatch options the Slurm plugin derives from a job's threads and resources."""
    r = job["resources"]
    opts = []
    for key, flag in (("slurm_partition", "-p"), ("slurm_account", "-A"), ("runtime", "-t"),
                      ("constraint", "-C")):
        if r.get(key):
            opts += [flag, r[key]]
    if r.get("qos"):
        opts.append(f"--qos={r['qos']}")
    if r.get("mem_mb_per_cpu"):
        opts += ["--mem-per-cpu", r["mem_mb_per_cpu"]]
    elif r.get("mem_mb"):
        opts += ["--mem", r["mem_mb"]]
    if r.get("gres"):
        opts.append(f"--gres={r['gres']}")
    if r.get("gpu_model"):
        opts.append(f"--gpus={r['gpu_model']}:{r.get('gpu', '1')}")
    elif r.get("gpu"):
        opts.append(f"--gpus={r['gpu']}")
    opts.append(f"--cpus-per-task={r.get('cpus_per_task') or job['threads']}")
    return opts


def main(args):
    skip = local_rules()
    requests = {}
    for job in dry_run(args):
        if job["rule"] not in skip:
            requests.setdefault(tuple(sbatch_options(job)), []).append(job["rule"])
    if not requests:
        print("nothing to submit (the dry run has no jobs)")
        return 0
    rejected = 0
    for opts, rules in requests.items():
        res = subprocess.run(["sbatch", "--test-only", *opts, "--wrap", "true"], capture_output=True, text=True)
        answer = (res.stderr + res.stdout).strip().replace("sbatch: ", "")
        ok = res.returncode == 0
        rejected += not ok
        print(f"{'accepted' if ok else 'REJECTED'}  {','.join(sorted(set(rules)))}: sbatch {' '.join(opts)}\n    {answer}")
    return 1 if rejected else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
