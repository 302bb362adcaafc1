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
//! | [`page`] | `page_size` / opaque keyset `page_token` handling for lists |
//! | [`caller`] | the seam that tells a handler who calls (admin until the auth layer lands) |
//! | [`password`] | argon2id hashing with the parameters of the original system |

pub mod caller;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod page;
pub mod password;
pub mod server;
pub mod telemetry;

pub use error::{Error, FieldViolations, Result};
