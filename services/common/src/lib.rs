//! `phoenix-common`: the small crate every Phoenix service and the gateway depend on.
//!
//! | module | holds |
//! |---|---|
//! | [`access`] | the "my groups" / student full-access rules over a [`caller::Caller`] |
//! | [`client_addr`] | the caller's real address behind the gateway (signed header), CIDRs |
//! | [`config`] | one typed [`config::Config`] read from environment variables |
//! | [`db`] | the bb8 + diesel-async connection pool |
//! | [`error`] | the domain [`Error`] and its single mapping to `tonic::Status` |
//! | [`telemetry`] | tracing subscriber (pretty/JSON) and optional OTLP export |
//! | [`domain`] | the list of Phoenix domains, their gRPC names and port offsets |
//! | [`server`] | health + reflection wiring, serving a domain on a port, graceful shutdown |
//! | [`page`] | [`page::PageRequest`]: keyset page tokens and page-size rules of every `List*` RPC |
//! | [`convert`] | row → proto helpers: dates, constraint names, `LIKE` patterns |
//! | [`validate`] | request checks: ids, text, dates, update masks and [`validate::Update`], pages |
//! | [`email`] | email normalisation (trimmed, lower-case) |
//! | [`password`] | argon2id hashing with the parameters of the original system |
//! | [`time`] | protobuf timestamps and the school's business date |
//! | [`caller`] | the caller (account, staff record, admin or not) for resource rules |
//! | [`authz`] | access-token verification, permission declarations and checks, [`authz::AuthContext`] |
//! | [`jobs`] | scheduled jobs: one replica at a time (advisory lock), daily at a local time |
//! | [`metrics`] | Prometheus metrics: the recorder, `/metrics`, every metric's name |
//! | [`trace_context`] | W3C trace context in and out of gRPC calls |

pub mod access;
pub mod authz;
pub mod caller;
pub mod client_addr;
pub mod config;
pub mod convert;
pub mod db;
pub mod db_roles;
pub mod domain;
pub mod email;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod page;
pub mod password;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod time;
pub mod trace_context;
pub mod validate;

pub use error::{Error, FieldViolations, Result};

/// What a tonic handler returns (house style: the body uses `?` on [`Error`] results).
pub type Reply<T> = std::result::Result<tonic::Response<T>, tonic::Status>;
