//! `phoenix-schedule`: the `phoenix.schedule.v1.ScheduleService` — recurrence patterns,
//! timeframes, dateframes, class schedules, room conflicts and free slots; schema
//! `schedule`.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | [`service::ScheduleApi`], [`service::METHODS`] and the handlers |
//! | `validate` | requests → typed commands, collecting field violations |
//! | [`recurrence`] | recurrence rules and their expansion (pure, unit- and property-tested) |
//! | [`slots`] | room overlap and free-window logic (pure) |
//! | `classes` | class schedules in the room plan: bookings, references, conflicts |
//! | `repo` | diesel queries |
//! | `convert` | rows ⇄ domain ⇄ proto messages |
//!
//! No `access.rs` (no resource rules beyond the permissions) and no `error.rs` (no
//! constraint names are mapped).

mod classes;
mod convert;
pub mod recurrence;
mod repo;
pub mod service;
pub mod slots;
mod validate;

use phoenix_common::authz::Authorized;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_proto::schedule::v1::schedule_service_server::ScheduleServiceServer;

/// This domain in the process: its gRPC service, permission table and servers.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Schedule,
    services: &["phoenix.schedule.v1.ScheduleService"],
    methods: &[service::METHODS],
    add: add_servers,
    jobs: phoenix_common::jobs::no_jobs,
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        let server = ScheduleServiceServer::new(service::ScheduleApi::new(ctx.pool.clone()));
        routes.add_service(Authorized::new(server, service::METHODS, ctx.verifier.clone())?);
        Ok(())
    })
}
