//! `phoenix-facilities`: the `phoenix.facilities.v1.FacilitiesService` — rooms (with live
//! occupancy), buildings and locations, schema `facilities`.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | [`service::FacilitiesApi`], [`service::METHODS`] and the handlers; [`service::create_room`] and [`service::create_building`] (also the demo school's path) |
//! | [`validate`] | requests → typed commands, collecting field violations |
//! | [`repo`] | diesel queries and reference checks |
//! | `convert` | rows → proto messages |
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
    jobs: phoenix_common::jobs::no_jobs,
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        let server =
            FacilitiesServiceServer::new(service::FacilitiesApi::new(ctx.pool.clone()).with_reads(ctx.read.clone()));
        routes.add_service(Authorized::new(server, service::METHODS, ctx.verifier.clone())?);
        Ok(())
    })
}
