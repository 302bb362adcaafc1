//! Settings and data retention.

#[allow(clippy::module_inception)]
mod config;
mod retention;
