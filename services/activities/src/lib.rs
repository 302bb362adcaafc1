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

use phoenix_common::authz::Authorized;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_proto::activities::v1::activities_service_server::ActivitiesServiceServer;

/// This domain in the process: its gRPC service, permission table and servers.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Activities,
    services: &["phoenix.activities.v1.ActivitiesService"],
    methods: &[METHODS],
    add: add_servers,
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        routes.add_service(Authorized::new(
            ActivitiesServiceServer::new(ActivitiesServiceImpl::new(ctx.pool.clone())),
            METHODS,
            ctx.verifier.clone(),
        )?);
        Ok(())
    })
}
