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

use phoenix_common::authz::Authorized;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_proto::facilities::v1::facilities_service_server::FacilitiesServiceServer;

/// This domain in the process: its gRPC service, permission table and servers.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Facilities,
    services: &["phoenix.facilities.v1.FacilitiesService"],
    methods: &[service::METHODS],
    add: add_servers,
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        routes.add_service(Authorized::new(
            FacilitiesServiceServer::new(service::Facilities::new(ctx.pool.clone())),
            service::METHODS,
            ctx.verifier.clone(),
        )?);
        Ok(())
    })
}
