#!/usr/bin/env bash
# Before/after in one run: the same benchmark on two commits, alternating, so both see the same machine.
#
#     bench/ab.sh BEFORE AFTER ROUNDS -- bench/pipeline.py --phases limit,newswire
#
# Each commit is checked out under var/ab/<commit> (a git worktree with its own .venv, made once,
# beside a link to ../shared so the benchmarks find the corpus); the command runs there ROUNDS
# times per commit, in the order after, before, before, after, ... Outputs go to var/ab/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 5 ] && [ "$4" = "--" ] || { echo "usage: bench/ab.sh BEFORE AFTER ROUNDS -- BENCH [ARGS...]" >&2; exit 2; }
before=$(git rev-parse --short "$1"); after=$(git rev-parse --short "$2"); rounds=$3; shift 4
root=$(pwd)/var/ab
mkdir -p "$root/out"
ln -sfn "$(cd .. && pwd)/shared" "$root/shared"
for rev in "$before" "$after"; do
  tree=$root/$rev
  if [ ! -x "$tree/.venv/bin/python" ]; then
    [ -d "$tree" ] || git worktree add --detach "$tree" "$rev"
    python3 -m venv "$tree/.venv"
    "$tree/.venv/bin/python" -m pip install --quiet --upgrade pip
    (cd "$tree" && .venv/bin/python -m pip install --quiet -c requirements.lock -e '.[dev]')
  fi
done
for round in $(seq 1 "$rounds"); do
  order="$after $before"; [ $((round % 2)) -eq 0 ] && order="$before $after"
  for rev in $order; do
    label=$([ "$rev" = "$before" ] && echo before || echo after)
    out=$root/out/$label-$rev-$round.txt
    echo "=== round $round, $label ($rev), $(date +%T), load $(cut -d' ' -f1 /proc/loadavg)"
    (cd "$root/$rev" && .venv/bin/python "$@") > "$out" 2>&1 || echo "(exit $?; see $out)"
    tail -n 15 "$out"
  done
done
