//! Security-group changes end to end (`scenarios/sg-scale.toml`, small): rule adds and deletes,
//! members joining and leaving, through the embedded control plane to real agents, each
//! correlated until every enforcing host applied it, under both strategies, at two sizes.

mod common;

use common::*;
use reports::summary::Summary;

#[test]
fn sg_changes_are_correlated_under_both_strategies_and_expand_costs_a_rule_per_member() {
    let _serial = serial();
    let dir = tmp("sg-scale");
    let out = dir.join("run");
    let mut args = vec![
        "run".to_owned(),
        scenario("sg-scale").to_str().unwrap().to_owned(),
        "--out".to_owned(),
        out.to_str().unwrap().to_owned(),
        "--quiet".to_owned(),
    ];
    for s in [
        "agents.base_ip=127.5.30.1",
        "agents.count=8",
        "topology.subnets_per_vpc=8",
        "topology.ports=8",
        "topology.grow_to=[40]",
        "measure.correlation_timeout=\"10s\"",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain((0..4).map(|i| format!("phases[{i}].requests=4")))
    {
        args.push("--set".into());
        args.push(s);
    }
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = Summary::read(&out).unwrap();
    assert_eq!((s.errors.not_programmed, s.errors.not_converged), (0, 0));
    let phase = |name: &str| {
        s.phases
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    for size in [8, 40] {
        for (name, kinds) in [
            ("rules-address-set", ["rule_add", "rule_delete"]),
            ("members-address-set", ["join", "leave"]),
            ("rules-expand", ["rule_add", "rule_delete"]),
            ("members-expand", ["join", "leave"]),
        ] {
            let p = phase(&format!("{name}@{size}"));
            for k in kinds {
                // Two of each: every change reached every host enforcing it.
                assert_eq!(p.metrics[&format!("sg_programmed.{k}")].count, 2, "{}: {k}", p.name);
            }
            assert_eq!(
                p.metrics.get("api.create").map_or(0, |m| m.count),
                0,
                "{}: no port created",
                p.name
            );
        }
        // Per rule change: one rule per enforcing host as an address set, one per member and
        // host expanded (every port is in both groups, on all 8 hosts).
        let rules = |name: &str| {
            let m = &phase(&format!("{name}@{size}")).metrics["goal_state_sg_rules"];
            m.mean * m.count as f64 / 4.0
        };
        assert_eq!(rules("rules-address-set"), 8.0, "at {size}");
        let expanded = rules("rules-expand");
        assert!(
            expanded >= (8 * size) as f64,
            "at {size} ports: {expanded} rules per change, expected one per member per host"
        );
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("id=\"sg-changes\""), "the report's security-group table");
    assert!(html.contains("id=\"chart-sg-cost\""), "its chart of cost against size");

    // Groups created and deleted in the load: no host holds an empty group, so the answer is
    // their outcome; the run's own groups, not the topology's, are the ones deleted.
    let out2 = dir.join("groups");
    let o = run(&[
        "run",
        scenario("ci-smoke").to_str().unwrap(),
        "--set",
        "agents.base_ip=127.5.31.1",
        "--set",
        "phases=[{ name = 'groups', model = 'closed', users = 1, requests = 6, mix = { sg_group_create = 1, sg_group_delete = 1 } }]",
        "--set",
        "slo=['error_rate < 0.1%', 'api.sg_group_create.count >= 3']",
        "--out",
        out2.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = Summary::read(&out2).unwrap();
    assert_eq!(s.metrics["api.sg_group_create"].count, 3);
    assert_eq!(s.metrics["api.sg_group_delete"].count, 3);
    assert_eq!(s.errors.requests_failed, 0, "{:?}", s.errors);
}
