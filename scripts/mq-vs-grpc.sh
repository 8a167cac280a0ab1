#!/usr/bin/env bash
# gRPC push vs the MQ southbound (a local NATS JetStream), side by side, on the same scenario
# (scenarios/mq-fanout.toml): every create fans out to every host of one subnet. For each host
# count and fan-out mode it runs both southbounds with 16 closed users creating ports, and prints
# one table: create throughput, api and neighbor_converged percentiles, and the broker's CPU.
# Loopback only; each run starts and stops its own broker.
#
#   scripts/mq-vs-grpc.sh [HOSTS...] [-- OUT]     # default: 10 100 1000, OUT target/mq-vs-grpc
#
# With 16 closed users the gRPC control plane answers a create after every host applied it; on
# the MQ path once the broker holds every host's message. So the closed loop's creates/s is the
# control plane's pace, and neighbor_converged says whether the agents kept up with it.
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=()
OUT=target/mq-vs-grpc
while [ $# -gt 0 ]; do
  case $1 in
    --) OUT=$2; shift 2 ;;
    *) HOSTS+=("$1"); shift ;;
  esac
done
[ ${#HOSTS[@]} -gt 0 ] || HOSTS=(10 100 1000)
BIN=${ALCOR_SCALE_BIN:-$PWD/target/release/alcor-scale}
[ -x "$BIN" ] || cargo build --release --quiet
mkdir -p "$OUT"
for h in "${HOSTS[@]}"; do
  requests=400
  for fanout in alcor incremental; do
    for sb in grpc mq; do
      dir="$OUT/h$h-$fanout-$sb"
      echo "== $h hosts, $fanout fan-out, $sb" >&2
      RUST_LOG=warn "$BIN" run scenarios/mq-fanout.toml --quiet --out "$dir" \
        --set "agents.count=$h" --set "target.fanout=\"$fanout\"" --set "target.southbound=\"$sb\"" \
        --set 'target.setup_fanout="incremental"' \
        --set "phases=[{name=\"closed\", model=\"closed\", users=16, requests=$requests, mix={create=1}}]" \
        >"$dir.log" 2>&1 || echo "   (exit $?: see $dir.log)" >&2
    done
  done
done
python3 - "$OUT" "${HOSTS[@]}" <<'PY'
import json, sys, os
out, hosts = sys.argv[1], sys.argv[2:]
ms = lambda m, k: f"{m[k] / 1000:.1f}" if m else "-"
print("| hosts | fan-out | southbound | creates/s | api p50 ms | neighbor_converged p50 ms | p99 ms | messages | broker CPU share | result |")
print("|---:|---|---|---:|---:|---:|---:|---:|---:|---|")
for h in hosts:
    for fanout in ["alcor", "incremental"]:
        for sb in ["grpc", "mq"]:
            p = os.path.join(out, f"h{h}-{fanout}-{sb}", "summary.json")
            if not os.path.exists(p):
                print(f"| {h} | {fanout} | {sb} | - | - | - | - | - | - | no summary |")
                continue
            s = json.load(open(p))
            m = s["metrics"]
            nc = m.get("neighbor_converged")
            b = s.get("broker") or {}
            share = "-"
            if b.get("cpu_s") is not None and b.get("harness_cpu_s") is not None:
                share = f"{100 * b['cpu_s'] / (b['cpu_s'] + b['harness_cpu_s']):.0f} %"
            # Goal-state messages the agents processed in the measured phase.
            msgs = m.get("agent_processing", {}).get("count", 0)
            verdict = "PASS" if all(r["pass"] for r in s["slo"]) and not s["partial"] else "FAIL"
            print(f"| {h} | {fanout} | {sb} | {s['throughput']['requests_per_s']:.1f} | {ms(m.get('api'), 'p50')} | {ms(nc, 'p50')} | {ms(nc, 'p99')} | {msgs} | {share} | {verdict} |")
PY
