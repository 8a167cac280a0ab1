//! Decode + apply of one GoalStateV2 by a simulated agent: one port joining a subnet of N ports,
//! as Alcor's DPM sends it to the port's host. Throughput is per neighbor state.
//!
//! `agent/*` is the agent's own path (neighbor map decoded as a list, see fake_agent::wire);
//! `generated_map` decodes with prost's generated type (a HashMap of neighbors) for comparison.
//! `agent_replace` applies the message to a host that already holds those neighbors: a port
//! joining a subnet the host has been told about, which is what a run's measured joins are.
//!
//! Run: `cargo bench -p benches --bench agent_apply`; the 1M-neighbor cases (about a minute):
//! `cargo bench -p benches --bench agent_apply -- 1000000`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use alcor_schema::GoalStateV2;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fake_agent::wire::decode_v2;
use fake_agent::{ApplyOptions, HostState, ValidationMode, apply_decoded_v2, apply_v2, sample};
use prost::Message;
use prost::bytes::Bytes;

// The same allocator as the alcor-scale binary, where agents run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZES: [usize; 4] = [1, 100, 10_000, 100_000];

/// Sizes for the agent's own path only: the generated type at 1M takes seconds an iteration.
const REPLACE_SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

fn encoded(neighbors: usize) -> Bytes {
    Bytes::from(sample::port_joining_subnet(Ipv4Addr::new(127, 1, 0, 1), neighbors, 1000, 4).encode_to_vec())
}

fn options(mode: ValidationMode) -> ApplyOptions {
    ApplyOptions {
        mode,
        local_ip: Some(Ipv4Addr::new(127, 1, 0, 1)),
        collect_ids: false,
    }
}

fn decode_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_apply");
    group.sample_size(20);
    for n in SIZES {
        let bytes = encoded(n);
        group.throughput(Throughput::Elements(n as u64));
        for mode in [ValidationMode::Lenient, ValidationMode::Strict] {
            let id = BenchmarkId::new(format!("agent_{mode}"), n);
            group.bench_with_input(id, &bytes, |b, bytes| {
                // A fresh host per iteration (creates, not replacements); its drop is not timed.
                b.iter_batched(
                    HostState::default,
                    |mut state| {
                        let msg = decode_v2(black_box(bytes.clone())).unwrap();
                        black_box(apply_decoded_v2(&mut state, msg, options(mode)));
                        state
                    },
                    BatchSize::LargeInput,
                )
            });
        }
        group.bench_with_input(BenchmarkId::new("generated_map", n), &bytes, |b, bytes| {
            b.iter_batched(
                HostState::default,
                |mut state| {
                    let msg = GoalStateV2::decode(black_box(&bytes[..])).unwrap();
                    black_box(apply_v2(&mut state, msg, options(ValidationMode::Lenient)));
                    state
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// Decode alone, to see how the time splits.
fn decode_only(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_only");
    group.sample_size(20);
    for n in SIZES {
        let bytes = encoded(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("agent", n), &bytes, |b, bytes| {
            b.iter(|| decode_v2(black_box(bytes.clone())).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("generated_map", n), &bytes, |b, bytes| {
            b.iter(|| GoalStateV2::decode(black_box(&bytes[..])).unwrap())
        });
    }
    group.finish();
}

/// As in a run's measured joins: a host that already holds the message's neighbors (every
/// neighbor is a replacement; the state keeps its size from one iteration to the next, so it is
/// set up once), with the ids collected for the harness's correlation.
fn decode_apply_replace(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_apply");
    group.sample_size(10);
    for n in REPLACE_SIZES {
        let bytes = encoded(n);
        let mut state = HostState::default();
        apply_decoded_v2(
            &mut state,
            decode_v2(bytes.clone()).unwrap(),
            options(ValidationMode::Lenient),
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("agent_replace", n), &bytes, |b, bytes| {
            b.iter(|| {
                let msg = decode_v2(black_box(bytes.clone())).unwrap();
                let opts = ApplyOptions {
                    collect_ids: true,
                    ..options(ValidationMode::Lenient)
                };
                black_box(apply_decoded_v2(&mut state, msg, opts));
            })
        });
        if n == 1_000_000 {
            // The fresh-host case at 1M, beside the smaller ones in `decode_apply`.
            group.bench_with_input(BenchmarkId::new("agent_lenient", n), &bytes, |b, bytes| {
                b.iter_batched(
                    HostState::default,
                    |mut state| {
                        let msg = decode_v2(black_box(bytes.clone())).unwrap();
                        black_box(apply_decoded_v2(&mut state, msg, options(ValidationMode::Lenient)));
                        state
                    },
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decode_apply, decode_apply_replace, decode_only);
criterion_main!(benches);
