//! Phoenix integration suite: one test binary (linked once), a module per area. Every test
//! gets its own database from the harness and talks to real servers over TCP.

mod activities;
mod config;
mod dev_stack;
mod migrations;
mod schedule;
mod schema_drift;
mod services;
mod support;
