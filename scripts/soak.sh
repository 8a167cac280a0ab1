#!/usr/bin/env bash
# Soak: port churn for a long time (default 1 h) with the fleet in its own process, sampling
# the harness's and the fleet's resident memory and open descriptors every 10 s, to show both
# stay bounded. Loopback only; everything it starts is stopped at the end, also on failure.
#
#   scripts/soak.sh [DURATION] [OUT]      # e.g. scripts/soak.sh 1h target/soak
#   CP_APART=1 scripts/soak.sh 20m        # the control plane in its own process too
#   HEAP=1 scripts/soak.sh 1h             # also the bytes live on each process's heap
#   SOAK_EVENTS=127.0.0.1:50193 SOAK_BASE_IP=127.11.0.1 SOAK_CP=127.0.0.1:19011 scripts/soak.sh …
#                                         # other loopback addresses: two soaks side by side
#
# With HEAP=1 the binary is built with feature `heap-stats` (its own target folder,
# target/heap-stats: a first build takes minutes), so that what a process holds on its heap is
# told from what its allocator keeps: RSS that steps up while the heap stays flat is allocator
# retention, not a leak. To find what grows: a build with feature `system-allocator` under
# heaptrack, then scripts/heap-growth.py between two moments of the recording.
# Writes OUT/usage.csv (t_s, harness and fleet RSS in MB and descriptors, and with CP_APART the
# control plane's), OUT/run (the run folder) and prints first/last/max of each with the growth
# per 10 minutes after warm-up (a least-squares trend). With CP_APART the harness drives the control plane as an
# `alcor` target over REST, so that the harness's own memory is told from the control plane's.
set -euo pipefail

# All of it in a function called on the last line, so that bash has read the whole script
# before it runs any of it: an edit to the file during an hour's soak otherwise changes what the
# running soak does next (one such edit truncated a soak's usage.csv).
main() {
cd "$(dirname "$0")/.."
DURATION=${1:-1h}
OUT=${2:-target/soak}
BIN=${ALCOR_SCALE_BIN:-$PWD/target/release/alcor-scale}
# Addresses, all on loopback; set them to run two soaks side by side.
EVENTS=${SOAK_EVENTS:-127.0.0.1:50190}
BASE_IP=${SOAK_BASE_IP:-127.8.0.1}
CP_LISTEN=${SOAK_CP:-127.0.0.1:19009}
if [ -n "${HEAP:-}" ]; then
  cargo build --release --quiet --features harness/heap-stats --target-dir target/heap-stats -p harness --bin alcor-scale
  BIN=$PWD/target/heap-stats/release/alcor-scale
fi
[ -x "$BIN" ] || cargo build --release --quiet
rm -rf "$OUT"; mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# Where each process writes its live heap (feature heap-stats; ignored by other builds).
heapfile() { echo "$OUT/heap-$1"; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; sleep 2;
            for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# The fleet of port-churn (100 hosts), apart, so that its memory is its own.
ALCOR_SCALE_HEAP_FILE=$(heapfile fleet) RUST_LOG=warn "$BIN" agents --count 100 --base-ip "$BASE_IP" --cost-model aca-2021 \
  --events "$EVENTS" --connections-per-agent 4 >"$OUT/agents.log" 2>&1 &
fleet=$!; pids+=("$fleet")
for _ in $(seq 1 100); do grep -q "events:" "$OUT/agents.log" && break; sleep 0.1; done

target=()
cp=
if [ -n "${CP_APART:-}" ]; then
  ALCOR_SCALE_HEAP_FILE=$(heapfile cp) RUST_LOG=warn "$BIN" control-plane --listen "$CP_LISTEN" >"$OUT/cp.log" 2>&1 &
  cp=$!; pids+=("$cp")
  for _ in $(seq 1 100); do grep -q "listening" "$OUT/cp.log" && break; sleep 0.1; done
  target=(--set 'target.kind="alcor"' --set "target.url=\"http://$CP_LISTEN\"")
fi
ALCOR_SCALE_HEAP_FILE=$(heapfile harness) RUST_LOG=warn "$BIN" run scenarios/port-churn.toml --quiet --out "$OUT/run" \
  --set "agents.remote=[\"$EVENTS\"]" --set "phases[0].duration=\"$DURATION\"" \
  "${target[@]}" >"$OUT/run.log" 2>&1 &
harness=$!; pids+=("$harness")

mb() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
heap() { cat "$(heapfile "$1")" 2>/dev/null || echo 0; }
header="t_s,harness_rss_mb,harness_fds,fleet_rss_mb,fleet_fds${cp:+,cp_rss_mb,cp_fds}"
[ -n "${HEAP:-}" ] && header="$header,harness_heap_mb,fleet_heap_mb${cp:+,cp_heap_mb}"
echo "$header" >"$OUT/usage.csv"
start=$(date +%s)
while kill -0 "$harness" 2>/dev/null; do
  row="$(( $(date +%s) - start )),$(mb $harness),$(fds $harness),$(mb $fleet),$(fds $fleet)"
  [ -n "$cp" ] && row="$row,$(mb $cp),$(fds $cp)"
  if [ -n "${HEAP:-}" ]; then
    row="$row,$(heap harness),$(heap fleet)"
    [ -n "$cp" ] && row="$row,$(heap cp)"
  fi
  echo "$row" >>"$OUT/usage.csv"
  sleep 10
done
wait "$harness" || echo "soak: the run exited $? (its verdict; see $OUT/run.log)" >&2

python3 - "$OUT/usage.csv" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
rows = [r for r in rows if float(r["harness_rss_mb"]) > 0]
if not rows:
    sys.exit("soak: no samples")
end = int(rows[-1]["t_s"])
# After warm-up, and before the last minute (the run's end writes its report: a spike that is
# not the load's).
warm = [r for r in rows if 300 <= int(r["t_s"]) <= end - 60] or rows
for k in [k for k in rows[0] if k != "t_s"]:
    v = [float(r[k]) for r in rows]
    w = [(int(r["t_s"]), float(r[k])) for r in warm]
    # Least-squares slope, not last minus first: allocators grow in steps, and one step near
    # either end would make the trend.
    n = len(w)
    mt = sum(t for t, _ in w) / n
    mv = sum(x for _, x in w) / n
    var = sum((t - mt) ** 2 for t, _ in w) or 1
    per10 = sum((t - mt) * (x - mv) for t, x in w) / var * 600
    print(f"{k:15} first {v[0]:8.1f}  after 5 min {w[0][1]:8.1f}  before the end {w[-1][1]:8.1f}  max {max(v):8.1f}  trend after 5 min {per10:+.1f} per 10 min")
PY
}

main "$@"
