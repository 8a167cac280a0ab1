"""Registers simulated Open vSwitch agents: `python neutron_agents.py DB_URL COUNT PREFIX`.

Neutron binds a port only to a host whose L2 agent is alive. These rows are what an agent's state
report would write (type, host, tunnel types, heartbeat), so Neutron lists the hosts in
GET /v2.0/agents and binds ports to them (vif_type ovs). No agent process runs: nothing ever sets
a port ACTIVE through them. neutron.conf's agent_down_time keeps them alive for the run.
"""
import datetime
import json
import sys
import uuid

import sqlalchemy as sa

url, count, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
config = {
    "bridge_mappings": {},
    "tunnel_types": ["vxlan"],
    "tunneling_ip": "127.0.0.1",
    "l2_population": False,
    "ovs_hybrid_plug": False,
    "datapath_type": "system",
    "simulated_by": "alcor-scale",
}
engine = sa.create_engine(url)
with engine.begin() as db:
    db.execute(sa.text("DELETE FROM agents WHERE host LIKE :p"), {"p": prefix + "%"})
    db.execute(
        sa.text(
            "INSERT INTO agents (id, agent_type, \"binary\", topic, host, admin_state_up, created_at,"
            " started_at, heartbeat_timestamp, configurations, load)"
            " VALUES (:id, 'Open vSwitch agent', 'neutron-openvswitch-agent', 'N/A', :host, true,"
            " :now, :now, :now, :conf, 0)"
        ),
        [
            {"id": str(uuid.uuid4()), "host": f"{prefix}{i}", "now": now, "conf": json.dumps(config)}
            for i in range(count)
        ],
    )
print(f"registered {count} simulated Open vSwitch agents: {prefix}0 .. {prefix}{count - 1}")
