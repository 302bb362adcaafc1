//! Phoenix integration suite: one test binary (linked once), a module per area. Every test
//! gets its own database from the harness and talks to real servers over TCP.

mod demo;
mod dev_stack;
mod education;
mod facilities;
mod guardians;
mod migrations;
mod permissions;
mod python_e2e;
mod schema_drift;
mod services;
mod users;
