# Cluster runs (workflow/profiles/slurm, slurm-gpu): a bound on failing Slurm status queries.
#
# snakemake-executor-plugin-slurm (2.8) asks for the jobs' states a few times in a row; when every
# attempt fails (sacct on a cluster without accounting, an unreachable slurmctld) it drops the
# jobs from its list without reporting them, and Snakemake waits for them for ever (a SIGTERM
# only makes it wait for the running jobs). Here the plugin's query function is wrapped: a failed
# query is reported with the command's error and retried; when it has failed for
# MELTPOT_SLURM_STATUS_TIMEOUT seconds (default 600) without a success, it raises, the executor
# reports the error and the run ends. The Snakefile's onstart calls start_cluster_guards (the
# executor is known only then; the jobs themselves run with --no-hooks).


def guard_slurm_status_queries(timeout_s):
    """Wrap the Slurm plugin's status query: retry a failing one, end the run after timeout_s."""
    import asyncio
    import shlex
    import subprocess
    import sys
    import time

    import snakemake_executor_plugin_slurm as plugin
    from snakemake_interface_common.exceptions import WorkflowError

    query = getattr(plugin, "query_job_status", None)
    if query is None:
        print("meltpot: this snakemake-executor-plugin-slurm has no query_job_status; failing status "
              "queries are not bounded (pyproject.toml pins the plugin the guard was written for)", file=sys.stderr)
        return
    if getattr(query, "meltpot_guard", False):
        return
    pause_s = min(30.0, max(1.0, timeout_s / 10))  # between retries of a failing query

    def last_error(command):
        try:
            res = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30)
            return (res.stderr or res.stdout).strip() or f"exit status {res.returncode}"
        except (OSError, subprocess.TimeoutExpired) as err:
            return str(err)

    def give_up(command, seconds):
        words = shlex.split(command)
        name = words[words.index("--name") + 1] if "--name" in words else "<run id>"
        hint = ("\n  Without Slurm accounting (sacct: 'accounting storage is disabled') use "
                "--slurm-status-command squeue." if words[0] == "sacct" else "")
        return WorkflowError(
            f"meltpot: the Slurm status query has failed for {seconds:.0f} s "
            f"(MELTPOT_SLURM_STATUS_TIMEOUT={timeout_s:.0f}), ending the run.\n"
            f"  command: {command}\n  error: {last_error(command)}{hint}\n"
            f"  Jobs of this run may still be queued or running: `squeue --name {name}` lists them, "
            f"`scancel --name {name}` cancels them. Rerunning the same command keeps finished outputs.")

    async def guarded(command, logger):
        first_failure = None
        while True:
            status, seconds = await query(command, logger)
            if status is not None:
                if first_failure is not None:
                    print("meltpot: the Slurm status query works again", file=sys.stderr)
                return status, seconds
            now = time.monotonic()
            if first_failure is None:
                first_failure = now
                print(f"meltpot: the Slurm status query failed: {last_error(command)}\n  ({command})\n"
                      f"  retrying every {pause_s:.0f} s; the run ends if it fails for {timeout_s:.0f} s "
                      "(MELTPOT_SLURM_STATUS_TIMEOUT)", file=sys.stderr)
            elif now - first_failure >= timeout_s:
                raise give_up(command, now - first_failure)
            await asyncio.sleep(min(pause_s, max(0.0, first_failure + timeout_s - now)))

    guarded.meltpot_guard = True
    plugin.query_job_status = guarded


def start_cluster_guards():
    """Install the status-query bound when this run submits to Slurm."""
    import os

    if workflow.executor_plugin is not None and workflow.executor_plugin.name == "slurm":
        guard_slurm_status_queries(float(os.environ.get("MELTPOT_SLURM_STATUS_TIMEOUT", "600")))
