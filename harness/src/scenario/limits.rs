//! What this process can hold, checked before a run rather than found by running out: open
//! files for agents and users, memory for ports, neighbor states and users, and the open
//! model's rate. Each refusal names the limit and the figure that passed it.
//!
//! The per-item sizes come from the 1,000,000-port big-goalstate runs (docs/PERFORMANCE.md):
//! 6.85 GB peak with 2 agents and 8.37 GB with 10, so about 190 bytes per neighbor state an
//! agent holds and about 6.5 KB per port for the rest (the control plane's records, the
//! harness's model, and the copies of the goal state that lists them all). A run near the edge
//! may be refused, which beats an allocation failure twenty minutes in.

use super::{ModelKind, Scenario, TargetKind};

/// The open model's scheduler issues at most this many requests per second (it plans each
/// request on one thread; the measured ceiling here is far lower, docs/PERFORMANCE.md).
pub const MAX_OPEN_RATE: f64 = 1_000_000.0;
/// Memory per port the run holds: the harness's model and correlation entry, the reference
/// control plane's records of it, and its share of a goal state that lists the whole subnet.
pub const BYTES_PER_PORT: u64 = 6_656;
/// Memory per neighbor state held by an agent (a port as one other host knows it).
pub const BYTES_PER_NEIGHBOR: u64 = 256;
/// Memory per goose user (its task, client and connection buffers).
pub const BYTES_PER_USER: u64 = 256 * 1024;
/// Descriptors per goose user: its one connection.
pub const FDS_PER_USER: u64 = 1;

/// The most memory a run may plan to use: this share of what the host has available.
pub const MEMORY_SHARE: f64 = 0.8;

/// What the host offers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Open-files limit this process can reach (the hard limit).
    pub fds: u64,
    /// Memory available, bytes.
    pub memory: u64,
}

impl Capacity {
    /// This host's, now.
    pub fn here() -> Self {
        use procfs::Current;
        let fds = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(u64::MAX, |(_, hard)| hard);
        let memory = procfs::Meminfo::current()
            .ok()
            .and_then(|m| m.mem_available)
            .unwrap_or(u64::MAX);
        Self { fds, memory }
    }
}

/// Ports the run holds at most: setup's, plus every create its phases can issue.
pub fn max_ports(s: &Scenario) -> u64 {
    let setup = s.topology_sizes().last().copied().unwrap_or(0);
    // Measured phases run once per size.
    let rounds = 1 + s.topology.grow_to.len() as u64;
    let mut creates = 0u64;
    for ph in &s.phases {
        let weight = ph.mix.create + ph.mix.update + ph.mix.delete;
        let share = if weight == 0 {
            0.0
        } else {
            f64::from(ph.mix.create) / f64::from(weight)
        };
        let issued = match ph.model {
            ModelKind::Open => {
                let by_time: f64 = ph.open_stages().iter().map(|st| st.requests() as f64).sum();
                ph.requests.map_or(by_time, |r| by_time.min(r as f64))
            }
            ModelKind::Step => match (ph.start_rate, ph.step_rate, ph.max_rate, ph.step_duration) {
                (Some(a), Some(st), Some(b), Some(d)) if st > 0.0 => {
                    let stages = ((b - a) / st).floor().max(0.0) + 1.0;
                    (a + b) / 2.0 * stages * d.as_secs_f64()
                }
                _ => 0.0,
            },
            // A closed phase's rate is the target's: only a request budget bounds it.
            ModelKind::Closed => ph.requests.unwrap_or(0) as f64,
        };
        creates = creates.saturating_add((issued * share) as u64);
    }
    setup.saturating_add(creates.saturating_mul(rounds))
}

/// Neighbor states the agents hold at most: each port is known by every other host with a port
/// in its subnet (an upper bound: routers and security groups add hosts, placement may put a
/// subnet's ports on fewer hosts).
pub fn max_neighbor_states(s: &Scenario) -> u64 {
    let subnets =
        u64::from(s.topology.projects) * u64::from(s.topology.vpcs_per_project) * u64::from(s.topology.subnets_per_vpc);
    let per_subnet = max_ports(s).div_ceil(subnets.max(1));
    let hosts = (s.agents.count as u64).min(per_subnet);
    // Neighbor states exist only for agents the harness runs.
    if s.target.kind == TargetKind::Southbound && s.target.agent.is_some() {
        return 0;
    }
    per_subnet
        .saturating_mul(hosts.saturating_sub(1))
        .saturating_mul(subnets.max(1))
}

/// Every bound this scenario passes on `cap`, as (field, message).
pub fn check(s: &Scenario, cap: Capacity) -> Vec<(String, String)> {
    let mut p = Vec::new();
    let per_agent = 2 + s.target.channels_per_host as u64;
    let agent_fds = s.agents.count as u64 * per_agent + fake_agent::fleet::FD_RESERVE;
    if agent_fds > cap.fds {
        p.push((
            "agents.count".into(),
            format!(
                "{} agents need about {agent_fds} open files ({per_agent} each + {} spare), above this host's limit of {}; at most {} fit",
                s.agents.count,
                fake_agent::fleet::FD_RESERVE,
                cap.fds,
                cap.fds.saturating_sub(fake_agent::fleet::FD_RESERVE) / per_agent
            ),
        ));
    }
    let mut users_max = 0u64;
    for (i, ph) in s
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("phases[{i}]"), p))
        .chain(
            std::iter::once(("setup".to_owned(), &s.setup))
                .chain(s.teardown.iter().map(|t| ("teardown".to_owned(), t))),
        )
    {
        for (f, rate) in ph
            .rate
            .map(|r| (format!("{i}.rate"), r))
            .into_iter()
            .chain(
                ph.stages
                    .iter()
                    .enumerate()
                    .map(|(k, st)| (format!("{i}.stages[{k}].rate"), st.rate)),
            )
            .chain(ph.max_rate.map(|r| (format!("{i}.max_rate"), r)))
        {
            if rate > MAX_OPEN_RATE {
                p.push((
                    f,
                    format!("{rate} requests/s is above what the open model can schedule ({MAX_OPEN_RATE}/s)"),
                ));
            }
        }
        if ph.model == ModelKind::Closed
            && let Some(u) = ph.users
        {
            let u = u64::from(u);
            users_max = users_max.max(u);
            let free = cap.fds.saturating_sub(agent_fds);
            if u * FDS_PER_USER > free {
                p.push((
                    format!("{i}.users"),
                    format!(
                        "{u} users need {u} connections; this host's open-files limit ({}) leaves {free} beside the agents",
                        cap.fds
                    ),
                ));
            }
        }
    }
    let ports = max_ports(s);
    let neighbors = max_neighbor_states(s);
    let need = ports
        .saturating_mul(BYTES_PER_PORT)
        .saturating_add(neighbors.saturating_mul(BYTES_PER_NEIGHBOR))
        .saturating_add(users_max.saturating_mul(BYTES_PER_USER));
    let budget = (cap.memory as f64 * MEMORY_SHARE) as u64;
    if need > budget {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        p.push((
            if users_max * BYTES_PER_USER > need / 2 {
                "phases".into()
            } else {
                "topology.ports".into()
            },
            format!(
                "this run would hold up to {ports} ports, {neighbors} neighbor states and {users_max} users, about {:.1} GiB, \
                 more than {:.0} % of the {:.1} GiB this host has available",
                gib(need),
                MEMORY_SHARE * 100.0,
                gib(cap.memory)
            ),
        ));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Source;

    fn scenario(text: &str) -> Scenario {
        let src = Source::parse("t.toml".into(), text.into()).unwrap();
        src.deserialize().unwrap()
    }

    const BIG: Capacity = Capacity {
        fds: 20_000,
        memory: 16 << 30,
    };

    #[test]
    fn absurd_rates_users_and_agents_are_refused_naming_the_limit() {
        let s = scenario(
            "name='x'\n[[phases]]\nmodel='open'\nrate=1e12\nduration='5s'\n[[phases]]\nmodel='closed'\nusers=10000000\nduration='5s'\n",
        );
        let p = check(&s, BIG);
        assert!(
            p.iter().any(|(f, m)| f == "phases[0].rate" && m.contains("1000000")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|(f, m)| f == "phases[1].users" && m.contains("open-files limit (20000)")),
            "{p:?}"
        );
        let many = scenario("name='x'\n[agents]\ncount=10000\n");
        let p = check(&many, BIG);
        assert!(
            p.iter().any(|(f, m)| f == "agents.count" && m.contains("at most")),
            "{p:?}"
        );
    }

    #[test]
    fn a_topology_beyond_memory_is_refused_and_a_small_one_fits() {
        let s = scenario("name='x'\n[agents]\ncount=1000\n[topology]\nsubnet_prefix=9\nports=5000000\n");
        let p = check(&s, BIG);
        assert!(
            p.iter().any(|(f, m)| f == "topology.ports" && m.contains("GiB")),
            "{p:?}"
        );
        let ok = scenario("name='x'\n[agents]\ncount=50\n[topology]\nports=1500\n");
        assert!(check(&ok, BIG).is_empty());
    }
}
