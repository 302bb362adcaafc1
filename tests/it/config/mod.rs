//! Settings and data retention.

#[allow(clippy::module_inception)]
mod config;
mod db_stats;
mod retention;
