//! Per-sample recording cost: what each request and agent message costs the harness to
//! record, next to a bare `Histogram::record`.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use fake_agent::AgentEvent;
use harness::correlate::Correlator;
use harness::record::{PhaseKind, Recorder};
use harness::topology::Op;

fn event(port: &str, neighbors: &[String]) -> AgentEvent {
    AgentEvent {
        agent: 0,
        host_ip: Ipv4Addr::new(127, 0, 0, 2),
        rpc: fake_agent::Rpc::PushGoalStatesStream,
        arrived: Instant::now(),
        completed: Instant::now(),
        bytes: 3000,
        counts: fake_agent::apply::ResourceCounts {
            port: 1,
            neighbor: neighbors.len() as u64,
            ..Default::default()
        },
        ops: Default::default(),
        outcomes: Default::default(),
        port_ids: [port].into_iter().collect(),
        neighbor_ids: neighbors.iter().collect(),
        sg_rule_ids: Default::default(),
        skipped_local_neighbors: 0,
        decode_us: 10,
        apply_us: 10,
        cpu_us: 20,
        simulated_us: 0,
        total_us: 20,
        error: None,
        fault: None,
        queued: None,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut v = 1u64;
    g.bench_function("histogram_record", |b| {
        b.iter(|| {
            v = v.wrapping_mul(6364136223846793005).wrapping_add(1);
            h.record(v % 1_000_000).unwrap();
        })
    });
    let rec = Arc::new(Recorder::new(Instant::now(), std::time::SystemTime::now(), None).unwrap());
    let phase = rec.begin_phase("bench", PhaseKind::Load, "bench".into(), None);
    g.bench_function("recorder_answered", |b| {
        b.iter(|| {
            v = v.wrapping_mul(6364136223846793005).wrapping_add(1);
            rec.answered(phase, "api.create", v % 1_000_000, None);
        })
    });
    // A whole correlation round: expect a port, then the agent message that programs it on its
    // host and the ten neighbor-host messages that converge it.
    let corr = Correlator::new(rec.clone(), Duration::from_secs(30));
    let own = Ipv4Addr::new(127, 0, 0, 2);
    let neighbors: Vec<Ipv4Addr> = (3..13).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let others: Vec<String> = (0..10).map(|i| format!("other-{i}")).collect();
    let mut n = 0u64;
    g.bench_function("correlate_port_1_own_10_neighbor_messages", |b| {
        b.iter(|| {
            n += 1;
            let id = format!("port-{n}");
            corr.expect(
                &id,
                phase,
                Op::Create,
                Instant::now(),
                Some(own),
                neighbors.clone(),
                false,
            );
            corr.on_event(&event(&id, &others));
            for ip in &neighbors {
                let mut e = event("x", std::slice::from_ref(&id));
                e.host_ip = *ip;
                e.port_ids = Default::default();
                corr.on_event(&e);
            }
        })
    });
    assert_eq!(corr.pending(), 0, "every port converged");
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
