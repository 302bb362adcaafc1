//! Schedule: timeframes, dateframes and classes.

mod classes;
#[allow(clippy::module_inception)]
mod schedule;
