#!/usr/bin/env bash
# A one-node SLURM on this machine, for the tests (and for trying the job files): Debian's
# slurm-wlm and munge, run as root, all state under one folder. Its partition is called gpu and
# its node has one GPU in name, so the job files run here exactly as written.
#
#   slurm/local_cluster.sh start DIR   # writes DIR/slurm.conf, starts munged, slurmctld, slurmd
#   export SLURM_CONF=DIR/slurm.conf   # then sbatch, squeue, scontrol talk to it
#   slurm/local_cluster.sh stop DIR
#
# Install first (as root): apt-get install slurm-wlm munge
# Its daemons listen on two ports free at start, so that clusters started side by side (two test
# runs on one machine) never answer each other's commands.
set -euo pipefail
action=${1:?start or stop}
dir=$(realpath -m "${2:?a folder for its state}")

stop() {
    for daemon in slurmd slurmctld; do
        if [[ -f $dir/$daemon.pid ]]; then
            kill "$(cat "$dir/$daemon.pid")" 2>/dev/null || true
            rm -f "$dir/$daemon.pid"
        fi
    done
}

free_ports() {  # two TCP ports nothing listens on now
    python3 -c 'import socket
held = [socket.socket() for _ in range(2)]
for sock in held:
    sock.bind(("", 0))
print(*(sock.getsockname()[1] for sock in held))'
}

write_conf() {
    local host cpus memory ports
    host=$(hostname -s)
    read -r -a ports < <(free_ports)
    cpus=$(nproc)
    memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
    mkdir -p "$dir/state" "$dir/spool" "$dir/log"
    cat > "$dir/slurm.conf" <<CONF
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=${ports[0]}
SlurmdPort=${ports[1]}
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
GresTypes=gpu
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$memory Gres=gpu:1 State=UNKNOWN
PartitionName=gpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    # one GPU in name only, so that the job files' --gpus=1 is granted as on a GPU node; the
    # trainer finds no CUDA here and says it runs on the CPU
    echo "Name=gpu File=/dev/null" > "$dir/gres.conf"
}

running() {  # this cluster's own daemons, by their pid files
    local daemon
    for daemon in slurmctld slurmd; do
        [[ -f $dir/$daemon.pid ]] && kill -0 "$(cat "$dir/$daemon.pid")" 2>/dev/null || return 1
    done
}

start_munge() {
    if ! munge -n > /dev/null 2>&1; then  # no munged answers on this machine's socket
        install -d -o munge -g munge -m 0755 /run/munge
        runuser -u munge -- munged
    fi
}

case $action in
    start)
        command -v slurmctld > /dev/null || { echo "slurm-wlm is not installed" >&2; exit 1; }
        stop
        write_conf
        start_munge
        slurmctld -f "$dir/slurm.conf"
        slurmd -f "$dir/slurm.conf"
        export SLURM_CONF=$dir/slurm.conf
        for _ in $(seq 120); do  # until the node takes jobs
            if running && sinfo -h -o %t 2>/dev/null | grep -qx idle; then
                echo "SLURM_CONF=$SLURM_CONF"
                exit 0
            fi
            sleep 1
        done
        echo "the local SLURM did not come up; its logs are in $dir/log" >&2
        exit 1
        ;;
    stop)
        stop
        ;;
    *)
        echo "usage: $0 start|stop DIR" >&2
        exit 2
        ;;
esac
