//! Phoenix integration suite: one test binary (linked once), a module per area. Every test
//! gets its own database from the harness and talks to real servers over TCP.

mod active;
mod dev_stack;
mod iot;
mod migrations;
mod reader;
mod schema_drift;
mod services;
