//! `phoenix-schedule`: the `phoenix.schedule.v1.ScheduleService` server.
//!
//! - [`recurrence`]: recurrence rules and their expansion (pure, unit- and property-tested).
//! - [`slots`]: room overlap and free-window logic (pure).
//! - [`classes`]: class schedules and the weekly bookings of a room (conflicts).
//! - [`service`]: the tonic handlers; [`METHODS`] declares each RPC's permission.

pub mod classes;
mod convert;
pub mod recurrence;
pub mod repo;
pub mod service;
pub mod slots;
mod validate;

pub use service::{METHODS, ScheduleServiceImpl};

use phoenix_common::db::DbPool;
use phoenix_proto::schedule::v1::schedule_service_server::ScheduleServiceServer;

/// The tonic server for `pool`.
pub fn server(pool: DbPool) -> ScheduleServiceServer<ScheduleServiceImpl> {
    ScheduleServiceServer::new(ScheduleServiceImpl::new(pool))
}
