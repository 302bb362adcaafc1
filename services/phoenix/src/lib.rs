//! The `phoenix` binary's library: everything its subcommands do, callable from tests.
//!
//! | module | holds |
//! |---|---|
//! | [`services`] | which tonic servers each domain serves, and starting any subset on ports |
//! | [`dev`] | `phoenix dev`: database, migrations, demo data, broker, all services, gateway |
//! | [`database`] | the private database for `dev`, and creating a database if missing |
//! | [`admin`] | creating the first admin account |
//! | [`backup`] | `phoenix backup` / `phoenix restore`: pg_dump / pg_restore with a manifest |
//! | [`db_ops`] | `phoenix db stats`: database health figures as tables |
//! | [`demo`] | the demo school loaded by `dev` and `seed-demo` |
//! | [`demo_sessions`] | running sessions in three demo rooms, for the reader walkthrough |
//! | [`edge`] | the MQTT reader bridge as `dev` and `gateway` run it |
//! | [`import`] | `phoenix import students FILE [--dry-run]`: the pupil import (docs/import.md) |
//! | [`jobs`] | `phoenix jobs list` and `phoenix jobs run`: every domain's scheduled jobs by hand |
//! | [`report`] | `phoenix report …` and `phoenix rollover …` (docs/reports.md) |
//! | [`reader_sim`] | `phoenix reader-sim`: a simulated reader |

pub mod admin;
pub mod backup;
pub mod database;
pub mod db_ops;
pub mod demo;
pub mod demo_sessions;
pub mod dev;
pub mod edge;
pub mod import;
pub mod jobs;
pub mod reader_sim;
pub mod report;
pub mod services;
