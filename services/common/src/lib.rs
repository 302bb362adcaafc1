//! `phoenix-common`: the small crate every Phoenix service and the gateway depend on.
//!
//! | module | holds |
//! |---|---|
//! | [`access`] | the caller of a request (the seam for the auth context) and the "my groups" / student full-access rules |
//! | [`config`] | one typed [`config::Config`] read from environment variables |
//! | [`db`] | the bb8 + diesel-async connection pool |
//! | [`error`] | the domain [`Error`] and its single mapping to `tonic::Status` |
//! | [`telemetry`] | tracing subscriber (pretty/JSON) and optional OTLP export |
//! | [`domain`] | the list of Phoenix domains, their gRPC names and port offsets |
//! | [`server`] | health + reflection wiring, serving a domain on a port, graceful shutdown |
//! | [`page`] | keyset page tokens and page-size rules of every `List*` RPC |
//! | [`convert`] | proto ⇄ domain helpers: timestamps, dates, field masks, text, constraint names |
//! | [`time`] | the business day (Europe/Berlin) |
//! | [`password`] | argon2id hashing with the parameters of the original system |

pub mod access;
pub mod config;
pub mod convert;
pub mod db;
pub mod domain;
pub mod error;
pub mod page;
pub mod password;
pub mod server;
pub mod telemetry;
pub mod time;

pub use error::{Error, FieldViolations, Result};
