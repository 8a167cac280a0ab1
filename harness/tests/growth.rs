//! A topology grown in steps (`topology.grow_to`), the measured phases run at every size, built in
//! `incremental` fan-out and measured in `alcor`: the big-goalstate shape, small.

mod common;

use common::*;
use reports::summary::Summary;

#[test]
fn a_grown_subnet_is_measured_at_every_size_with_its_whole_list_in_each_join() {
    let _serial = serial();
    let dir = tmp("growth");
    let out = dir.join("run");
    let o = run(&[
        "run",
        scenario("big-goalstate").to_str().unwrap(),
        "--set",
        "agents.base_ip=127.5.20.1",
        "--set",
        "agents.count=3",
        "--set",
        "topology.ports=100",
        "--set",
        "topology.grow_to=[300, 1000]",
        "--set",
        "topology.bulk=100",
        "--set",
        "phases[0].requests=2",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = Summary::read(&out).unwrap();
    let joins: Vec<_> = s.phases.iter().filter(|p| p.kind == "load").collect();
    let names: Vec<&str> = joins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["join@100", "join@300", "join@1000"]);
    let grows: Vec<&str> = s
        .phases
        .iter()
        .filter(|p| p.kind == "setup")
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(grows, ["setup", "grow@300", "grow@1000"]);
    for p in &joins {
        let size = p.topology_ports.unwrap();
        // Each join's own host gets the whole subnet: every port so far, the joins included.
        let neighbors = p.metrics["goal_state_neighbors"].max;
        assert!(
            (size..=size + 10).contains(&neighbors),
            "{}: {neighbors} neighbors at {size} ports",
            p.name
        );
        for m in ["cp_compute", "cp_encode", "cp_push", "port_programmed"] {
            assert_eq!(p.metrics[m].count, 2, "{}: {m}", p.name);
        }
    }
    assert_eq!((s.errors.not_programmed, s.errors.not_converged), (0, 0));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let table = &html[html.find("<table id=\"growth\"").expect("the goal-state size table")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<tr><td>join@").count(), 3, "{table}");
    assert!(
        table.contains("<td>112 ms</td>"),
        "Alcor's 1k point beside the 1,000-port row: {table}"
    );
    // Growth that does not grow is refused.
    rejects(
        &[
            "validate",
            scenario("big-goalstate").to_str().unwrap(),
            "--set",
            "topology.grow_to=[500]",
            "--set",
            "topology.ports=1000",
        ],
        "topology.grow_to[0]: 500 does not grow",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
