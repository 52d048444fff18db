//! The `tessera` binary as a user runs it: lint offline, serve, apply, ingest and query as a
//! client, the artgo demo, and SQL behaviour over the demo data in `tests/slt/*.slt`.

mod cli;
mod demo;
mod differential;
mod events;
mod fixtures;
mod flight_sql;
mod limits;
mod matrix;
mod postgres_wire;
mod sources;
mod support;
mod templates;
mod transforms;
