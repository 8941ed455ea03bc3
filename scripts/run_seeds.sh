#!/usr/bin/env bash
# Plain fallback for sweeps (no Hydra launcher plugin): every (method, seed) as its own `python -m mtrl.train`,
# JOBS at a time, each with THREADS torch threads, outputs in <out>/<env>/<method>/seed_<s>/ (the same tree as
# `python -m mtrl.train -m`), a log per run next to its outputs.
#
#   scripts/run_seeds.sh <out_dir> "<methods, comma-separated>" <n_seeds> [extra overrides...]
#   JOBS=2 THREADS=1 scripts/run_seeds.sh sweeps/mt10 "imgrad,cagrad" 10 env=mt10 experiment=quick
#
# Seeds are 1..n_seeds. A run that fails is listed at the end and the script exits non-zero; re-running the same
# command resumes every run from its newest checkpoint (resume=true) and skips the ones that finished.
set -uo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 <out_dir> <methods,comma-separated> <n_seeds> [overrides...]" >&2
  exit 2
fi
OUT=$1; METHODS=$2; N=$3; shift 3
JOBS=${JOBS:-2}; THREADS=${THREADS:-1}; PYTHON=${PYTHON:-python}
case $N in ''|*[!0-9]*) echo "$0: n_seeds must be a positive integer, got '$N'" >&2; exit 2;; esac
ENV=mt10
for o in "$@"; do case $o in env=*) ENV=${o#env=};; esac; done
mkdir -p "$OUT"
jobs_file=$(mktemp)
for m in ${METHODS//,/ }; do
  for s in $(seq 1 "$N"); do
    d="$OUT/$ENV/$m/seed_$s"
    if [ -f "$d/DONE" ]; then echo "skip (done): $d" >&2; continue; fi
    printf '%s\t%s\t%s\n' "$m" "$s" "$d" >> "$jobs_file"
  done
done
export PYTHON THREADS
run_one() {
  m=$1; s=$2; d=$3; shift 3
  mkdir -p "$d"
  if "$PYTHON" -m mtrl.train agent.aggregator="$m" seed="$s" train.torch_threads="$THREADS" train.progress=false \
      resume=true hydra.run.dir="$d" "$@" > "$d/run.log" 2>&1; then
    touch "$d/DONE"; echo "done: $d" >&2
  else
    echo "FAILED: $d (see $d/run.log)" >&2; return 1
  fi
}
export -f run_one
status=0
# xargs appends (method, seed, dir) after the user's overrides
tr '\t' '\n' < "$jobs_file" | xargs -r -d '\n' -n 3 -P "$JOBS" \
  bash -c 'n=$#; run_one "${@:n-2:1}" "${@:n-1:1}" "${@:n:1}" "${@:1:n-3}"' _ "$@" || status=1
rm -f "$jobs_file"
exit $status
