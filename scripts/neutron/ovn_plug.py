"""The compute side of the real OVN chassis that neutron-up.sh --ovn starts.

Nova plugs a VM's interface into br-int with external_ids:iface-id = the Neutron port's id; the
chassis's ovn-controller then claims the port, OVN marks it up and Neutron sets it ACTIVE. Here
nothing boots: this process follows OVN's northbound Logical_Switch_Port table (`ovsdb-client
monitor`, pushed, not polled) and plugs each VM port (type "") into the br-int of the chassis its
options:requested-chassis names (Neutron sets it to binding:host_id), moves it when the port is
rebound, and unplugs it when the port is deleted. Interfaces are OVS dummy interfaces
(ovs-vswitchd runs with --enable-dummy=override): no kernel datapath, no root.

Usage: python ovn_plug.py NB_REMOTE HOST=OVS_DB_SOCKET [HOST=OVS_DB_SOCKET ...]
"""
import json
import subprocess
import sys
import time

nb = sys.argv[1]
chassis = dict(a.split("=", 1) for a in sys.argv[2:])


def vsctl(host, *args):
    sock = chassis.get(host)
    if sock is None:
        return
    r = subprocess.run(["ovs-vsctl", "--timeout=10", f"--db=unix:{sock}", *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"ovn_plug: ovs-vsctl on {host}: {r.stderr.strip()}", file=sys.stderr, flush=True)


def ifname(port):
    return "tap" + port[:11]


def plug(host, port):
    name = ifname(port)
    print(f"{time.time():.3f} plug {port} on {host}", file=sys.stderr, flush=True)
    vsctl(host, "--may-exist", "add-port", "br-int", name, "--", "set", "Interface", name,
          f"external-ids:iface-id={port}", "external-ids:iface-status=active")


def unplug(host, port):
    vsctl(host, "--if-exists", "del-port", "br-int", ifname(port))


def requested(options):
    # An OVSDB map: ["map", [[key, value], ...]].
    return dict(options[1]).get("requested-chassis") if options else None


plugged = {}  # row uuid -> (port, host)
mon = subprocess.Popen(
    ["ovsdb-client", "monitor", nb, "OVN_Northbound", "Logical_Switch_Port", "name,options,type", "--format=json"],
    stdout=subprocess.PIPE, text=True)
print(f"ovn_plug: plugging ports for {', '.join(sorted(chassis))}", file=sys.stderr, flush=True)
for line in mon.stdout:
    update = json.loads(line)
    old_uuid = None
    for row, action, name, options, typ in update["data"]:
        if action == "old":
            old_uuid = row
            continue
        uuid = old_uuid if action == "new" else row
        before = plugged.pop(uuid, None)
        if action == "delete":
            if before:
                unplug(before[1], before[0])
            continue
        if typ != "":
            continue  # router ports, localports: nothing to plug
        host = requested(options)
        if before and before[1] != host:
            unplug(before[1], before[0])
        if host in chassis:
            if not before or before[1] != host:
                plug(host, name)
            plugged[uuid] = (name, host)
sys.exit(mon.wait())
