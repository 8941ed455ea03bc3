#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (slurmctld + slurmd + munge), bound to the loopback address: try
# mtrl's Slurm path on a workstation, and run CI's Slurm tests. Needs root and Debian's packages:
#   sudo apt-get install -y slurm-wlm munge
#   sudo scripts/cluster/slurm_local.sh up      # writes /etc/slurm/slurm.conf, starts munged, slurmctld, slurmd
#   sinfo; sbatch --wrap 'hostname'; squeue     # as any user
#   sudo scripts/cluster/slurm_local.sh down    # stops the three daemons (state and config are kept)
# Partitions: `debug` (the default, no time limit) and `short` (MaxTime=1 minute: a job that outlives it is stopped,
# which is how the tests force a time limit). Settings: MTRL_SLURM_DIR (state, logs; default /var/tmp/mtrl-slurm),
# MTRL_SLURM_CPUS (CPUs the node offers; default: this machine's), MTRL_SLURM_MEM_MB (default: 90% of its memory).
# slurmctld and slurmd have no listen-address setting: they listen on ports 6817/6818 of every interface, but every
# address in this configuration is 127.0.0.1, so all their traffic stays on this machine (firewall those ports on a
# shared network).
set -euo pipefail
STATE=${MTRL_SLURM_DIR:-/var/tmp/mtrl-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by mtrl scripts/cluster/slurm_local.sh"

die() { echo "slurm_local.sh: error: $*" >&2; exit 2; }

up() {
  [[ $(id -u) == 0 ]] || die "run as root (sudo): it starts munged, slurmctld and slurmd"
  for b in munged slurmctld slurmd sinfo; do
    command -v $b >/dev/null || die "$b not found: apt-get install -y slurm-wlm munge"
  done
  if [[ -f $CONF ]] && ! grep -qF "$MARK" $CONF; then
    die "$CONF exists and was not written by this script: this machine already has a Slurm configuration"
  fi
  local cpus=${MTRL_SLURM_CPUS:-$(nproc)}
  local mem=${MTRL_SLURM_MEM_MB:-$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)}
  mkdir -p "$STATE"/{ctld,d,log} /run/munge /etc/slurm
  # munge: the key the package created (or a new one), its socket in /run/munge
  [[ -f /etc/munge/munge.key ]] || mungekey --create
  chown munge:munge /run/munge /etc/munge/munge.key 2>/dev/null || true
  if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --force  # --force: over a stale socket of an earlier munged
    munge -n >/dev/null || die "munged did not start (see /var/log/munge/munged.log)"
  fi
  cat > $CONF <<CONF
$MARK (see that script; \`down\` stops the daemons)
ClusterName=mtrl-local
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=20
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
MinJobAge=10
MessageTimeout=20
KillWait=60
SchedulerParameters=defer_batch=false
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=localhost MaxTime=1 State=UP
CONF
  chmod 644 $CONF
  pgrep -x slurmctld >/dev/null || slurmctld -i
  pgrep -x slurmd >/dev/null || slurmd -N localhost
  for _ in $(seq 60); do  # until the node takes jobs
    if sinfo -h -N -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
      echo "slurm_local.sh: up: $(sinfo -h -o '%P %l %D %t' | tr '\n' ';') (state and logs in $STATE)"
      return 0
    fi
    sleep 1
  done
  die "the node did not come up in 60 s; see $STATE/log/slurmctld.log and slurmd.log"
}

down() {
  local pid
  for d in slurmd slurmctld; do
    pid=$(cat "$STATE/$d.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
  done
  pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi
  echo "slurm_local.sh: down"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
