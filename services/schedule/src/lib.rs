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

use phoenix_common::authz::Authorized;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_proto::schedule::v1::schedule_service_server::ScheduleServiceServer;

/// This domain in the process: its gRPC service, permission table and servers.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Schedule,
    services: &["phoenix.schedule.v1.ScheduleService"],
    methods: &[METHODS],
    add: add_servers,
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        routes.add_service(Authorized::new(
            ScheduleServiceServer::new(ScheduleServiceImpl::new(ctx.pool.clone())),
            METHODS,
            ctx.verifier.clone(),
        )?);
        Ok(())
    })
}
