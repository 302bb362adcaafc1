//! Phoenix integration suite: one test binary (linked once), a module per area. Every test
//! gets its own database from the harness and talks to real servers over TCP.

mod accounts;
mod active;
mod activities;
mod auth;
mod authz;
mod caller;
mod config;
mod demo;
mod dev_stack;
mod education;
mod facilities;
mod feedback;
mod guardians;
mod invitations;
mod iot;
mod migrations;
mod password_reset;
mod presence;
mod python_e2e;
mod reader;
mod roles;
mod schedule;
mod schema_drift;
mod services;
mod support;
mod users;
