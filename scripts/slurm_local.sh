#!/usr/bin/env bash
# A real single-node Slurm on localhost, for the cluster tests (tests/test_slurm.py) and for trying
# the profiles by hand: munged, slurmctld and slurmd; partitions `compute` (default) and `gpu`; a
# test-only GPU (gres gpu:1 backed by /dev/null: Slurm accepts GPU requests, no device exists).
#
#   usage: scripts/slurm_local.sh install|start|stop|status
#
#   install  Debian packages slurm-wlm and munge (apt-get; sudo when not root). Idempotent.
#   start    writes /etc/slurm/slurm.conf and gres.conf, starts the daemons, waits for the node to
#            be idle. The default config path is needed: the job-step plugin of
#            snakemake-executor-plugin-slurm drops SLURM_CONF before its srun. A running cluster is
#            left as it is; a stopped one starts from a clean state (no stale node state).
#   stop     stops slurmd and slurmctld, and munged when this script started it.
#   status   `scontrol ping` and the node table; exit 1 when the cluster is not up.
#
# Needs root (slurmd starts jobs as their users); re-runs itself through `sudo -n` otherwise.
# State, spool, daemon logs and the job-completion log (JobCompLoc) live in $MELTPOT_SLURM_DIR.
set -euo pipefail

DIR=${MELTPOT_SLURM_DIR:-/var/tmp/meltpot-slurm}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by meltpot scripts/slurm_local.sh"
NODE=$(hostname -s)

need_root() {
    [ "$(id -u)" -eq 0 ] && return 0
    exec sudo -n env MELTPOT_SLURM_DIR="$DIR" "$0" "$@"
}

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        echo "Slurm $(slurmctld -V | cut -d' ' -f2) and munge already installed"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    # munge's postinst creates /etc/munge/munge.key
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null; }
    echo "installed Slurm $(slurmctld -V | cut -d' ' -f2)"
}

alive() {  # alive PIDFILE: the process in the pid file exists
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

running() {
    alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" && scontrol ping 2>/dev/null | grep -q UP
}

write_conf() {
    # refuse to replace a cluster's own configuration
    if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        echo "error: $CONF exists and was not written by this script; not replacing it" >&2
        exit 1
    fi
    local cpus mem
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)   # nproc would honour OMP_NUM_THREADS
    mem=$(( $(free -m | awk '/^Mem:/ {print $2}') * 8 / 10 ))   # MB Slurm may hand out: 80 % of RAM
    mkdir -p "$CONF_DIR" "$DIR/state" "$DIR/spool" "$DIR/log"
    cat > "$CONF" <<EOF
$MARK ($(date -u +%FT%TZ)): a single-node test cluster
ClusterName=meltpot-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups in containers: processes tracked by parent id, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
# cores and memory are consumable: two 1-CPU jobs share the node, a job gets what it asks for
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# no slurmdbd, so no sacct: a plain-text job-completion log instead, and finished jobs stay
# visible to squeue/scontrol for an hour (MinJobAge)
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.log
MinJobAge=3600
EnforcePartLimits=ALL
KillWait=5
ReturnToService=2
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=compute Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
    # the test-only GPU: a gres needs a device file (without one the node goes INVAL)
    printf '%s\nNodeName=%s Name=gpu File=/dev/null\n' "$MARK" "$NODE" > "$CONF_DIR/gres.conf"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/munged.started"
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "error: munged does not answer (munge -n | unmunge)" >&2
    exit 1
}

wait_idle() {
    local state=""
    for _ in $(seq 60); do
        state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null | head -1)
        case "$state" in
            idle|mix|alloc) echo "Slurm up: node $NODE $state, partitions $(sinfo -h -o %P | paste -sd' ')"; return 0 ;;
            inval|drain*|down*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    echo "error: node $NODE is '$state' after 30 s; daemon logs in $DIR/log:" >&2
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    return 1
}

start() {
    command -v slurmctld >/dev/null || { echo "error: Slurm not installed (run: $0 install)" >&2; exit 1; }
    if running; then
        wait_idle
        return
    fi
    stop_daemons                              # leftovers of an interrupted start
    write_conf
    rm -rf "$DIR/state" "$DIR/spool" "$DIR/jobcomp.log" && mkdir -p "$DIR/state" "$DIR/spool"
    start_munge
    slurmctld -c -f "$CONF"                   # -c: no job or node state from an earlier cluster
    slurmd -f "$CONF"
    wait_idle || { stop_daemons; exit 1; }    # leave nothing half-started behind
}

stop_one() {  # stop_one NAME PIDFILE: SIGTERM, then SIGKILL after 10 s
    alive "$2" || { rm -f "$2"; return 0; }
    local pid
    pid=$(cat "$2")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { rm -f "$2"; echo "stopped $1"; return 0; }; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$2"
    echo "killed $1"
}

stop_daemons() {
    stop_one slurmd "$DIR/slurmd.pid"
    stop_one slurmctld "$DIR/slurmctld.pid"
}

stop() {
    stop_daemons
    if [ -e "$DIR/munged.started" ]; then
        stop_one munged /run/munge/munged.pid
        rm -f "$DIR/munged.started"
    fi
}

status() {
    if running; then
        scontrol ping
        sinfo -N -o "%N %P %t %c %m %G"
    else
        echo "Slurm test cluster not running"
        return 1
    fi
}

case "${1:-}" in
    install) need_root "$@"; install ;;
    start) need_root "$@"; mkdir -p "$DIR"; start ;;
    stop) need_root "$@"; stop ;;
    status) status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
