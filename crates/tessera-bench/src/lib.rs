//! Load generators for the benchmarks in `bench/`: programs that drive a running Tessera the way
//! many clients would, faster than a Python client can (`src/bin/event_load.rs`: the event
//! API). Nothing of Tessera depends on this crate.
