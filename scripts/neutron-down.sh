#!/usr/bin/env bash
# Stops what neutron-up.sh started, and only that: its gunicorn (by its pid file) and its own
# PostgreSQL cluster, whose data it then removes. The virtualenv stays for the next start.
set -uo pipefail
cd "$(dirname "$0")/.."
STATE=${NEUTRON_STATE:-$PWD/target/neutron}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ -f "$STATE/gunicorn.pid" ]; then
  pid=$(cat "$STATE/gunicorn.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$STATE/gunicorn.pid"
fi
if [ -f "$STATE/ovn.started" ]; then
  # The plugger first (it would replug), then every daemon by its pid file.
  for f in "$STATE/ovn/plug.pid" "$STATE"/ovn/chassis-*/ovn-controller.pid "$STATE"/ovn/chassis-*/vswitchd.pid \
           "$STATE"/ovn/chassis-*/db.pid "$STATE/ovn/northd.pid" "$STATE/ovn/nb.pid" "$STATE/ovn/sb.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null
  done
  rm -rf "$STATE/ovn" "$STATE/ovn.started"
fi
if [ -f "$STATE/pg.started" ]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  as_pg "$PG_BIN/pg_ctl" -D "$STATE/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$STATE/pg" "$STATE/pg.started" "$STATE/state" "$STATE/lock"
fi
echo "neutron-down: stopped" >&2
