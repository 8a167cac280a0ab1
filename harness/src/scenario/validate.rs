//! What types cannot say: ranges, combinations, references between fields. Returns every
//! problem as (field path, message); the loader turns each into an error with its line.

use std::collections::HashSet;

use super::{ModelKind, PhaseSpec, Placement, Scenario, TargetKind};
use crate::slo::Check;
use control_plane::SouthboundKind;

type Problems = Vec<(String, String)>;

/// Every problem of a scenario (empty: it can run).
pub fn validate(s: &Scenario) -> Problems {
    let mut p = Problems::new();
    let mut bad = |f: &str, m: String| p.push((f.to_owned(), m));
    if s.name.is_empty()
        || !s
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bad(
            "name",
            "must be non-empty letters, digits, `-` or `_` (it names the run folder)".into(),
        );
    }
    // Agents.
    let a = &s.agents;
    if a.count == 0 {
        bad("agents.count", "must be at least 1".into());
    } else if let Err(e) = fake_agent::fleet::host_ips(a.base_ip, a.count) {
        bad("agents.base_ip", e.to_string());
    }
    for (i, r) in a.remote.iter().enumerate() {
        let port = r.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
        if !matches!(port, Some((h, Ok(p))) if !h.is_empty() && p != 0) {
            bad(
                &format!("agents.remote[{i}]"),
                format!("`{r}` is not HOST:PORT of an `alcor-scale agents --events` endpoint"),
            );
        }
    }
    if !a.remote.is_empty() {
        if s.target.kind == TargetKind::Neutron {
            bad(
                "agents.remote",
                "kind = \"neutron\" runs no agents of ours: its hosts are Neutron's".into(),
            );
        }
        if s.target.agent.is_some() {
            bad("agents.remote", "give either agents.remote or target.agent".into());
        }
    }
    // Faults.
    {
        let names: Vec<String> = s.phases.iter().map(|ph| ph.name.clone()).collect();
        let agents_here = a.remote.is_empty() && s.target.agent.is_none() && s.target.kind != TargetKind::Neutron;
        for (f, m) in crate::faults::problems(&s.faults, &names, agents_here, s.target.kind == TargetKind::Embedded) {
            bad(&f, m);
        }
    }
    // Target.
    let t = &s.target;
    match t.kind {
        TargetKind::Alcor => {
            if t.url.is_none() && t.urls.is_empty() {
                bad(
                    "target.url",
                    "required for kind = \"alcor\" (or give target.urls)".into(),
                );
            }
            for (k, _) in t.urls.iter() {
                if !["vpc", "subnet", "port", "node", "security_group", "route"].contains(&k.as_str()) {
                    bad(
                        &format!("target.urls.{k}"),
                        "unknown service (vpc, subnet, port, node, security_group, route)".into(),
                    );
                }
            }
            for (f, u) in t
                .url
                .iter()
                .map(|u| ("target.url".to_owned(), u))
                .chain(t.urls.iter().map(|(k, u)| (format!("target.urls.{k}"), u)))
            {
                if let Err(e) = crate::register::target_url(u) {
                    bad(&f, format!("{e:#}"));
                }
            }
        }
        TargetKind::Neutron => {
            match &t.url {
                None => bad(
                    "target.url",
                    "required for kind = \"neutron\": the API root, e.g. http://127.0.0.1:9696".into(),
                ),
                Some(u) => {
                    if let Err(e) = crate::register::target_url(u) {
                        bad("target.url", format!("{e:#}"));
                    }
                }
            }
            if !t.urls.is_empty() {
                bad("target.urls", "Neutron serves every resource from target.url".into());
            }
            match &t.hosts {
                Some(super::HostsSpec::Named(n)) if n != "discover" => {
                    bad("target.hosts", format!("`{n}`: \"discover\" or a list of host names"))
                }
                Some(super::HostsSpec::List(l)) if l.is_empty() || l.iter().any(String::is_empty) => {
                    bad("target.hosts", "a list of non-empty host names".into())
                }
                _ => {}
            }
            if t.poll_interval < std::time::Duration::from_millis(10) {
                bad("target.poll_interval", "must be at least 10ms".into());
            }
            if !(1..=500).contains(&t.poll_batch) {
                bad("target.poll_batch", "must be 1 to 500 (ids travel in the URL)".into());
            }
            if !(t.poll_rate > 0.0 && t.poll_rate <= 1000.0) {
                bad("target.poll_rate", "must be in (0, 1000] polls/s".into());
            }
        }
        TargetKind::Embedded | TargetKind::Southbound => {
            if t.url.is_some() || !t.urls.is_empty() {
                bad(
                    "target.url",
                    format!("only for kind = \"alcor\" or \"neutron\", not \"{}\"", t.kind),
                );
            }
        }
    }
    if t.kind != TargetKind::Neutron && t.hosts.is_some() {
        bad(
            "target.hosts",
            "only for kind = \"neutron\"; other targets use the simulated agents as hosts".into(),
        );
    }
    if t.ca_file.is_some() {
        if let Err(e) = t.tls().ca_certificates() {
            bad("target.ca_file", format!("{e:#}"));
        }
        if !t.uses_tls() {
            bad("target.ca_file", "only for https:// URLs".into());
        }
    }
    if t.insecure && !t.uses_tls() {
        bad("target.insecure", "only for https:// URLs".into());
    }
    if t.kind == TargetKind::Southbound && !t.headers.is_empty() {
        bad("target.headers", "southbound has no REST API to send headers to".into());
    }
    for (k, v) in &t.headers {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            bad(&format!("target.headers.{k}"), "not a valid header name".into());
        }
        if let Err(e) = super::expand_env_syntax(v) {
            bad(&format!("target.headers.{k}"), e);
        }
    }
    if let Some(agent) = &t.agent {
        if t.kind != TargetKind::Southbound {
            bad("target.agent", "only for kind = \"southbound\"".into());
        }
        if agent.parse::<std::net::SocketAddr>().is_err() {
            bad("target.agent", format!("`{agent}` is not ip:port"));
        }
    }
    if t.channels_per_host == 0 {
        bad("target.channels_per_host", "must be at least 1".into());
    }
    if t.southbound == SouthboundKind::Mq {
        if !matches!(t.kind, TargetKind::Embedded | TargetKind::Southbound) {
            bad(
                "target.southbound",
                format!(
                    "`mq` is for kind = \"embedded\" or \"southbound\"; a \"{}\" target chooses its own southbound",
                    t.kind
                ),
            );
        }
        if t.agent.is_some() {
            bad(
                "target.agent",
                "one real agent is pushed to over gRPC; not with southbound = \"mq\"".into(),
            );
        }
        if !s.agents.remote.is_empty() && t.broker.url.is_none() {
            bad(
                "target.broker.url",
                "fleets run apart (agents.remote) consume from a broker they can reach: start them with `agents --broker URL` and give the same URL here".into(),
            );
        }
    }
    for (field, why) in t.broker.problems() {
        bad(&format!("target.broker.{field}"), why);
    }
    // Topology.
    let tp = &s.topology;
    for (f, v) in [
        ("topology.projects", tp.projects),
        ("topology.vpcs_per_project", tp.vpcs_per_project),
        ("topology.subnets_per_vpc", tp.subnets_per_vpc),
    ] {
        if v == 0 {
            bad(f, "must be at least 1".into());
        }
    }
    let subnets = u64::from(tp.projects) * u64::from(tp.vpcs_per_project) * u64::from(tp.subnets_per_vpc);
    if !(9..=28).contains(&tp.subnet_prefix) {
        bad(
            "topology.subnet_prefix",
            "must be 9 to 28 (subnets are carved from 10.0.0.0/8)".into(),
        );
    } else if subnets << (32 - tp.subnet_prefix) > 1 << 24 {
        bad(
            "topology.subnet_prefix",
            format!("{subnets} subnets of /{} do not fit in 10.0.0.0/8", tp.subnet_prefix),
        );
    }
    if !tp.grow_to.is_empty() {
        let first = tp.ports.unwrap_or(0);
        if first == 0 {
            bad("topology.grow_to", "needs topology.ports to start from".into());
        }
        let mut last = first;
        for (i, n) in tp.grow_to.iter().enumerate() {
            if *n <= last {
                bad(
                    &format!("topology.grow_to[{i}]"),
                    format!("{n} does not grow: sizes must rise, from ports = {first}"),
                );
            }
            last = *n;
        }
    }
    if t.setup_fanout.is_some() && t.kind != TargetKind::Embedded {
        bad(
            "target.setup_fanout",
            format!(
                "only the embedded control plane can change its fan-out, not \"{}\"",
                t.kind
            ),
        );
    }
    if tp.ports.is_some() && tp.ports_per_host.is_some() {
        bad(
            "topology.ports_per_host",
            "give either ports or ports_per_host, not both".into(),
        );
    }
    // The largest size the topology reaches.
    let setup_ports = s.topology_sizes().last().copied().unwrap_or(0);
    if (9..=28).contains(&tp.subnet_prefix) && subnets > 0 {
        let capacity = (1u64 << (32 - tp.subnet_prefix)) - 3;
        if setup_ports.div_ceil(subnets) > capacity {
            bad(
                "topology.ports",
                format!(
                    "{setup_ports} ports over {subnets} subnets of /{} exceed {capacity} addresses each",
                    tp.subnet_prefix
                ),
            );
        }
    }
    if tp.bulk == Some(0) {
        bad("topology.bulk", "must be at least 1".into());
    }
    if tp.bulk.is_some() && t.kind == TargetKind::Southbound {
        bad("topology.bulk", "southbound has no REST API to bulk-create with".into());
    }
    if tp.placement == Placement::Packed && tp.host_capacity.unwrap_or(0) == 0 {
        bad(
            "topology.host_capacity",
            "placement = \"packed\" needs a host_capacity of at least 1".into(),
        );
    }
    let names: Vec<&str> = tp.security_groups.iter().map(|g| g.name.as_str()).collect();
    let mut seen = HashSet::new();
    for (i, g) in tp.security_groups.iter().enumerate() {
        let f = format!("topology.security_groups[{i}]");
        if g.name.is_empty() || !seen.insert(g.name.as_str()) {
            bad(
                &format!("{f}.name"),
                format!("`{}` must be non-empty and unique", g.name),
            );
        }
        if !(g.share > 0.0 && g.share <= 1.0) {
            bad(&format!("{f}.share"), "must be in (0, 1]".into());
        }
        for (j, r) in g.rules.iter().enumerate() {
            let rf = format!("{f}.rules[{j}]");
            if !["ingress", "egress"].contains(&r.direction.as_str()) {
                bad(
                    &format!("{rf}.direction"),
                    format!("`{}`: ingress or egress", r.direction),
                );
            }
            if !["tcp", "udp", "icmp", "any"].contains(&r.protocol.as_str()) {
                bad(
                    &format!("{rf}.protocol"),
                    format!("`{}`: tcp, udp, icmp or any", r.protocol),
                );
            }
            if let Some([lo, hi]) = r.ports
                && (lo > hi || hi > 65535)
            {
                bad(&format!("{rf}.ports"), format!("[{lo}, {hi}] is not a port range"));
            }
            if let Some(rg) = &r.remote_group
                && !names.contains(&rg.as_str())
            {
                bad(&format!("{rf}.remote_group"), format!("no security group named `{rg}`"));
            }
            if r.remote_group.is_some() && r.remote_ip_prefix.is_some() {
                bad(
                    &format!("{rf}.remote_ip_prefix"),
                    "give remote_group or remote_ip_prefix, not both".into(),
                );
            }
        }
    }
    if t.sg_mode != control_plane::SgMode::default() && t.kind != TargetKind::Embedded {
        bad(
            "target.sg_mode",
            "applies to the embedded control plane (a separate one: `alcor-scale control-plane --sg-mode`)".into(),
        );
    }
    // Security-group changes.
    for (field, name) in [
        ("rules_in", &tp.sg_changes.rules_in),
        ("remote_group", &tp.sg_changes.remote_group),
        ("members_of", &tp.sg_changes.members_of),
    ] {
        if let Some(n) = name
            && !names.contains(&n.as_str())
        {
            bad(
                &format!("topology.sg_changes.{field}"),
                format!("no security group named `{n}` in topology.security_groups"),
            );
        }
    }
    for (i, ph) in s.phases.iter().enumerate() {
        if !ph.mix.has_sg() {
            continue;
        }
        if tp.security_groups.is_empty() && ph.mix.changes_groups() {
            bad(
                &format!("phases[{i}].mix"),
                "sg_rule_add, sg_rule_delete, sg_join and sg_leave change security groups: give \
                 [[topology.security_groups]] (and [topology.sg_changes] to choose which)"
                    .into(),
            );
        }
        if t.kind == TargetKind::Southbound {
            bad(
                &format!("phases[{i}].mix"),
                "security-group operations need a REST target (embedded, alcor or neutron)".into(),
            );
        }
    }
    // Phases.
    let slo_ok = validate_checks("slo", &s.slo, t.kind, &mut p);
    let mut names = HashSet::new();
    validate_phase("setup", &s.setup, Role::Setup, t.kind, &s.slo, slo_ok, &mut p);
    for (i, ph) in s.phases.iter().enumerate() {
        let f = format!("phases[{i}]");
        if !ph.name.is_empty() && !names.insert(ph.name.as_str()) {
            p.push((
                format!("{f}.name"),
                format!("`{}` is used by an earlier phase", ph.name),
            ));
        }
        validate_phase(&f, ph, Role::Load, t.kind, &s.slo, slo_ok, &mut p);
        if ph.fanout.is_some() && t.kind != TargetKind::Embedded {
            p.push((
                format!("{f}.fanout"),
                format!(
                    "only the embedded control plane can change its fan-out, not \"{}\"",
                    t.kind
                ),
            ));
        }
        if ph.sg_mode.is_some() && t.kind != TargetKind::Embedded {
            p.push((
                format!("{f}.sg_mode"),
                format!(
                    "only the embedded control plane can change its sg_mode, not \"{}\"",
                    t.kind
                ),
            ));
        }
    }
    if !s.phases.is_empty() && s.phases.iter().all(|ph| ph.contrast) {
        p.push((
            "phases".into(),
            "every phase is a contrast: at least one must be what the scenario is about (contrast = false)".into(),
        ));
    }
    if let Some(td) = &s.teardown {
        validate_phase("teardown", td, Role::Teardown, t.kind, &s.slo, slo_ok, &mut p);
    }
    let m = &s.measure;
    if m.correlation_timeout.is_zero() {
        p.push(("measure.correlation_timeout".into(), "must be more than 0".into()));
    }
    if m.interval < std::time::Duration::from_millis(100) {
        p.push(("measure.interval".into(), "must be at least 100ms".into()));
    }
    // What this host can hold; only for a scenario that is otherwise sound.
    if p.is_empty() {
        p.extend(super::limits::check(s, super::limits::Capacity::here()));
    }
    p
}

#[derive(PartialEq, Clone, Copy)]
enum Role {
    Setup,
    Load,
    Teardown,
}

fn validate_checks(field: &str, checks: &[String], target: TargetKind, p: &mut Problems) -> bool {
    let mut ok = true;
    for (i, c) in checks.iter().enumerate() {
        match Check::parse(c) {
            Err(e) => {
                p.push((format!("{field}[{i}]"), e));
                ok = false;
            }
            Ok(check) => {
                if let Some(why) = meaningless(target, check.metric()) {
                    p.push((format!("{field}[{i}]"), why));
                    ok = false;
                }
            }
        }
    }
    ok
}

/// Why `metric` cannot be measured against `target`, if it cannot: such a check would fail or
/// pass on figures that do not exist.
pub fn meaningless(target: TargetKind, metric: &str) -> Option<String> {
    use reports::summary::metric as m;
    let agent_side = [
        m::PORT_PROGRAMMED,
        m::NEIGHBOR_CONVERGED,
        m::AGENT_PROCESSING,
        m::GOAL_STATE_BYTES,
        m::GOAL_STATE_NEIGHBORS,
        m::GOAL_STATE_SG_RULES,
        m::CP_COMPUTE,
        m::CP_ENCODE,
        m::CP_PUSH,
    ];
    match target {
        TargetKind::Neutron if agent_side.contains(&metric) || metric.starts_with("sg_programmed") => Some(format!(
            "`{metric}` has no meaning for kind = \"neutron\": Neutron pushes no Alcor goal states to the \
             simulated agents (measure port_active, the create to ACTIVE time, instead)"
        )),
        TargetKind::Neutron => None,
        _ if metric == m::PORT_ACTIVE => Some(format!(
            "`{metric}` is measured only for kind = \"neutron\" (here: port_programmed, neighbor_converged)"
        )),
        _ => None,
    }
}

fn validate_phase(
    f: &str,
    ph: &PhaseSpec,
    role: Role,
    target: TargetKind,
    slo: &[String],
    slo_ok: bool,
    p: &mut Problems,
) {
    let mut bad = |field: &str, m: String| p.push((format!("{f}.{field}"), m));
    if ph.contrast && ph.model == ModelKind::Step {
        bad(
            "contrast",
            "a step search finds its own knee; run it as a scenario of its own".into(),
        );
    }
    if role != Role::Load {
        if ph.contrast {
            bad("contrast", "only a measured phase can be a contrast".into());
        }
        if ph.fanout.is_some() {
            bad(
                "fanout",
                "set target.setup_fanout for setup; teardown uses target.fanout".into(),
            );
        }
        if ph.sg_mode.is_some() {
            bad("sg_mode", "setup and teardown use target.sg_mode".into());
        }
    }
    if role != Role::Load && ph.mix != super::Mix::default() {
        bad(
            "mix",
            format!(
                "{} always {}",
                if role == Role::Setup { "setup" } else { "teardown" },
                if role == Role::Setup { "creates" } else { "deletes" }
            ),
        );
    }
    if role == Role::Load && ph.mix.weights().iter().all(|w| *w == 0) {
        bad("mix", "needs a weight above 0".into());
    }
    let not_for = |field: &str, present: bool, bad: &mut dyn FnMut(&str, String)| {
        if present {
            bad(field, format!("does not apply to model = \"{}\"", ph.model));
        }
    };
    match ph.model {
        ModelKind::Open => {
            if ph.stages.is_empty() && ph.rate.is_none() {
                bad("rate", "model = \"open\" needs rate (or stages)".into());
            }
            if !ph.stages.is_empty() && (ph.rate.is_some() || ph.duration.is_some()) {
                bad("stages", "give stages, or rate and duration, not both".into());
            }
            if let Some(r) = ph.rate
                && !(r > 0.0 && r.is_finite())
            {
                bad("rate", "must be more than 0".into());
            }
            if ph.stages.is_empty()
                && ph.rate.is_some()
                && ph.duration.is_none()
                && ph.requests.is_none()
                && role == Role::Load
            {
                bad("duration", "an open phase needs duration or requests".into());
            }
            for (i, s) in ph.stages.iter().enumerate() {
                if !(s.rate > 0.0 && s.rate.is_finite()) {
                    bad(&format!("stages[{i}].rate"), "must be more than 0".into());
                }
                if s.duration.is_zero() {
                    bad(&format!("stages[{i}].duration"), "must be more than 0".into());
                }
            }
            if ph.max_in_flight == 0 {
                bad("max_in_flight", "must be at least 1".into());
            }
            not_for("users", ph.users.is_some(), &mut bad);
            not_for("ramp", ph.ramp.is_some(), &mut bad);
        }
        ModelKind::Closed => {
            if ph.users.unwrap_or(1) == 0 {
                bad("users", "must be at least 1".into());
            }
            if role == Role::Load && ph.duration.is_none() && ph.requests.is_none() {
                bad("duration", "a closed phase needs duration or requests".into());
            }
            not_for("rate", ph.rate.is_some(), &mut bad);
            not_for("stages", !ph.stages.is_empty(), &mut bad);
        }
        ModelKind::Step => {
            if role != Role::Load {
                bad("model", "step search is for measured phases only".into());
            }
            for (field, v) in [
                ("start_rate", ph.start_rate),
                ("step_rate", ph.step_rate),
                ("max_rate", ph.max_rate),
            ] {
                match v {
                    None => bad(field, "required for model = \"step\"".into()),
                    Some(v) if !(v > 0.0 && v.is_finite()) => bad(field, "must be more than 0".into()),
                    _ => {}
                }
            }
            if let (Some(a), Some(b)) = (ph.start_rate, ph.max_rate)
                && b < a
            {
                bad("max_rate", format!("{b} is below start_rate {a}"));
            }
            if ph.step_duration.is_none_or(|d| d.is_zero()) {
                bad("step_duration", "required for model = \"step\", more than 0".into());
            }
            if ph.checks.is_empty() && slo.is_empty() {
                bad(
                    "checks",
                    "a step search needs checks (or a scenario slo) to find the knee".into(),
                );
            }
            not_for("users", ph.users.is_some(), &mut bad);
            not_for("rate", ph.rate.is_some(), &mut bad);
            let _ = slo_ok;
        }
    }
    if ph.duration.is_some_and(|d| d.is_zero()) {
        bad("duration", "must be more than 0".into());
    }
    validate_checks(&format!("{f}.checks"), &ph.checks, target, p);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Source;

    fn problems(text: &str) -> Problems {
        let src = Source::parse("t.toml".into(), text.into()).unwrap();
        validate(&src.deserialize().unwrap())
    }

    const OPEN: &str = "model='open'\nrate=5\nduration='2s'\n";

    #[test]
    fn contrast_phases_need_a_judged_phase_and_fanout_needs_the_embedded_target() {
        let fine = problems(&format!(
            "name='x'\n[[phases]]\n{OPEN}[[phases]]\n{OPEN}fanout='incremental'\ncontrast=true\n"
        ));
        assert!(fine.is_empty(), "{fine:?}");
        let alone = problems(&format!("name='x'\n[[phases]]\n{OPEN}contrast=true\n"));
        assert!(
            alone
                .iter()
                .any(|(f, m)| f == "phases" && m.contains("contrast = false")),
            "{alone:?}"
        );
        let remote = problems(&format!(
            "name='x'\n[target]\nkind='alcor'\nurl='http://127.0.0.1:1'\n[[phases]]\n{OPEN}fanout='incremental'\n"
        ));
        assert!(
            remote
                .iter()
                .any(|(f, m)| f == "phases[0].fanout" && m.contains("embedded")),
            "{remote:?}"
        );
        let setup = problems(&format!("name='x'\n[setup]\ncontrast=true\n[[phases]]\n{OPEN}"));
        assert!(setup.iter().any(|(f, _)| f == "setup.contrast"), "{setup:?}");
    }

    #[test]
    fn neutron_needs_its_url_and_refuses_what_it_cannot_measure() {
        let has = |ps: &Problems, field: &str, text: &str| ps.iter().any(|(f, m)| f == field && m.contains(text));
        let fine = problems(&format!(
            "name='x'\nslo=['port_active.p99 < 5s', 'api.p99 < 1s']\n[target]\nkind='neutron'\nurl='http://127.0.0.1:9696'\n\
             hosts=['a', 'b']\nheaders={{ X-Auth-Token = '${{OS_TOKEN}}' }}\n[[phases]]\n{OPEN}"
        ));
        assert!(fine.is_empty(), "{fine:?}");
        let bare = problems(&format!("name='x'\n[target]\nkind='neutron'\n[[phases]]\n{OPEN}"));
        assert!(has(&bare, "target.url", "required"), "{bare:?}");
        let agents = problems(&format!(
            "name='x'\nslo=['neighbor_converged.p99 < 5s']\n[target]\nkind='neutron'\nurl='http://127.0.0.1:9696'\n\
             hosts='everything'\n[[phases]]\n{OPEN}checks=['port_programmed.p50 < 1s']\n"
        ));
        assert!(has(&agents, "slo[0]", "no meaning"), "{agents:?}");
        assert!(has(&agents, "phases[0].checks[0]", "port_active"), "{agents:?}");
        assert!(has(&agents, "target.hosts", "discover"), "{agents:?}");
        let embedded = problems(&format!(
            "name='x'\nslo=['port_active.p99 < 5s']\n[target]\nhosts=['a']\nheaders={{ 'bad header' = 'x' }}\n[[phases]]\n{OPEN}"
        ));
        assert!(has(&embedded, "slo[0]", "only for kind = \"neutron\""), "{embedded:?}");
        assert!(has(&embedded, "target.hosts", "only for kind"), "{embedded:?}");
        assert!(
            has(&embedded, "target.headers.bad header", "header name"),
            "{embedded:?}"
        );
    }

    #[test]
    fn sg_changes_need_groups_a_rest_target_and_names_that_exist() {
        let has = |ps: &Problems, field: &str, text: &str| ps.iter().any(|(f, m)| f == field && m.contains(text));
        let groups = "[[topology.security_groups]]\nname='web'\n[[topology.security_groups]]\nname='db'\n";
        let fine = problems(&format!(
            "name='x'\n[topology]\n[topology.sg_changes]\nrules_in='web'\nremote_group='db'\n{groups}\
             [[phases]]\n{OPEN}mix={{ sg_rule_add = 1, sg_join = 1 }}\nsg_mode='expand'\n"
        ));
        assert!(fine.is_empty(), "{fine:?}");
        let bare = problems(&format!("name='x'\n[[phases]]\n{OPEN}mix={{ sg_rule_add = 1 }}\n"));
        assert!(has(&bare, "phases[0].mix", "topology.security_groups"), "{bare:?}");
        let wrong = problems(&format!(
            "name='x'\n[target]\nkind='southbound'\nsg_mode='expand'\n[topology]\n\
             [topology.sg_changes]\nmembers_of='nope'\n{groups}[[phases]]\n{OPEN}mix={{ sg_leave = 1 }}\n"
        ));
        assert!(has(&wrong, "topology.sg_changes.members_of", "`nope`"), "{wrong:?}");
        assert!(has(&wrong, "phases[0].mix", "REST target"), "{wrong:?}");
        assert!(has(&wrong, "target.sg_mode", "embedded"), "{wrong:?}");
    }
}
