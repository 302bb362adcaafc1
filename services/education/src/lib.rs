//! `phoenix-education`: the `phoenix.education.v1.EducationService` — education groups,
//! group teachers, substitutions, same-day transfers and "my groups", schema `education`.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | [`service::EducationApi`], [`service::METHODS`] and the handlers; [`service::create_group`] (also the demo school's path) |
//! | [`rollover_service`] | `phoenix.education.v1.RolloverService`: the school-year rollover (admins) |
//! | [`rollover`] | the rollover's plan, dry run and audited transaction; mapping files |
//! | [`validate`] | requests → typed commands (date rules of substitutions) |
//! | `access` | resource rules: who leads a group, which groups are the caller's |
//! | [`repo`] | diesel queries and reference checks |
//! | `convert` | rows → proto messages |
//! | `error` | database constraint names → caller-facing errors |

mod access;
mod convert;
mod error;
pub mod repo;
pub mod rollover;
pub mod rollover_service;
pub mod service;
pub mod validate;

use phoenix_common::authz::Authorized;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_proto::education::v1::education_service_server::EducationServiceServer;

/// This domain in the process: its gRPC service, permission table and servers.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Education,
    services: &["phoenix.education.v1.EducationService", "phoenix.education.v1.RolloverService"],
    methods: &[service::METHODS, rollover_service::METHODS],
    add: add_servers,
    jobs: phoenix_common::jobs::no_jobs,
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        let server = EducationServiceServer::new(service::EducationApi::new(ctx.pool.clone()));
        routes.add_service(Authorized::new(server, service::METHODS, ctx.verifier.clone())?);
        let rollover = phoenix_proto::education::v1::rollover_service_server::RolloverServiceServer::new(
            rollover_service::RolloverApi::new(ctx.pool.clone()),
        );
        routes.add_service(Authorized::new(rollover, rollover_service::METHODS, ctx.verifier.clone())?);
        Ok(())
    })
}
