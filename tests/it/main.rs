//! Phoenix integration suite: one test binary (linked once), a module per area. Every test
//! gets its own database from the harness and talks to real servers over TCP.

mod accounts;
mod active;
mod active_attendance;
mod active_combined;
mod active_common;
mod active_supervisors;
mod active_visits;
mod activities;
mod activities_manage;
mod audit;
mod auth;
mod authz;
mod caller;
mod config;
mod demo;
mod dev_stack;
mod education;
mod facilities;
mod feedback;
mod gateway_web;
mod guardians;
mod invitations;
mod iot;
mod migrations;
mod password_reset;
mod python_e2e;
mod reader;
mod retention;
mod roles;
mod schedule;
mod schedule_classes;
mod schema_drift;
mod services;
mod support;
mod users;
