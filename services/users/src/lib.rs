//! `phoenix-users`: the `phoenix.users.v1.UsersService` — persons, staff, teachers, students
//! (with GDPR redaction) and RFID cards, schema `users`.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | the tonic handlers, [`service::METHODS`] and the transactional operations |
//! | [`validate`] | requests → typed commands; tag normalisation |
//! | `convert` | rows → proto messages (full records) |
//! | [`redact`] | THE place where a record is cut down to what the caller may see |
//! | [`repo`] | diesel queries |
//! | `error` | database constraint names → caller-facing errors |

mod convert;
mod enums;
mod error;
pub mod redact;
pub mod repo;
pub mod service;
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
        routes.add_service(Authorized::new(
            UsersServiceServer::new(service::Users::new(ctx.pool.clone())),
            service::METHODS,
            ctx.verifier.clone(),
        )?);
        Ok(())
    })
}
