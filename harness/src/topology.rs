//! The concrete topology a scenario describes, and the harness's own model of where every port
//! lives, from which it knows which hosts must learn each new port (the expected fan-out that
//! `neighbor_converged` waits for).
//!
//! Ids are chosen here, not by the control plane, so that a port can be correlated with agent
//! messages before its create request has even been answered.

use std::net::Ipv4Addr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::scenario::{Mix, Placement, Scenario};

/// A project.
#[derive(Debug, Clone)]
pub struct Project {
    /// Its id.
    pub id: String,
}

/// A VPC.
#[derive(Debug, Clone)]
pub struct Vpc {
    /// Its id.
    pub id: String,
    /// Index of its project.
    pub project: usize,
    /// Indexes of its subnets.
    pub subnets: Vec<usize>,
    /// Its router, when the scenario has routers.
    pub router: Option<String>,
}

/// A subnet.
#[derive(Debug, Clone)]
pub struct Subnet {
    /// Its id.
    pub id: String,
    /// Index of its VPC.
    pub vpc: usize,
    /// Its CIDR.
    pub cidr: String,
}

/// A security-group rule, resolved.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its id.
    pub id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// Protocol (`any` means none given).
    pub protocol: String,
    /// Port range.
    pub ports: Option<[u32; 2]>,
    /// Index (within the project) of the remote group.
    pub remote_group: Option<usize>,
    /// Remote CIDR.
    pub remote_ip_prefix: Option<String>,
}

/// A security group of one project.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its project.
    pub project: usize,
    /// Share of ports that join it.
    pub share: f64,
    /// Its rules.
    pub rules: Vec<Rule>,
}

/// What to create for one port.
#[derive(Debug, Clone)]
pub struct PortPlan {
    /// Client-chosen id.
    pub id: String,
    /// Its sequence number, the last part of the id: the model's key for it.
    pub seq: u64,
    /// Project index.
    pub project: usize,
    /// Subnet index.
    pub subnet: usize,
    /// Host index.
    pub host: usize,
    /// Group indexes (global, into [`Topology::groups`]); empty means the project's default group.
    pub groups: Vec<usize>,
}

/// A security-group rule the run adds (and may delete again), apart from the topology's own.
#[derive(Debug, Clone, PartialEq)]
pub struct RulePlan {
    /// Client-chosen id.
    pub id: String,
    /// Its sequence number.
    pub seq: u64,
    /// Project index.
    pub project: usize,
    /// The group it is in (global index into [`Topology::groups`]).
    pub group: usize,
    /// The remote group it names, if any (global index).
    pub remote_group: Option<usize>,
    /// Its destination port (one per rule, so that two rules never read the same).
    pub port: u32,
}

/// A security group the run creates (and may delete again), empty.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    /// Client-chosen id.
    pub id: String,
    /// Its sequence number.
    pub seq: u64,
    /// Project index.
    pub project: usize,
}

/// What an operation changes.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A port (create, move, delete, join, leave).
    Port(PortPlan),
    /// A security-group rule (add, delete).
    Rule(RulePlan),
    /// A security group (create, delete).
    Group(GroupPlan),
}

impl Subject {
    /// The id the correlator knows it by.
    pub fn id(&self) -> &str {
        match self {
            Self::Port(p) => &p.id,
            Self::Rule(r) => &r.id,
            Self::Group(g) => &g.id,
        }
    }

    /// The port, for a port operation.
    pub fn port(&self) -> Option<&PortPlan> {
        match self {
            Self::Port(p) => Some(p),
            _ => None,
        }
    }
}

/// An operation chosen from a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Create a port.
    Create,
    /// Move a port to another host.
    Update,
    /// Delete a port.
    Delete,
    /// Add a rule to a security group.
    SgRuleAdd,
    /// Delete a rule the run added.
    SgRuleDelete,
    /// A port joins a security group.
    SgJoin,
    /// A port leaves a security group.
    SgLeave,
    /// Create an empty security group.
    SgGroupCreate,
    /// Delete a group the run created.
    SgGroupDelete,
}

impl Op {
    /// Every operation, in [`Mix::weights`]'s order.
    pub const ALL: [Op; 9] = [
        Op::Create,
        Op::Update,
        Op::Delete,
        Op::SgRuleAdd,
        Op::SgRuleDelete,
        Op::SgJoin,
        Op::SgLeave,
        Op::SgGroupCreate,
        Op::SgGroupDelete,
    ];

    /// Its API latency metric: `api.create`, `api.update`, `api.delete`, `api.sg_rule_add`, …
    pub fn api_metric(self) -> &'static str {
        match self {
            Self::Create => "api.create",
            Self::Update => "api.update",
            Self::Delete => "api.delete",
            Self::SgRuleAdd => "api.sg_rule_add",
            Self::SgRuleDelete => "api.sg_rule_delete",
            Self::SgJoin => "api.sg_join",
            Self::SgLeave => "api.sg_leave",
            Self::SgGroupCreate => "api.sg_group_create",
            Self::SgGroupDelete => "api.sg_group_delete",
        }
    }

    /// `create`, `update`, `delete`, `sg_rule_add`, `sg_rule_delete`, `sg_join`, `sg_leave`,
    /// `sg_group_create`, `sg_group_delete`.
    pub fn name(self) -> &'static str {
        &self.api_metric()[4..]
    }

    /// Whether it changes a security group (rules or members).
    pub fn is_sg(self) -> bool {
        matches!(
            self,
            Self::SgRuleAdd
                | Self::SgRuleDelete
                | Self::SgJoin
                | Self::SgLeave
                | Self::SgGroupCreate
                | Self::SgGroupDelete
        )
    }

    /// Whether it changes a port that exists (a move, join or leave: a port update).
    pub fn is_port_update(self) -> bool {
        matches!(self, Self::Update | Self::SgJoin | Self::SgLeave)
    }
}

/// The static part: projects, networks, groups, hosts.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Projects.
    pub projects: Vec<Project>,
    /// VPCs.
    pub vpcs: Vec<Vpc>,
    /// Subnets.
    pub subnets: Vec<Subnet>,
    /// Security groups of every project.
    pub groups: Vec<Group>,
    /// Agent host addresses, by host index.
    pub hosts: Vec<Ipv4Addr>,
    /// Node names, by host index.
    pub host_names: Vec<String>,
    /// Per group: the groups (same project) with a rule naming it as remote group, whose hosts
    /// must learn every new member.
    referenced_by: Vec<Vec<usize>>,
    /// `topology.sg_changes` resolved to group indexes within a project: (rules in, remote
    /// group, members of). `None` without security groups.
    sg_changes: Option<(usize, Option<usize>, usize)>,
    tag: u32,
}

/// Prefix of node names (`host-00007`).
pub const HOST_PREFIX: &str = "host-";

fn uuid(tag: u32, kind: u16, n: u64) -> String {
    format!("{tag:08x}-{kind:04x}-4000-8000-{n:012x}")
}

impl Topology {
    /// Builds the topology of `s` for hosts at `hosts`; `tag` makes ids unique per run where a
    /// target keeps state between runs.
    pub fn build(s: &Scenario, hosts: Vec<Ipv4Addr>, tag: u32) -> Self {
        let t = &s.topology;
        let mut projects = Vec::new();
        let mut vpcs = Vec::new();
        let mut subnets = Vec::new();
        let mut groups = Vec::new();
        let block = 1u32 << (32 - u32::from(t.subnet_prefix));
        for p in 0..t.projects as usize {
            projects.push(Project {
                id: format!("project-{tag:08x}-{p}"),
            });
            for _ in 0..t.vpcs_per_project {
                let v = vpcs.len();
                let mut vpc = Vpc {
                    id: uuid(tag, 1, v as u64),
                    project: p,
                    subnets: Vec::new(),
                    router: t.routers.then(|| uuid(tag, 6, v as u64)),
                };
                for _ in 0..t.subnets_per_vpc {
                    let n = subnets.len();
                    let base = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + n as u32 * block);
                    subnets.push(Subnet {
                        id: uuid(tag, 2, n as u64),
                        vpc: v,
                        cidr: format!("{base}/{}", t.subnet_prefix),
                    });
                    vpc.subnets.push(n);
                }
                vpcs.push(vpc);
            }
            let first = groups.len();
            for (gi, g) in t.security_groups.iter().enumerate() {
                groups.push(Group {
                    id: uuid(tag, 4, (p * 1000 + gi) as u64),
                    name: g.name.clone(),
                    project: p,
                    share: g.share,
                    rules: g
                        .rules
                        .iter()
                        .enumerate()
                        .map(|(ri, r)| Rule {
                            id: uuid(tag, 5, ((p * 1000 + gi) * 1000 + ri) as u64),
                            direction: r.direction.clone(),
                            protocol: r.protocol.clone(),
                            ports: r.ports,
                            remote_group: r
                                .remote_group
                                .as_ref()
                                .and_then(|n| t.security_groups.iter().position(|x| &x.name == n))
                                .map(|i| first + i),
                            remote_ip_prefix: r.remote_ip_prefix.clone(),
                        })
                        .collect(),
                });
            }
        }
        let mut referenced_by = vec![Vec::new(); groups.len()];
        for (a, g) in groups.iter().enumerate() {
            for r in &g.rules {
                if let Some(b) = r.remote_group
                    && !referenced_by[b].contains(&a)
                {
                    referenced_by[b].push(a);
                }
            }
        }
        let host_names = (0..hosts.len()).map(|i| format!("{HOST_PREFIX}{i:05}")).collect();
        let by_name = |n: &Option<String>| {
            n.as_ref()
                .and_then(|n| t.security_groups.iter().position(|g| &g.name == n))
        };
        let sg_changes = (!t.security_groups.is_empty()).then(|| {
            let c = &t.sg_changes;
            let rules_in = by_name(&c.rules_in).unwrap_or(0);
            let remote = by_name(&c.remote_group);
            (rules_in, remote, by_name(&c.members_of).or(remote).unwrap_or(rules_in))
        });
        Self {
            projects,
            vpcs,
            subnets,
            groups,
            hosts,
            host_names,
            referenced_by,
            sg_changes,
            tag,
        }
    }

    /// The group (global index) of `project` that `sg_join` and `sg_leave` change.
    pub fn members_of(&self, project: usize) -> Option<usize> {
        let (_, _, m) = self.sg_changes?;
        Some(self.group_of(project, m))
    }

    fn group_of(&self, project: usize, index: usize) -> usize {
        project * (self.groups.len() / self.projects.len().max(1)) + index
    }
}

/// Where every port lives, as the harness asked for it; decides the next operation and the
/// hosts each must reach.
#[derive(Debug)]
pub struct Model {
    topo: std::sync::Arc<Topology>,
    placement: Placement,
    host_capacity: u64,
    rng: StdRng,
    next: u64,
    /// Bound ports per host, per subnet.
    subnet_hosts: Vec<FxHashMap<u32, u32>>,
    /// Member ports per host, per group.
    group_hosts: Vec<FxHashMap<u32, u32>>,
    /// Ports whose create succeeded and that no request is changing, longest settled first:
    /// update and delete take the front one. Not a random one: a port answered a moment ago
    /// may still be converging (Neutron's ports go ACTIVE seconds after the answer), and
    /// deleting it would fail its own create's measurement; the oldest port has had the most
    /// time, and churn then gives every port the same life (population / rate), as VMs have.
    settled: std::collections::VecDeque<u64>,
    /// Live ports by sequence number (a number, not the id: hashed and compared on every
    /// request, and rehashed as the map grows).
    ports: FxHashMap<u64, PortPlan>,
    /// [`Model::pick`]'s credits (by [`Op::ALL`]) for the mix they were earned under.
    credits: Option<(Mix, [i64; 9])>,
    /// Groups the run created whose create was answered, oldest first.
    groups: std::collections::VecDeque<GroupPlan>,
    next_group: u64,
    /// Rules the run added whose add was answered, oldest first: `sg_rule_delete` takes the front.
    rules: std::collections::VecDeque<RulePlan>,
    /// Rules the run added, counted when planned (so that a port created meanwhile already
    /// expects the hosts of their group): per remote group, the groups whose added rules name
    /// it, with how many.
    added_refs: FxHashMap<usize, FxHashMap<usize, u32>>,
    next_rule: u64,
}

/// Rounds of the mix an operation may be owed by [`Model::pick`] before it is forgiven.
const MAX_OWED: i64 = 64;

fn bump(m: &mut FxHashMap<u32, u32>, host: usize, up: bool) {
    let h = host as u32;
    if up {
        *m.entry(h).or_default() += 1;
    } else if let Some(c) = m.get_mut(&h) {
        *c -= 1;
        if *c == 0 {
            m.remove(&h);
        }
    }
}

impl Model {
    /// An empty model.
    pub fn new(topo: std::sync::Arc<Topology>, s: &Scenario) -> Self {
        Self {
            placement: s.topology.placement,
            host_capacity: s.topology.host_capacity.unwrap_or(1).max(1),
            rng: StdRng::seed_from_u64(s.seed),
            next: 0,
            subnet_hosts: vec![FxHashMap::default(); topo.subnets.len()],
            group_hosts: vec![FxHashMap::default(); topo.groups.len()],
            settled: std::collections::VecDeque::new(),
            ports: FxHashMap::default(),
            credits: None,
            rules: std::collections::VecDeque::new(),
            groups: std::collections::VecDeque::new(),
            next_group: 0,
            added_refs: FxHashMap::default(),
            next_rule: 0,
            topo,
        }
    }

    /// The topology.
    pub fn topology(&self) -> &std::sync::Arc<Topology> {
        &self.topo
    }

    /// Picks an operation from `mix`. What cannot run falls back: update and delete to create
    /// while no port is settled (update also needs two hosts), a join to a leave (and back) while
    /// no settled port can join, then to create, a rule delete to a rule add while the run has
    /// added none, a group delete to a group create likewise.
    ///
    /// Smooth weighted round-robin (nginx's upstream algorithm), not a random draw: every window
    /// of `sum of weights` picks holds each operation exactly its weight's times. A random draw
    /// makes the live-port count a random walk: an hour of 1:1 churn at 200/s drifted from 5,000
    /// to 6,554 ports, so the run's end measured another topology (and the harness's memory
    /// followed it). A fallback is charged to the operation that ran, so the one that could not
    /// run is owed and comes next.
    pub fn pick(&mut self, mix: &Mix) -> Op {
        let weights = mix.weights().map(i64::from);
        let total: i64 = weights.iter().sum();
        if total == 0 {
            return Op::Create;
        }
        let credits = match &mut self.credits {
            Some((m, c)) if m == mix => c,
            slot => &mut slot.insert((*mix, [0; 9])).1,
        };
        for (c, w) in credits.iter_mut().zip(weights) {
            *c += w;
        }
        let chosen = (0..Op::ALL.len())
            .max_by_key(|&i| (credits[i], std::cmp::Reverse(i)))
            .expect("nine ops");
        let op = match Op::ALL[chosen] {
            Op::Update if self.settled.is_empty() || self.topo.hosts.len() < 2 => Op::Create,
            Op::Delete if self.settled.is_empty() => Op::Create,
            // A join with every port a member is a leave's turn, and the other way round.
            Op::SgJoin | Op::SgLeave if self.member_candidate(Op::ALL[chosen] == Op::SgJoin).is_none() => {
                let other = if Op::ALL[chosen] == Op::SgJoin {
                    Op::SgLeave
                } else {
                    Op::SgJoin
                };
                if self.member_candidate(other == Op::SgJoin).is_some() {
                    other
                } else {
                    Op::Create
                }
            }
            Op::SgRuleDelete if self.rules.is_empty() => Op::SgRuleAdd,
            Op::SgGroupDelete if self.groups.is_empty() => Op::SgGroupCreate,
            op => op,
        };
        let ran = Op::ALL.iter().position(|o| *o == op).expect("an op");
        let credits = &mut self.credits.as_mut().expect("set above").1;
        credits[ran] -= total;
        // An operation that cannot run for long (update with one host) is forgiven, not owed
        // as a burst once it can.
        if credits[chosen] > MAX_OWED * total {
            *credits = [0; 9];
        }
        op
    }

    /// Where in `settled` the oldest port is that can join (`join`) or leave its project's
    /// `members_of` group.
    fn member_candidate(&self, join: bool) -> Option<usize> {
        self.settled.iter().position(|seq| {
            self.ports.get(seq).is_some_and(|p| {
                self.topo
                    .members_of(p.project)
                    .is_some_and(|g| p.groups.contains(&g) != join)
            })
        })
    }

    /// Plans a settled port joining (`join`) or leaving its project's `members_of` group;
    /// returns (before, after).
    pub fn plan_membership(&mut self, join: bool) -> Option<(PortPlan, PortPlan)> {
        let at = self.member_candidate(join)?;
        let seq = self.settled.remove(at)?;
        let old = self.ports.get(&seq)?.clone();
        let g = self.topo.members_of(old.project)?;
        let mut new = old.clone();
        if join {
            new.groups.push(g);
            new.groups.sort_unstable();
        } else {
            new.groups.retain(|x| *x != g);
        }
        self.add(&old, false);
        self.add(&new, true);
        self.ports.insert(new.seq, new.clone());
        Some((old, new))
    }

    /// Plans a new rule in the next project's `rules_in` group, counted at once.
    pub fn plan_rule_add(&mut self) -> Option<RulePlan> {
        let (rules_in, remote, _) = self.topo.sg_changes?;
        let n = self.next_rule;
        self.next_rule += 1;
        let project = (n % self.topo.projects.len() as u64) as usize;
        let r = RulePlan {
            id: uuid(self.topo.tag, 7, n),
            seq: n,
            project,
            group: self.topo.group_of(project, rules_in),
            remote_group: remote.map(|g| self.topo.group_of(project, g)),
            // Above the well-known ports, each rule its own.
            port: 1024 + (n % 64_000) as u32,
        };
        self.count_rule(&r, true);
        Some(r)
    }

    /// Plans deleting the oldest rule the run added, uncounted at once.
    pub fn plan_rule_delete(&mut self) -> Option<RulePlan> {
        let r = self.rules.pop_front()?;
        self.count_rule(&r, false);
        Some(r)
    }

    /// Plans a new empty group in the next project.
    pub fn plan_group_create(&mut self) -> GroupPlan {
        let n = self.next_group;
        self.next_group += 1;
        GroupPlan {
            id: uuid(self.topo.tag, 8, n),
            seq: n,
            project: (n % self.topo.projects.len() as u64) as usize,
        }
    }

    /// Plans deleting the oldest group the run created.
    pub fn plan_group_delete(&mut self) -> Option<GroupPlan> {
        self.groups.pop_front()
    }

    /// A group create answered: it may now be deleted.
    pub fn group_created(&mut self, g: &GroupPlan, ok: bool) {
        if ok {
            self.groups.push_back(g.clone());
        }
    }

    fn count_rule(&mut self, r: &RulePlan, up: bool) {
        let Some(remote) = r.remote_group else { return };
        let refs = self.added_refs.entry(remote).or_default();
        if up {
            *refs.entry(r.group).or_default() += 1;
        } else if let Some(c) = refs.get_mut(&r.group) {
            *c -= 1;
            if *c == 0 {
                refs.remove(&r.group);
            }
        }
    }

    /// A rule add answered: it may now be deleted. A failed add is forgotten.
    pub fn rule_added(&mut self, r: &RulePlan, ok: bool) {
        if ok {
            self.rules.push_back(r.clone());
        } else {
            self.count_rule(r, false);
        }
    }

    /// Hosts holding a member of group `g`: the hosts that enforce its rules.
    pub fn group_hosts(&self, g: usize) -> Vec<Ipv4Addr> {
        let mut h: Vec<u32> = self.group_hosts[g].keys().copied().collect();
        h.sort_unstable();
        h.into_iter().map(|h| self.topo.hosts[h as usize]).collect()
    }

    /// Groups with a rule naming `g` as remote group: the topology's and the run's own.
    fn referrers(&self, g: usize) -> impl Iterator<Item = usize> + '_ {
        let added = self.added_refs.get(&g).into_iter().flat_map(|m| m.keys().copied());
        self.topo.referenced_by[g]
            .iter()
            .copied()
            .chain(added.filter(move |a| !self.topo.referenced_by[g].contains(a)))
    }

    fn place(&mut self, n: u64) -> usize {
        let hosts = self.topo.hosts.len() as u64;
        (match self.placement {
            Placement::RoundRobin => n % hosts,
            Placement::Random => self.rng.random_range(0..hosts),
            Placement::Packed => (n / self.host_capacity) % hosts,
        }) as usize
    }

    /// Plans a new port and counts it where it will live.
    pub fn plan_create(&mut self) -> PortPlan {
        let n = self.next;
        self.next += 1;
        let subnet = (n % self.topo.subnets.len() as u64) as usize;
        let project = self.topo.vpcs[self.topo.subnets[subnet].vpc].project;
        let host = self.place(n);
        let mut groups = Vec::new();
        for (g, grp) in self.topo.groups.iter().enumerate() {
            if grp.project == project && (grp.share >= 1.0 || self.rng.random_bool(grp.share)) {
                groups.push(g);
            }
        }
        let plan = PortPlan {
            id: uuid(self.topo.tag, 3, n),
            seq: n,
            project,
            subnet,
            host,
            groups,
        };
        self.add(&plan, true);
        self.ports.insert(n, plan.clone());
        plan
    }

    fn add(&mut self, p: &PortPlan, up: bool) {
        bump(&mut self.subnet_hosts[p.subnet], p.host, up);
        for &g in &p.groups {
            bump(&mut self.group_hosts[g], p.host, up);
        }
    }

    /// A create answered: the port may now be updated or deleted. A failed create is forgotten.
    pub fn create_done(&mut self, seq: u64, ok: bool) {
        if ok {
            self.settled.push_back(seq);
        } else if let Some(p) = self.ports.remove(&seq) {
            self.add(&p, false);
        }
    }

    fn take_settled(&mut self) -> Option<PortPlan> {
        let seq = self.settled.pop_front()?;
        self.ports.get(&seq).cloned()
    }

    /// Plans moving a settled port to another host; returns (before, after).
    pub fn plan_update(&mut self) -> Option<(PortPlan, PortPlan)> {
        let old = self.take_settled()?;
        let hosts = self.topo.hosts.len();
        let step = 1 + self.rng.random_range(0..hosts.saturating_sub(1).max(1));
        let mut new = old.clone();
        new.host = (old.host + step) % hosts;
        self.add(&old, false);
        self.add(&new, true);
        self.ports.insert(new.seq, new.clone());
        Some((old, new))
    }

    /// An update answered: the port is settled again.
    pub fn update_done(&mut self, seq: u64) {
        if self.ports.contains_key(&seq) {
            self.settled.push_back(seq);
        }
    }

    /// Plans deleting a settled port and forgets it at once, so that no new port expects to be
    /// learned by a host that is losing its last port.
    pub fn plan_delete(&mut self) -> Option<PortPlan> {
        let p = self.take_settled()?;
        self.ports.remove(&p.seq);
        self.add(&p, false);
        Some(p)
    }

    /// Undoes a plan that was never sent: a create is forgotten, a move (join, leave) goes back
    /// to `prev` (the port before it), a delete puts the port back as settled, a rule add is
    /// forgotten, a rule delete puts the rule back.
    pub fn revert(&mut self, op: Op, subject: &Subject, prev: Option<&PortPlan>) {
        let port = match subject {
            Subject::Port(p) => p,
            Subject::Group(g) => {
                if op == Op::SgGroupDelete {
                    self.groups.push_front(g.clone());
                }
                return;
            }
            Subject::Rule(r) => {
                if op == Op::SgRuleAdd {
                    self.count_rule(r, false);
                } else {
                    self.count_rule(r, true);
                    self.rules.push_front(r.clone());
                }
                return;
            }
        };
        match op {
            Op::Create => self.create_done(port.seq, false),
            Op::SgRuleAdd | Op::SgRuleDelete | Op::SgGroupCreate | Op::SgGroupDelete => {}
            Op::Update | Op::SgJoin | Op::SgLeave => {
                if let Some(old) = prev {
                    self.add(port, false);
                    self.add(old, true);
                    self.ports.insert(old.seq, old.clone());
                    self.settled.push_front(old.seq);
                }
            }
            Op::Delete => {
                self.add(port, true);
                self.ports.insert(port.seq, port.clone());
                self.settled.push_front(port.seq);
            }
        }
    }

    /// Settled ports, for teardown.
    pub fn settled_count(&self) -> usize {
        self.settled.len()
    }

    /// Ids of every port host `h` should hold now: its own ports, and the ports it must hold as
    /// neighbors ([`Model::neighbor_hosts`] turned around). What a host back from a crash must
    /// be sent again.
    pub fn held_by(&self, h: usize) -> Vec<std::sync::Arc<str>> {
        let hk = h as u32;
        self.ports
            .values()
            .filter(|p| {
                if p.host == h {
                    return true;
                }
                let vpc = &self.topo.vpcs[self.topo.subnets[p.subnet].vpc];
                let subnets: &[usize] = if vpc.router.is_some() {
                    &vpc.subnets
                } else {
                    std::slice::from_ref(&p.subnet)
                };
                subnets.iter().any(|&s| self.subnet_hosts[s].contains_key(&hk))
                    || p.groups
                        .iter()
                        .any(|&g| self.referrers(g).any(|a| self.group_hosts[a].contains_key(&hk)))
            })
            .map(|p| std::sync::Arc::from(p.id.as_str()))
            .collect()
    }

    /// Hosts other than its own that must learn `p`: every host with a port in its subnet, in
    /// the other subnets of its VPC when the VPC has a router (L3), and with a port in a group
    /// whose rules name one of `p`'s groups as remote group.
    pub fn neighbor_hosts(&self, p: &PortPlan) -> Vec<Ipv4Addr> {
        let mut out: FxHashSet<u32> = FxHashSet::default();
        let vpc = &self.topo.vpcs[self.topo.subnets[p.subnet].vpc];
        let subnets: &[usize] = if vpc.router.is_some() {
            &vpc.subnets
        } else {
            std::slice::from_ref(&p.subnet)
        };
        for &s in subnets {
            out.extend(self.subnet_hosts[s].keys());
        }
        for &g in &p.groups {
            for a in self.referrers(g) {
                out.extend(self.group_hosts[a].keys());
            }
        }
        out.remove(&(p.host as u32));
        out.into_iter().map(|h| self.topo.hosts[h as usize]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(extra: &str) -> Scenario {
        toml::from_str(&format!("name = \"t\"\n{extra}")).unwrap()
    }

    fn hosts(n: u8) -> Vec<Ipv4Addr> {
        (1..=n).map(|i| Ipv4Addr::new(127, 9, 0, i)).collect()
    }

    #[test]
    fn subnets_are_carved_in_order_and_ids_are_unique() {
        let s = scenario(
            "[topology]\nprojects = 2\nvpcs_per_project = 2\nsubnets_per_vpc = 2\nsubnet_prefix = 20\nrouters = true\n",
        );
        let t = Topology::build(&s, hosts(3), 7);
        assert_eq!(t.subnets.len(), 8);
        assert_eq!(t.subnets[0].cidr, "10.0.0.0/20");
        assert_eq!(t.subnets[1].cidr, "10.0.16.0/20");
        assert_eq!(t.vpcs[3].project, 1);
        assert!(t.vpcs.iter().all(|v| v.router.is_some()));
        let ids: FxHashSet<&str> = t
            .subnets
            .iter()
            .map(|s| s.id.as_str())
            .chain(t.vpcs.iter().map(|v| v.id.as_str()))
            .collect();
        assert_eq!(ids.len(), 12);
    }

    #[test]
    fn neighbor_hosts_follow_subnets_routers_and_remote_groups() {
        let s = scenario(
            "[topology]\nsubnets_per_vpc = 2\n\
             [[topology.security_groups]]\nname = \"web\"\nshare = 1.0\n\
             [[topology.security_groups.rules]]\nremote_group = \"web\"\n",
        );
        let t = std::sync::Arc::new(Topology::build(&s, hosts(4), 1));
        let mut m = Model::new(t.clone(), &s);
        // Round-robin: port n on host n % 4, subnet n % 2.
        let ports: Vec<PortPlan> = (0..4).map(|_| m.plan_create()).collect();
        // Port 3 (host 3, subnet 1): subnet 1 holds port 1 (host 1); every port is in `web`,
        // whose rule names `web`: every other host must learn it.
        let mut n = m.neighbor_hosts(&ports[3]);
        n.sort();
        assert_eq!(n, vec![t.hosts[0], t.hosts[1], t.hosts[2]]);
        // Without groups and routers only the subnet counts.
        let s2 = scenario("[topology]\nsubnets_per_vpc = 2\n");
        let t2 = std::sync::Arc::new(Topology::build(&s2, hosts(4), 1));
        let mut m2 = Model::new(t2.clone(), &s2);
        let p: Vec<PortPlan> = (0..4).map(|_| m2.plan_create()).collect();
        assert_eq!(m2.neighbor_hosts(&p[3]), vec![t2.hosts[1]]);
        // Deleting port 1 leaves subnet 1 to port 3 alone.
        m2.create_done(p[1].seq, true);
        let d = m2.plan_delete().unwrap();
        assert_eq!(d.id, p[1].id);
        assert!(m2.neighbor_hosts(&p[3]).is_empty());
    }

    #[test]
    fn picks_follow_weights_and_fall_back_to_create() {
        let s = scenario("");
        let t = std::sync::Arc::new(Topology::build(&s, hosts(2), 1));
        let mut m = Model::new(t, &s);
        let mix = Mix {
            create: 0,
            update: 0,
            delete: 1,
            ..Mix::default()
        };
        assert_eq!(m.pick(&mix), Op::Create, "nothing to delete yet");
        let p = m.plan_create();
        m.create_done(p.seq, true);
        assert_eq!(m.pick(&mix), Op::Delete);
        let mix = Mix {
            create: 3,
            update: 1,
            delete: 0,
            ..Mix::default()
        };
        let n = (0..4000).filter(|_| m.pick(&mix) == Op::Create).count();
        assert_eq!(n, 3000, "exactly the weight's share");
    }

    /// 1:1 churn keeps the live-port count where it started, whatever the run's length, and a
    /// delete that had to fall back to a create is made up for at once.
    #[test]
    fn churn_keeps_the_population() {
        let s = scenario("");
        let t = std::sync::Arc::new(Topology::build(&s, hosts(4), 1));
        let mut m = Model::new(t, &s);
        let mix = Mix {
            create: 1,
            update: 0,
            delete: 1,
            ..Mix::default()
        };
        let mut live = 0i64;
        let mut most = 0i64;
        for i in 0..10_000 {
            match m.pick(&mix) {
                Op::Create => {
                    let p = m.plan_create();
                    m.create_done(p.seq, true);
                    live += 1;
                }
                Op::Delete => {
                    m.plan_delete().expect("a settled port");
                    live -= 1;
                }
                op => unreachable!("{op:?} is not in the mix"),
            }
            most = most.max(live);
            assert!(live <= 2, "pick {i}: {live} live ports");
        }
        assert_eq!(m.ports.len() as i64, live);
        assert!(most >= 1);
        // Switching mixes starts the new one's shares afresh.
        let creates_only = Mix::default();
        assert!((0..10).all(|_| m.pick(&creates_only) == Op::Create));
    }
}

#[cfg(test)]
mod sg_tests {
    use super::*;

    fn model() -> (std::sync::Arc<Topology>, Model) {
        let s: Scenario = toml::from_str(
            "name = \"t\"\n[topology]\nsubnets_per_vpc = 4\n\
             [[topology.security_groups]]\nname = \"web\"\n\
             [[topology.security_groups]]\nname = \"db\"\n\
             [topology.sg_changes]\nrules_in = \"web\"\nremote_group = \"db\"\n",
        )
        .unwrap();
        let t = std::sync::Arc::new(Topology::build(
            &s,
            (1..=4).map(|i| Ipv4Addr::new(127, 9, 0, i)).collect(),
            1,
        ));
        let m = Model::new(t.clone(), &s);
        (t, m)
    }

    #[test]
    fn sg_ops_are_picked_as_weighted() {
        let (_, mut m) = model();
        for _ in 0..4 {
            let p = m.plan_create();
            m.create_done(p.seq, true);
        }
        let mix = Mix {
            create: 0,
            sg_join: 1,
            sg_leave: 1,
            ..Mix::default()
        };
        let mut ops = Vec::new();
        for _ in 0..4 {
            let op = m.pick(&mix);
            ops.push(op);
            let (_, new) = m.plan_membership(op == Op::SgJoin).expect("a candidate");
            m.update_done(new.seq);
        }
        // Every port is in db: the first join is a leave, and then they alternate.
        assert_eq!(ops, [Op::SgLeave, Op::SgJoin, Op::SgLeave, Op::SgJoin]);
        let mix = Mix {
            create: 0,
            sg_rule_add: 1,
            sg_rule_delete: 1,
            ..Mix::default()
        };
        for i in 0..6 {
            let op = m.pick(&mix);
            match op {
                Op::SgRuleAdd => {
                    let r = m.plan_rule_add().expect("sg_changes set");
                    m.rule_added(&r, true);
                }
                Op::SgRuleDelete => {
                    m.plan_rule_delete().expect("an added rule");
                }
                op => panic!("pick {i}: {op:?}"),
            }
        }
        assert!(m.rules.is_empty(), "three adds, three deletes");
    }

    /// A rule naming a remote group makes its group's hosts expect every new member of the
    /// remote group, from the moment it is planned until it is deleted.
    #[test]
    fn an_added_remote_rule_widens_the_fan_out_of_the_remote_groups_members() {
        let (t, mut m) = model();
        // Two ports on hosts 0 and 1, in different subnets: no L2 neighbors.
        let a = m.plan_create();
        let b = m.plan_create();
        m.create_done(a.seq, true);
        m.create_done(b.seq, true);
        assert!(m.neighbor_hosts(&b).is_empty());
        let r = m.plan_rule_add().unwrap();
        assert_eq!(r.remote_group, Some(1));
        assert_eq!(m.group_hosts(r.group), vec![t.hosts[0], t.hosts[1]]);
        assert_eq!(m.neighbor_hosts(&b), vec![t.hosts[0]]);
        m.rule_added(&r, true);
        m.plan_rule_delete().unwrap();
        assert!(m.neighbor_hosts(&b).is_empty());
    }
}
