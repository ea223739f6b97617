#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the tests (and for trying the
# sbatch templates without a real cluster). Needs root and Debian's slurm-wlm + munge.
#
#   scripts/slurm/local_cluster.sh start DIR   # writes DIR/slurm.conf, starts munged,
#                                               # slurmctld, slurmd; waits for an idle node
#   scripts/slurm/local_cluster.sh stop DIR    # stops them by their pid files
#   scripts/slurm/local_cluster.sh env DIR     # prints `export SLURM_CONF=...`
#
# No systemd, no cgroups: ProctrackType=proctrack/pgid, TaskPlugin=task/none; no
# accounting; every spool, state, log and pid path under DIR; non-default ports.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop|env DIR" >&2
  exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# munged runs as the munge user and must reach DIR/munge (mktemp -d makes DIR 0700).
chmod 755 "$dir"
conf="$dir/slurm.conf"

stop_pidfile() {
  local f=$1
  [ -f "$f" ] || return 0
  local pid
  pid=$(cat "$f" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

case "$cmd" in
  env)
    echo "export SLURM_CONF=$conf"
    ;;
  stop)
    stop_pidfile "$dir/slurmd.pid"
    stop_pidfile "$dir/slurmctld.pid"
    stop_pidfile "$dir/munge/munged.pid"
    ;;
  start)
    for b in munged slurmctld slurmd sinfo; do
      command -v "$b" >/dev/null || { echo "local_cluster: $b not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
    done
    [ "$(id -u)" -eq 0 ] || { echo "local_cluster: needs root (SlurmUser=root)" >&2; exit 1; }
    mkdir -p "$dir/munge" "$dir/spool" "$dir/state" "$dir/log"
    # munge: its own key, socket and pid under DIR, run as the munge user.
    if [ ! -f "$dir/munge/munge.key" ]; then
      dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 status=none
    fi
    chown -R munge:munge "$dir/munge"
    chmod 700 "$dir/munge"
    chmod 400 "$dir/munge/munge.key"
    sock="$dir/munge/munge.socket"
    stop_pidfile "$dir/munge/munged.pid"
    runuser -u munge -- munged --key-file="$dir/munge/munge.key" --socket="$sock" \
      --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
      --seed-file="$dir/munge/munged.seed" --force
    # Ports: a pair derived from DIR so two clusters on one machine do not collide.
    base=$(( 17000 + $(printf '%s' "$dir" | cksum | cut -d' ' -f1) % 2000 * 2 ))
    node=$(slurmd -C | head -n1 | sed -e 's/^NodeName=[^ ]*//' -e 's/UpTime=.*//')
    cat > "$conf" <<CONF
ClusterName=nephroseg-test
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
SlurmctldPort=$base
SlurmdPort=$(( base + 1 ))
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 $node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
    export SLURM_CONF="$conf"
    stop_pidfile "$dir/slurmd.pid"
    stop_pidfile "$dir/slurmctld.pid"
    slurmctld -f "$conf" -i
    slurmd -f "$conf"
    for _ in $(seq 1 60); do
      state=$(sinfo -h -o '%T' 2>/dev/null | head -n1 || true)
      case "$state" in idle*|mixed*|allocated*) echo "local_cluster: node $state (SLURM_CONF=$conf)"; exit 0 ;; esac
      sleep 0.5
    done
    echo "local_cluster: the node did not come up; see $dir/log" >&2
    exit 1
    ;;
  *)
    echo "usage: $0 start|stop|env DIR" >&2
    exit 2
    ;;
esac
