//! Property tests of what an agent reads from the network: any bytes, and mutations of real
//! goal states, decode or fail cleanly, and whatever decodes applies without panicking, in
//! both validation modes. `PROPTEST_CASES` sets the cases (`scripts/props.sh` runs a million).

use alcor_schema::{GoalState, GoalStateV2};
use bytes::Bytes;
use cap::Cap;
use fake_agent::sample::port_joining_subnet;
use fake_agent::{ApplyOptions, HostState, ValidationMode, apply_decoded_v2, apply_v1};
use proptest::prelude::*;
use prost::Message;

/// Every allocation of this test process counts against a cap: input of 2 KB that made the
/// decoder or the state ask for more than this would abort the run, not pass.
const ALLOC_CAP: usize = 256 << 20;

#[global_allocator]
static ALLOC: Cap<std::alloc::System> = Cap::new(std::alloc::System, ALLOC_CAP);

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000)
}

/// Decodes `raw` both ways and applies what decodes.
fn feed(raw: &[u8]) {
    for mode in [ValidationMode::Lenient, ValidationMode::Strict] {
        let opts = ApplyOptions {
            mode,
            local_ip: Some(std::net::Ipv4Addr::new(127, 0, 0, 1)),
            collect_ids: true,
        };
        let mut state = HostState::default();
        if let Ok(v2) = fake_agent::wire::decode_v2(Bytes::copy_from_slice(raw)) {
            let applied = apply_decoded_v2(&mut state, v2, opts);
            // What a reply reports stays bounded by what was sent.
            assert!(applied.statuses.len() <= raw.len());
        }
        if let Ok(v1) = GoalState::decode(raw) {
            apply_v1(&mut state, v1, opts);
        }
    }
    // Nothing a case allocated may stay (the harness's own few MB aside).
    assert!(
        ALLOC.allocated() < 64 << 20,
        "{} bytes held after a case",
        ALLOC.allocated()
    );
}

/// A real goal state: a port joining a subnet of a few neighbors, with security-group rules.
fn seed_message() -> Vec<u8> {
    port_joining_subnet(std::net::Ipv4Addr::new(127, 0, 0, 1), 6, 3, 2).encode_to_vec()
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
    Splice(usize, usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
            any::<usize>().prop_map(Edit::Cut),
            (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Edit::Insert(i, b)),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Splice(a, b)),
        ],
        1..8,
    )
}

fn mutate(mut m: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        if m.is_empty() {
            break;
        }
        let n = m.len();
        match e {
            Edit::Flip(i, b) => m[i % n] ^= b | 1,
            Edit::Cut(i) => m.truncate(i % n),
            Edit::Insert(i, b) => {
                let at = i % n;
                m.splice(at..at, b.iter().copied());
            }
            // A length-prefixed field's bytes moved elsewhere: lengths that lie.
            Edit::Splice(a, b) => {
                let (a, b) = (a % n, b % n);
                let (lo, hi) = (a.min(b), a.max(b));
                let part: Vec<u8> = m.drain(lo..hi).collect();
                let at = if m.is_empty() { 0 } else { b % m.len() };
                m.splice(at..at, part);
            }
        }
    }
    m
}

proptest! {
    // A case that runs past 10 s is a hang: the test runs in a child process that is killed then.
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, timeout: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn props_any_bytes_decode_or_fail_cleanly(raw in prop::collection::vec(any::<u8>(), 0..2048)) {
        feed(&raw);
    }

    #[test]
    fn props_mutated_goal_states_decode_or_fail_cleanly(e in edits()) {
        feed(&mutate(seed_message(), &e));
    }
}

#[test]
fn the_seed_message_is_valid_and_applies() {
    let raw = seed_message();
    let v2 = fake_agent::wire::decode_v2(Bytes::from(raw.clone())).unwrap();
    let mut state = HostState::default();
    let applied = apply_decoded_v2(
        &mut state,
        v2,
        ApplyOptions {
            mode: ValidationMode::Strict,
            local_ip: None,
            collect_ids: true,
        },
    );
    assert_eq!(applied.outcomes.invalid_arg, 0);
    assert_eq!(state.counts().ports, 1);
    assert!(GoalStateV2::decode(&raw[..]).is_ok());
}
