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
//! | [`password`] | argon2id hashing with the parameters of the original system |
//! | [`pagination`] | page sizes and opaque keyset page tokens for List methods |
//! | [`time`] | protobuf timestamps and the school's business date |

pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod pagination;
pub mod password;
pub mod server;
pub mod telemetry;
pub mod time;

pub use error::{Error, FieldViolations, Result};
