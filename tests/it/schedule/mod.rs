//! Schedule: timeframes, dateframes and classes.

#[allow(clippy::module_inception)]
mod schedule;
mod classes;
