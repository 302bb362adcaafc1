//! `phoenix-common`: the small crate every Phoenix service and the gateway depend on.
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | one typed [`config::Config`] read from environment variables |
//! | [`db`] | the bb8 + diesel-async connection pool |
//! | [`error`] | the domain [`Error`] and its single mapping to `tonic::Status` |
//! | [`telemetry`] | tracing subscriber (pretty/JSON) and optional OTLP export |
//! | [`domain`] | the list of Phoenix domains, their gRPC names and port offsets |
//! | [`server`] | health + reflection wiring, serving a domain on a port, graceful shutdown |
//! | [`email`] | email normalisation (trimmed, lower-case) |
//! | [`page`] | `page_size` / opaque keyset `page_token` handling |
//! | [`password`] | argon2id hashing with the parameters of the original system |
//! | [`caller`] | the caller (account, staff record, admin or not) for resource rules |
//! | [`authz`] | access-token verification, permission declarations and checks, [`authz::AuthContext`] |

pub mod authz;
pub mod caller;
pub mod config;
pub mod db;
pub mod domain;
pub mod email;
pub mod error;
pub mod page;
pub mod password;
pub mod server;
pub mod telemetry;

pub use error::{Error, FieldViolations, Result};
