//! The southbound target: no REST API; the harness builds Alcor-shaped goal states itself and
//! sends them to agents over gRPC, as Alcor's own test controller did, or through a broker.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use alcor_schema::HostResources;
use alcor_schema::{GoalStateV2, NeighborType, OperationType, ResourceIdType, ResourceType, neighbor_key};
use bytes::Bytes;
use control_plane::Southbound;
use control_plane::dpm::{HostMessage, MessageCounts};
use fake_agent::sample;
use prost::Message;
use rustc_hash::FxHashMap;

use crate::topology::{Op, PortPlan, Topology};

/// Pushes goal states straight to agents.
pub struct SouthboundTarget {
    southbound: Southbound,
    topo: Arc<Topology>,
    /// Where every host's messages go: the fleet's addresses, or one real agent.
    host_addr: Vec<Ipv4Addr>,
    /// Members of each subnet: port id → (sequence number, host).
    members: Mutex<Vec<FxHashMap<String, (u64, usize)>>>,
}

impl std::fmt::Debug for SouthboundTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SouthboundTarget").finish_non_exhaustive()
    }
}

impl SouthboundTarget {
    /// Sends through `southbound`; `host_addr` maps host index to the address pushed to.
    pub fn new(southbound: Southbound, topo: Arc<Topology>, host_addr: Vec<Ipv4Addr>) -> Self {
        let n = topo.subnets.len();
        Self {
            southbound,
            topo,
            host_addr,
            members: Mutex::new(vec![FxHashMap::default(); n]),
        }
    }

    fn ip_of(&self, subnet: usize, seq: u64) -> Ipv4Addr {
        let base: Ipv4Addr = self.topo.subnets[subnet]
            .cidr
            .split('/')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(Ipv4Addr::new(10, 0, 0, 0));
        Ipv4Addr::from(u32::from(base) + 2 + (seq / self.topo.subnets.len() as u64) as u32)
    }

    fn message(&self, host: usize, gs: GoalStateV2, listed: Vec<ResourceIdType>, neighbors: u64) -> HostMessage {
        let mut gs = gs;
        gs.host_resources
            .insert(self.host_addr[host].to_string(), HostResources { resources: listed });
        let bytes = Bytes::from(gs.encode_to_vec());
        HostMessage {
            vpc: gs.vpc_states.keys().next().map(|k| Arc::from(k.as_str())),
            host: self.host_addr[host],
            counts: MessageCounts {
                ports: gs.port_states.len() as u64,
                neighbors,
                bytes: bytes.len() as u64,
                ..Default::default()
            },
            bytes,
        }
    }

    /// Creates (or deletes) `p`: its own host gets the port with every member of its subnet as
    /// neighbors (Alcor's shape), each host in `neighbors` gets the port as a neighbor.
    pub async fn apply(&self, op: Op, p: &PortPlan, neighbors: &[Ipv4Addr]) -> Result<(), String> {
        let t = &self.topo;
        let subnet = &t.subnets[p.subnet];
        let vpc = &t.vpcs[subnet.vpc].id;
        let seq = p.seq;
        let ip = self.ip_of(p.subnet, seq);
        let mac = sample::mac(seq);
        let host_ip = t.hosts[p.host];
        let kind = if op == Op::Delete {
            OperationType::Delete
        } else {
            OperationType::Create
        };
        let mut messages = Vec::new();
        // Own host.
        let mut gs = GoalStateV2::default();
        let mut listed = Vec::new();
        let mut list = |t: ResourceType, id: &str| {
            listed.push(ResourceIdType {
                r#type: t as i32,
                id: id.into(),
            })
        };
        gs.vpc_states.insert(
            vpc.clone(),
            sample::vpc(OperationType::Info, vpc, 1000 + subnet.vpc as u32),
        );
        list(ResourceType::Vpc, vpc);
        gs.subnet_states.insert(
            subnet.id.clone(),
            sample::subnet(
                OperationType::Info,
                &subnet.id,
                vpc,
                &subnet.cidr,
                1000 + subnet.vpc as u64,
            ),
        );
        list(ResourceType::Subnet, &subnet.id);
        gs.port_states
            .insert(p.id.clone(), sample::port(kind, &p.id, vpc, &subnet.id, ip, &mac, &[]));
        list(ResourceType::Port, &p.id);
        let mut n_neighbors = 0;
        {
            let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
            let m = &mut members[p.subnet];
            if op == Op::Delete {
                m.remove(&p.id);
            } else {
                for (id, (s, h)) in m.iter() {
                    let key = neighbor_key(NeighborType::L2, id);
                    gs.neighbor_states.insert(
                        key.clone(),
                        sample::neighbor(
                            OperationType::Create,
                            NeighborType::L2,
                            id,
                            vpc,
                            &subnet.id,
                            self.ip_of(p.subnet, *s),
                            &sample::mac(*s),
                            t.hosts[*h],
                        ),
                    );
                    list(ResourceType::Neighbor, &key);
                    n_neighbors += 1;
                }
                m.insert(p.id.clone(), (seq, p.host));
            }
        }
        messages.push(self.message(p.host, gs, listed, n_neighbors));
        // Neighbor hosts.
        let key = neighbor_key(NeighborType::L2, &p.id);
        for n in neighbors {
            let Some(h) = t.hosts.iter().position(|x| x == n) else {
                continue;
            };
            let mut gs = GoalStateV2::default();
            gs.neighbor_states.insert(
                key.clone(),
                sample::neighbor(kind, NeighborType::L2, &p.id, vpc, &subnet.id, ip, &mac, host_ip),
            );
            let listed = vec![ResourceIdType {
                r#type: ResourceType::Neighbor as i32,
                id: key.clone(),
            }];
            messages.push(self.message(h, gs, listed, 1));
        }
        let results = self.southbound.push_all(messages).await;
        match results.iter().find(|r| !r.ok) {
            None => Ok(()),
            Some(r) => Err(if r.error.as_deref().is_some_and(|e| e.contains("timed out")) {
                "timeout".into()
            } else {
                "push_failed".into()
            }),
        }
    }
}
