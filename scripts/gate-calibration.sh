#!/usr/bin/env bash
# How often does the regression gate cry wolf, and what does it catch?
#
# 1. False alarms: PAIRS+1 identical back-to-back ci-smoke runs of one binary; each run is
#    compared with the one before it at several thresholds. Every exit 1 is a false alarm.
# 2. Detection: the agents' programming cost is made 10, 20 and 50 % slower (a `linear:` cost
#    model, port_us 20,000 -> 22,000 / 24,000 / 30,000) and each slower run is compared with
#    runs at the base cost. (--force: the scenario text differs by the cost model.)
#    The same base-cost runs, compared pairwise, give the false alarms of that scenario too.
#
# 3. The same false-alarm pairs with `run --repeat 3` (the bootstrap then weighs run-to-run
#    spread too).
#
# Usage: scripts/gate-calibration.sh [OUT_DIR] [PAIRS]   (default /tmp/gate-calibration, 10)
#        RUNS=0 scripts/gate-calibration.sh …   compares the run folders already in OUT_DIR.
# Prints TSV rows: set, baseline, candidate, threshold, exit code, regressed figures.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/gate-calibration}
PAIRS=${2:-10}
BIN=./target/release/alcor-scale
RUNS=${RUNS:-1}
cargo build --release --locked -q
if [ "$RUNS" = 1 ]; then rm -rf "$OUT"; fi
mkdir -p "$OUT"

run() { # name, extra --set args...
  local name=$1; shift
  "$BIN" run ci-smoke --quiet --out "$OUT/$name" "$@" >/dev/null 2>&1 || true
}
cmp() { # set, base, cand, threshold, extra...
  local set=$1 base=$2 cand=$3 thr=$4; shift 4
  local code=0
  "$BIN" compare "$OUT/$base" "$OUT/$cand" --max-regression "$thr" --markdown "$OUT/cmp.md" \
    --out "$OUT/cmp.html" "$@" >"$OUT/cmp.txt" 2>/dev/null || code=$?
  local worse
  worse=$(grep -o '^  ✗ [a-z0-9_.]*' "$OUT/cmp.txt" | sed 's/^  ✗ //' | tr '\n' ' ' || true)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$set" "$base" "$cand" "$thr" "$code" "$worse"
}

COST='agents.cost_model="linear:port_us=20000"'
if [ "$RUNS" = 1 ]; then
  for i in $(seq 0 "$PAIRS"); do run "plain-$i"; done
  for i in $(seq 0 "$PAIRS"); do run "cost-$i" --set "$COST"; done
  for s in 10 20 50; do
    us=$((20000 * (100 + s) / 100))
    for k in 0 1 2; do run "slow$s-$k" --set "agents.cost_model=\"linear:port_us=$us\""; done
  done
  for i in $(seq 0 "$PAIRS"); do run "rep-$i" --repeat 3; done
fi

printf 'set\tbaseline\tcandidate\tthreshold\texit\tregressed\n'
for i in $(seq 1 "$PAIRS"); do
  for thr in 5% 10% 15%; do cmp identical-plain "plain-$((i-1))" "plain-$i" "$thr"; done
  for thr in 5% 10%; do cmp identical-cost "cost-$((i-1))" "cost-$i" "$thr"; done
  if [ -d "$OUT/rep-$i" ]; then
    for thr in 5% 10% 15%; do cmp identical-repeat3 "rep-$((i-1))" "rep-$i" "$thr"; done
  fi
done
for s in 10 20 50; do
  for k in 0 1 2; do
    for thr in 5% 10%; do cmp "slower-$s%" "cost-$k" "slow$s-$k" "$thr" --force; done
  done
done
