#!/usr/bin/env bash
# Separate hosts on one machine: network namespaces joined by a bridge stand in for machines, a
# fleet of agents on each "fleet host", and a "run host" from which alcor-scale reaches them
# only over their 198.18.0.0/15 addresses (the range reserved for network benchmarks).
#
#   scripts/fleet-lab.sh up [--fleets N] [--agents M]   # N fleets (1-7) of M agents (<= 16,000)
#   ip netns exec as-lab-run target/release/alcor-scale run scenarios/fleets-20k.toml
#   scripts/fleet-lab.sh down                            # removes everything `up` made
#
# Fleet i (1..N) runs on 198.18.0.(2+i), its events on port 50100 there, its agents on the
# /18 block i (fleet 1: 198.18.64.0/18, fleet 2: 198.18.128.0/18, ...), shared listener. The
# run host (198.18.0.2) routes each block through its fleet host, so it keeps one neighbour
# entry per fleet, not one per agent. Root only (namespaces, addresses).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ALCOR_SCALE_BIN:-$PWD/target/release/alcor-scale}
P=${LAB_PREFIX:-as-lab}
STATE=${LAB_STATE:-$PWD/target/fleet-lab}
fleets=2
agents=10000

die() { echo "fleet-lab: $*" >&2; exit 1; }
block() { # the /18 of fleet $1 (1..7): 198.18.64.0, 198.18.128.0, 198.18.192.0, 198.19.0.0, ...
  local n=$1; echo "198.$((18 + n / 4)).$(((n % 4) * 64)).0"; }

usable() { # agent addresses in a /$1 (the fleet skips .0 and .255)
  local n=$((1 << (32 - $1))); if [ "$1" -ge 24 ]; then echo $((n - 2)); else echo $((n / 256 * 254)); fi; }

down() {
  if [ -d "$STATE" ]; then
    for f in "$STATE"/fleet-*.pid; do
      [ -f "$f" ] || continue
      pid=$(cat "$f"); kill -INT "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$f"
    done
  fi
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
    case "$ns" in
      "$P"-f*) ip netns exec "$ns" "$BIN" net down --dev eth0 >/dev/null 2>&1 || true ;;
    esac
    ip netns del "$ns"
  done
  echo "fleet-lab: down"
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces and addresses)"
  [ -x "$BIN" ] || die "$BIN is missing: cargo build --release first"
  [ "$fleets" -ge 1 ] && [ "$fleets" -le 7 ] || die "--fleets takes 1 to 7"
  [ "$agents" -ge 1 ] && [ "$agents" -le 16000 ] || die "--agents takes 1 to 16000 (one /18 per fleet)"
  ip netns list | grep -q "^$P-" && die "a lab is up already: scripts/fleet-lab.sh down first"
  mkdir -p "$STATE"
  trap 'echo "fleet-lab: up failed; removing what it made" >&2; down' ERR
  ip netns add "$P-sw"
  ip -n "$P-sw" link set lo up
  ip -n "$P-sw" link add br0 type bridge
  ip -n "$P-sw" link set br0 up
  join() { # namespace $1 on the bridge at 198.18.0.$2/24
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip -n "$P-sw" link add "lab$2" type veth peer name eth0 netns "$1"
    ip -n "$P-sw" link set "lab$2" master br0 up
    ip -n "$1" addr add "198.18.0.$2/24" dev eth0
    ip -n "$1" link set eth0 up
  }
  join "$P-run" 2
  remote=""
  for i in $(seq 1 "$fleets"); do
    ns="$P-f$i"; ip_=$((2 + i)); b=$(block "$i")
    join "$ns" "$ip_"
    ip -n "$P-run" route add "$b/18" via "198.18.0.$ip_"
    # Only as many addresses as agents: a whole /18 takes seconds to add and to remove.
    len=30; while [ "$(usable "$len")" -lt "$agents" ]; do len=$((len - 1)); done
    ip netns exec "$ns" "$BIN" net up --cidr "$b/$len" --dev eth0 >/dev/null
    base="${b%.0}.1"
    ip netns exec "$ns" "$BIN" agents --count "$agents" --base-ip "$base" --listen shared \
      --events "198.18.0.$ip_:50100" --duration "${LAB_DURATION:-2h}" >"$STATE/fleet-$i.log" 2>&1 &
    echo $! >"$STATE/fleet-$i.pid"
    remote="$remote\"198.18.0.$ip_:50100\", "
  done
  for i in $(seq 1 "$fleets"); do
    for _ in $(seq 1 100); do grep -q "events: JSON lines" "$STATE/fleet-$i.log" && break; sleep 0.2; done
    grep -q "events: JSON lines" "$STATE/fleet-$i.log" || die "fleet $i did not start: $(tail -3 "$STATE/fleet-$i.log")"
  done
  trap - ERR
  echo "fleet-lab: $fleets fleet(s) of $agents agents up; run from the run host:"
  echo "  ip netns exec $P-run $BIN run SCENARIO --set 'agents.remote=[${remote%, }]'"
}

cmd=${1:-}; shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --fleets) fleets=$2; shift 2 ;;
    --agents) agents=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
case "$cmd" in
  up) up ;;
  down) down ;;
  *) die "usage: scripts/fleet-lab.sh up [--fleets N] [--agents M] | down" ;;
esac
