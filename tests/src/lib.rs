//! What the integration tests and the benchmarks both start: real Redis
//! and nginx servers of their own, on loopback ports of their own, for a
//! fleet of `weir serve` replicas.

pub mod rig;
