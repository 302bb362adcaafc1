//! Active sessions: attendance, combined groups, supervisors, visits, presence and the reader pipeline.

mod access;
#[allow(clippy::module_inception)]
mod active;
mod alerts;
mod attendance;
mod broker_acl;
mod clock_evidence;
mod combined;
mod combined_access;
mod corrections;
mod group_commit;
mod jobs;
mod mqtt_faults;
mod ordering;
mod partitions;
mod presence_board;
mod presence_helpers;
mod presence_hub;
mod presence_stream;
mod reader;
mod reports;
mod settings;
mod streams;
mod supervisors;
mod visits;
