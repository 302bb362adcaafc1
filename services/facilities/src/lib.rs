//! `phoenix-facilities`: the `phoenix.facilities.v1.FacilitiesService` — rooms (with live
//! occupancy), buildings and locations, schema `facilities`.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | the tonic handlers and [`service::METHODS`] |
//! | [`validate`] | requests → typed commands, collecting field violations |
//! | `convert` | rows → proto messages |
//! | [`repo`] | diesel queries (also used by the demo school) |
//! | `error` | database constraint names → caller-facing errors |

mod convert;
mod error;
pub mod repo;
pub mod service;
pub mod validate;

use phoenix_common::db::DbPool;
pub use phoenix_proto::facilities::v1::facilities_service_server::FacilitiesServiceServer;

/// gRPC name of the service (health reports it).
pub const SERVICE_NAME: &str = "phoenix.facilities.v1.FacilitiesService";

/// The tonic server of this domain on `pool`.
pub fn server(pool: DbPool) -> FacilitiesServiceServer<service::Facilities> {
    FacilitiesServiceServer::new(service::Facilities::new(pool))
}
