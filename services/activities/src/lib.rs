//! `phoenix-activities`: the `phoenix.activities.v1.ActivitiesService` — categories,
//! activities, their weekly schedules and planned supervisors, enrollments; schema
//! `activities`.
//!
//! Enrollment must never overbook: capacity
//! and `is_open` are checked under a row lock on the activity, and every write checks
//! ownership (admin, creator or planned supervisor).
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | [`service::ActivitiesApi`], [`service::METHODS`] and the handlers |
//! | `validate` | requests → typed commands, collecting field violations |
//! | `access` | the ownership rule (admin, creator or planned supervisor) |
//! | `plan` | weekly schedules and planned supervisors, one at a time |
//! | `enrollment` | enrollments under the activity's row lock |
//! | `repo` | diesel queries |
//! | `convert` | rows → proto messages |
//!
//! No `error.rs`: the writes name no database constraint (conflicts are `ON CONFLICT DO
//! NOTHING` answered in the handler).

mod access;
mod convert;
mod enrollment;
mod plan;
mod repo;
pub mod service;
mod validate;

use phoenix_common::authz::Authorized;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_proto::activities::v1::activities_service_server::ActivitiesServiceServer;

/// This domain in the process: its gRPC service, permission table and servers.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Activities,
    services: &["phoenix.activities.v1.ActivitiesService"],
    methods: &[service::METHODS],
    add: add_servers,
    jobs: phoenix_common::jobs::no_jobs,
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        let server = ActivitiesServiceServer::new(service::ActivitiesApi::new(ctx.pool.clone()));
        routes.add_service(Authorized::new(server, service::METHODS, ctx.verifier.clone())?);
        Ok(())
    })
}
