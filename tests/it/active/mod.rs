//! Active sessions: attendance, combined groups, supervisors, visits, presence and the reader pipeline.

#[allow(clippy::module_inception)]
mod active;
mod attendance;
mod combined;
mod mqtt_faults;
mod presence;
mod reader;
mod supervisors;
mod visits;
