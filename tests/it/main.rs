//! Phoenix integration suite: one test binary (linked once), a module per domain (a folder each).
//! Every test gets its own database from the harness and talks to real servers over TCP.

mod active;
mod activities;
mod audit;
mod auth;
mod config;
mod education;
mod facilities;
mod feedback;
mod iot;
mod platform;
mod schedule;
mod users;
