#!/usr/bin/env bash
# Starts a real OpenStack Neutron on loopback for alcor-scale to drive (target.kind = "neutron").
#
# What it starts, each recorded in $STATE so that neutron-down.sh stops exactly that:
#   - a PostgreSQL cluster of its own (initdb in $STATE/pg, 127.0.0.1:$PG_PORT), not the
#     machine's: SQLite fails under concurrent requests;
#   - Neutron $NEUTRON_VERSION from PyPI in a virtualenv ($NEUTRON_VENV, default
#     target/neutron-venv, kept between runs), its schema built from the models (its migrations
#     fail on PostgreSQL 15), ML2 with the openvswitch mechanism driver, no authentication, no
#     message bus;
#   - the API under gunicorn on 127.0.0.1:$NEUTRON_PORT (there is no neutron-server in 29.0.0).
#   - with --agents N: N simulated Open vSwitch agents (rows, no processes; see
#     neutron/neutron_agents.py) on hosts $AGENT_PREFIX0.., so that Neutron binds ports to them.
#     Ports then bind but stay DOWN: no agent process reports them up.
#   - with --ovn N instead: real OVN (Debian's ovn-central, ovn-host, openvswitch-switch,
#     installed if missing): its northbound and southbound databases, ovn-northd, and N chassis
#     named $AGENT_PREFIX0.., each its own ovsdb-server, ovs-vswitchd (userspace, dummy
#     interfaces: no kernel module, no systemd) and ovn-controller; Neutron uses the OVN
#     mechanism driver, and neutron/ovn_plug.py plugs every bound port into its chassis as
#     Nova would, so that real ovn-controllers claim them and Neutron sets them ACTIVE.
#
# Usage: scripts/neutron-up.sh [--agents N | --ovn N] [--workers N]
# Env:   NEUTRON_STATE (default target/neutron), NEUTRON_VENV, NEUTRON_PORT (9696), NEUTRON_PG_PORT (55432),
#        NEUTRON_OVN_NB_PORT (6641), NEUTRON_OVN_SB_PORT (6642)
# Prints the API URL on its last line. Needs python3 with venv, and PostgreSQL's server
# binaries (Debian: postgresql-15); as root it runs PostgreSQL as the postgres user.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${NEUTRON_STATE:-$ROOT/target/neutron}
PORT=${NEUTRON_PORT:-9696}
PG_PORT=${NEUTRON_PG_PORT:-55432}
NEUTRON_VERSION=29.0.0
AGENTS=0
OVN=0
NB_PORT=${NEUTRON_OVN_NB_PORT:-6641}
SB_PORT=${NEUTRON_OVN_SB_PORT:-6642}
WORKERS=2
AGENT_PREFIX=${NEUTRON_AGENT_PREFIX:-alcor-scale-host-}
while [ $# -gt 0 ]; do
  case $1 in
    --agents) AGENTS=$2; shift 2 ;;
    --ovn) OVN=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    *) echo "neutron-up.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
say() { echo "neutron-up: $*" >&2; }
if [ "$AGENTS" -gt 0 ] && [ "$OVN" -gt 0 ]; then
  say "--agents and --ovn exclude each other"; exit 2
fi

if [ -f "$STATE/gunicorn.pid" ] && kill -0 "$(cat "$STATE/gunicorn.pid")" 2>/dev/null; then
  say "already running (stop it with scripts/neutron-down.sh)"
  echo "http://127.0.0.1:$PORT"
  exit 0
fi
mkdir -p "$STATE"

# PostgreSQL's server binaries.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
  say "PostgreSQL's server binaries are missing (Debian: apt-get install postgresql)"
  exit 1
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Neutron in a virtualenv, installed once.
VENV=${NEUTRON_VENV:-$ROOT/target/neutron-venv}
if [ ! -x "$VENV/bin/gunicorn" ] || ! "$VENV/bin/python" -c "import neutron" 2>/dev/null; then
  say "installing neutron $NEUTRON_VERSION into $VENV (about 30 s)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "neutron==$NEUTRON_VERSION" gunicorn psycopg2-binary
fi

# A PostgreSQL cluster of its own.
PG=$STATE/pg
if [ ! -f "$PG/data/PG_VERSION" ]; then
  rm -rf "$PG"; mkdir -p "$PG/data" "$PG/sock"
  if [ "$(id -u)" = 0 ]; then chown -R postgres "$PG"; fi
  as_pg "$PG_BIN/initdb" -D "$PG/data" -U postgres -A trust >/dev/null
fi
as_pg "$PG_BIN/pg_ctl" -D "$PG/data" -l "$PG/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG/sock -c max_connections=200 -c fsync=off" start >/dev/null
echo started >"$STATE/pg.started"
DB_URL="postgresql+psycopg2://postgres@127.0.0.1:$PG_PORT/neutron"
as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc 'DROP DATABASE IF EXISTS neutron' >/dev/null 2>&1
as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc 'CREATE DATABASE neutron' >/dev/null
PYTHONWARNINGS=ignore "$VENV/bin/python" scripts/neutron/neutron_schema.py "$DB_URL" 2>&1 | grep -v -i eventlet >&2 || true

# Real OVN: databases, northd, chassis, and the compute side that plugs ports.
if [ "$OVN" -gt 0 ]; then
  if ! command -v ovn-northd >/dev/null || ! command -v ovs-vswitchd >/dev/null || ! command -v ovn-controller >/dev/null; then
    SUDO=""; if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
    say "installing OVN and Open vSwitch (Debian packages)"
    $SUDO apt-get install -y -qq --no-install-recommends ovn-central ovn-host openvswitch-switch >/dev/null
  fi
  O=$STATE/ovn
  rm -rf "$O"; mkdir -p "$O"
  echo started >"$STATE/ovn.started"
  for db in nb sb; do
    schema=/usr/share/ovn/ovn-$db.ovsschema
    port=$NB_PORT; [ $db = sb ] && port=$SB_PORT
    ovsdb-tool create "$O/$db.db" "$schema"
    ovsdb-server --detach --no-chdir --pidfile="$O/$db.pid" --unixctl="$O/$db.ctl" --log-file="$O/$db.log" \
      --remote="punix:$O/$db.sock" --remote="ptcp:$port:127.0.0.1" "$O/$db.db" 2>/dev/null
  done
  OVN_RUNDIR=$O ovn-northd --detach --no-chdir --pidfile="$O/northd.pid" --unixctl="$O/northd.ctl" \
    --log-file="$O/northd.log" --ovnnb-db="unix:$O/nb.sock" --ovnsb-db="unix:$O/sb.sock" 2>/dev/null
  PLUG_ARGS=()
  for i in $(seq 0 $((OVN - 1))); do
    C=$O/chassis-$i; mkdir -p "$C"
    host=$AGENT_PREFIX$i
    ovsdb-tool create "$C/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ovsdb-server --detach --no-chdir --pidfile="$C/db.pid" --unixctl="$C/db.ctl" --log-file="$C/db.log" \
      --remote="punix:$C/db.sock" "$C/conf.db" 2>/dev/null
    ovs-vsctl --db="unix:$C/db.sock" --no-wait init
    # Each chassis's own run directory: its bridge's management socket and control sockets.
    OVS_RUNDIR=$C ovs-vswitchd --detach --no-chdir --pidfile="$C/vswitchd.pid" --log-file="$C/vswitchd.log" \
      --enable-dummy=override "unix:$C/db.sock" 2>/dev/null
    # Encapsulation addresses only label the chassis (the dummy datapath sends nothing).
    ovs-vsctl --db="unix:$C/db.sock" set open . "external-ids:system-id=$host" "external-ids:hostname=$host" \
      "external-ids:ovn-remote=tcp:127.0.0.1:$SB_PORT" external-ids:ovn-encap-type=geneve \
      "external-ids:ovn-encap-ip=127.0.$((100 + i / 250)).$((1 + i % 250))"
    OVS_RUNDIR=$C OVN_RUNDIR=$C ovn-controller --detach --no-chdir --pidfile="$C/ovn-controller.pid" \
      --log-file="$C/ovn-controller.log" "unix:$C/db.sock" 2>/dev/null
    PLUG_ARGS+=("$host=$C/db.sock")
  done
  "$VENV/bin/python" -u scripts/neutron/ovn_plug.py "tcp:127.0.0.1:$NB_PORT" "${PLUG_ARGS[@]}" \
    >>"$O/plug.log" 2>&1 &
  echo $! >"$O/plug.pid"
  for _ in $(seq 1 50); do
    [ "$(ovn-sbctl --db="unix:$O/sb.sock" --bare --columns=name list Chassis | grep -c .)" -ge "$OVN" ] && break
    sleep 0.2
  done
  say "OVN: $OVN chassis registered ($O)"
fi

: >"$STATE/neutron.log" 2>/dev/null || true
: >"$STATE/access.log" 2>/dev/null || true

# Configuration.
ETC=$STATE/etc
mkdir -p "$ETC" "$STATE/lock" "$STATE/state"
SITE=$("$VENV/bin/python" -c 'import neutron, os; print(os.path.dirname(neutron.__file__))')
PASTE=$(ls "$VENV"/etc/neutron/api-paste.ini 2>/dev/null || echo "$SITE/../../../../etc/neutron/api-paste.ini")
cat >"$ETC/neutron.conf" <<CONF
[DEFAULT]
core_plugin = ml2
service_plugins = $([ "$OVN" -gt 0 ] && echo ovn-router || echo router)
auth_strategy = noauth
transport_url = fake:/
state_path = $STATE/state
api_paste_config = $PASTE
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
dhcp_agent_notification = false
allow_overlapping_ips = true
use_stderr = true
debug = false
# Simulated agents' rows are written once; this keeps them alive for the run.
agent_down_time = 2000000
[database]
connection = $DB_URL
max_pool_size = 20
[oslo_concurrency]
lock_path = $STATE/lock
[oslo_messaging_notifications]
driver = noop
[agent]
report_interval = 0
[quotas]
quota_network = -1
quota_subnet = -1
quota_port = -1
quota_router = -1
quota_security_group = -1
quota_security_group_rule = -1
CONF
if [ "$OVN" -gt 0 ]; then
  MECH=ovn; OVERLAY=geneve; OVERLAY_OPTS="max_header_size = 38"
else
  MECH=openvswitch; OVERLAY=vxlan; OVERLAY_OPTS=""
fi
cat >"$ETC/ml2_conf.ini" <<CONF
[ml2]
type_drivers = local,flat,vlan,$OVERLAY
tenant_network_types = $OVERLAY
mechanism_drivers = $MECH
extension_drivers = port_security
overlay_ip_version = 4
[ml2_type_$OVERLAY]
vni_ranges = 1:65536
$OVERLAY_OPTS
[ml2_type_vlan]
network_vlan_ranges = physnet1:100:4000
[ml2_type_flat]
flat_networks = *
CONF
if [ "$OVN" -gt 0 ]; then
  cat >>"$ETC/ml2_conf.ini" <<CONF
[ovn]
ovn_nb_connection = tcp:127.0.0.1:$NB_PORT
ovn_sb_connection = tcp:127.0.0.1:$SB_PORT
ovn_metadata_enabled = false
enable_distributed_floating_ip = false
CONF
fi

if [ "$AGENTS" -gt 0 ]; then
  PYTHONWARNINGS=ignore "$VENV/bin/python" scripts/neutron/neutron_agents.py "$DB_URL" "$AGENTS" "$AGENT_PREFIX" >&2
fi

# The API.
say "starting the API on 127.0.0.1:$PORT ($WORKERS workers)"
# ASGI_WORKERS: how Neutron learns the API worker count outside uWSGI and mod_wsgi; the OVN
# driver's hash ring refuses to route OVN events (port up -> ACTIVE) without it. The access log
# gives each request's time inside the server (%(M)s ms), to tell Neutron's time from queueing.
OS_NEUTRON_CONFIG_DIR=$ETC OS_NEUTRON_CONFIG_FILES="neutron.conf;ml2_conf.ini" ASGI_WORKERS=$WORKERS \
  PYTHONWARNINGS=ignore PYTHONPATH=$ROOT/scripts/neutron "$VENV/bin/gunicorn" -w "$WORKERS" --threads 2 -b "127.0.0.1:$PORT" \
  --timeout 120 --pid "$STATE/gunicorn.pid" --daemon --error-logfile "$STATE/neutron.log" \
  --access-logfile "$STATE/access.log" --access-logformat '%(t)s %(r)s %(s)s %(M)sms' \
  --capture-output neutron_app:application
for _ in $(seq 1 120); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/v2.0/networks" 2>/dev/null; then
    say "ready (log: $STATE/neutron.log)"
    echo "http://127.0.0.1:$PORT"
    exit 0
  fi
  sleep 0.5
done
say "the API did not answer within 60 s; the end of $STATE/neutron.log:"
tail -20 "$STATE/neutron.log" >&2 || true
exit 1
