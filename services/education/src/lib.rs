//! `phoenix-education`: the `phoenix.education.v1.EducationService` — education groups,
//! group teachers, substitutions, same-day transfers and "my groups", schema `education`.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | the tonic handlers, [`service::METHODS`] and the transactional operations |
//! | [`validate`] | requests → typed commands (date rules of substitutions) |
//! | `convert` | rows → proto messages |
//! | [`repo`] | diesel queries |
//! | `error` | database constraint names → caller-facing errors |

mod convert;
mod error;
pub mod repo;
pub mod service;
pub mod validate;

use phoenix_common::db::DbPool;
pub use phoenix_proto::education::v1::education_service_server::EducationServiceServer;

/// gRPC name of the service (health reports it).
pub const SERVICE_NAME: &str = "phoenix.education.v1.EducationService";

/// The tonic server of this domain on `pool`.
pub fn server(pool: DbPool) -> EducationServiceServer<service::Education> {
    EducationServiceServer::new(service::Education::new(pool))
}
