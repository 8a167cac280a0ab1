//! Benchmarks live in benches/; this library only gives them shared fixtures.
