//! `phoenix-users`: the `phoenix.users.v1.UsersService` — persons, staff, teachers, students
//! (with GDPR redaction) and RFID cards, schema `users`.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | [`service::UsersApi`], [`service::METHODS`] and the tonic handlers |
//! | [`validate`] | requests → typed commands; tag normalisation |
//! | `access` | resource rules: whose student, whose guardian |
//! | [`students`], [`staff`] | creating a student or staff member (also the demo school's path), (de)activation, staff updates, the redacted student view |
//! | `cards` | assigning an RFID card (shared by persons, students and `AssignRfidCard`) |
//! | `guardians` | guardians as a caller may see them |
//! | `convert` | rows → proto messages (full records) |
//! | [`redact`] | THE place where a record is cut down to what the caller may see |
//! | [`repo`] | diesel queries |
//! | `error` | database constraint names → caller-facing errors |

mod access;
mod cards;
mod convert;
mod enums;
mod error;
mod guardians;
pub mod redact;
pub mod repo;
pub mod service;
pub mod staff;
pub mod students;
pub mod validate;

use phoenix_common::authz::Authorized;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_proto::users::v1::users_service_server::UsersServiceServer;

/// This domain in the process: its gRPC service, permission table and servers.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Users,
    services: &["phoenix.users.v1.UsersService"],
    methods: &[service::METHODS],
    add: add_servers,
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        let server = UsersServiceServer::new(service::UsersApi::new(ctx.pool.clone()));
        routes.add_service(Authorized::new(server, service::METHODS, ctx.verifier.clone())?);
        Ok(())
    })
}
