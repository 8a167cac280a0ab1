//! Security-group rules changed after ports exist reach the agents that enforce them: a rule
//! added to a group is applied by exactly the hosts holding its members (a remote-group rule
//! bringing the remote group's members as neighbors), and a rule removed is removed there.

mod common;

use std::collections::BTreeSet;

use alcor_schema::NeighborType;
use common::*;
use control_plane::FanoutMode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_changes_are_pushed_to_exactly_the_hosts_enforcing_the_group() {
    let env = start([127, 4, 50, 1], 6, FanoutMode::Alcor).await;
    let (vpc, subnet) = env.vpc_with_subnet("10.9.0.0/16").await;
    let mut groups = Vec::new();
    for name in ["web", "db"] {
        let g = env
            .post(
                &format!("/project/{PID}/security-groups"),
                json!({ "security_group": { "name": name } }),
            )
            .await;
        groups.push(g["security_group"]["id"].as_str().unwrap().to_owned());
    }
    // web on hosts 0-2, db on hosts 3-4, host 5 holds a port of neither.
    for (i, host, group) in [(0, 0, 0), (1, 1, 0), (2, 2, 0), (3, 3, 1), (4, 4, 1), (5, 5, 2)] {
        let sgs: Vec<&String> = groups.get(group).into_iter().collect();
        let out = env
            .post(
                &format!("/project/{PID}/ports"),
                json!({ "port": { "id": format!("p{i}"), "network_id": vpc, "fixed_ips": [{ "subnet_id": subnet }],
                        "security_groups": sgs, "device_id": format!("vm-{i}"), "device_owner": "compute:nova",
                        "binding:host_id": format!("host-{host}") } }),
            )
            .await;
        assert_eq!(out["port"]["status"], "ACTIVE", "{out}");
    }
    let rules_on = |h: usize| -> BTreeSet<String> {
        env.fleet.agents()[h]
            .state()
            .security_group(&groups[0])
            .map(|g| g.security_group_rules.iter().map(|r| r.id.clone()).collect())
            .unwrap_or_default()
    };
    let before: Vec<BTreeSet<String>> = (0..6).map(rules_on).collect();

    // A rule naming db as its remote group.
    let out = env
        .post(
            &format!("/project/{PID}/security-group-rules"),
            json!({ "security_group_rule": { "id": "from-db", "security_group_id": groups[0], "direction": "ingress",
                    "protocol": "tcp", "port_range_min": 8080, "port_range_max": 8080, "remote_group_id": groups[1] } }),
        )
        .await;
    assert_eq!(out["dataplane"]["hosts"], 3, "web's three hosts: {out}");
    for (h, was) in before.iter().enumerate() {
        let has = rules_on(h).contains("from-db");
        assert_eq!(has, h < 3, "host {h} holds the rule: {has}");
        if h < 3 {
            assert!(rules_on(h).is_superset(was), "the delta keeps the group's other rules");
            let l3: BTreeSet<String> = env.fleet.agents()[h]
                .state()
                .neighbor_ids(NeighborType::L3)
                .map(str::to_owned)
                .collect();
            assert!(
                l3.contains("p3") && l3.contains("p4"),
                "host {h} knows db's members: {l3:?}"
            );
        }
    }

    let (status, _) = env
        .send(
            reqwest::Method::DELETE,
            &format!("/project/{PID}/security-group-rules/from-db"),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    for (h, was) in before.iter().enumerate() {
        assert_eq!(&rules_on(h), was, "host {h}: the rule is gone, the others stay");
    }
}
