//! `phoenix-activities`: the `phoenix.activities.v1.ActivitiesService` server.
//!
//! Enrollment is where the original went wrong (reference §1.5 [Q], §7 #5): here capacity
//! and `is_open` are checked under a row lock on the activity, and every write checks
//! ownership (admin, creator or planned supervisor) through the caller seam.

mod out;
pub mod repo;
pub mod service;
mod validate;

pub use service::{ActivitiesServiceImpl, METHODS};

use phoenix_common::db::DbPool;
use phoenix_proto::activities::v1::activities_service_server::ActivitiesServiceServer;

/// The tonic server for `pool`.
pub fn server(pool: DbPool) -> ActivitiesServiceServer<ActivitiesServiceImpl> {
    ActivitiesServiceServer::new(ActivitiesServiceImpl::new(pool))
}
