#!/usr/bin/env bash
# Stand-in for sbatch/qsub in CI: run the Snakemake job script in the background and print a
# job id, as a batch system would. The cluster-generic executor then waits for the job's
# finished/failed marker files.
set -euo pipefail
jobscript="$1"
logdir="${FAKE_CLUSTER_LOGS:-.fake-cluster}"
mkdir -p "$logdir"
id="job$$"
nohup bash "$jobscript" > "$logdir/$id.log" 2>&1 &
echo "$id"
