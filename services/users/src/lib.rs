//! `phoenix-users`: the `phoenix.users.v1.UsersService` — persons, staff, teachers, students
//! (with GDPR redaction) and RFID cards, schema `users` — and the `FamilyService`, a
//! guardian's own children.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | [`service::UsersApi`], [`service::METHODS`] and the tonic handlers |
//! | [`family_service`] | [`family_service::FamilyApi`], [`family_service::FAMILY_METHODS`]: a guardian's children |
//! | [`import_service`], [`import`] | the pupil import (docs/import.md): `ImportService` and its parse → plan → apply |
//! | [`validate`] | requests → typed commands; tag normalisation |
//! | `access` | resource rules: whose student, whose guardian |
//! | [`students`], [`staff`] | creating a student or staff member (also the demo school's path), (de)activation, staff updates, the redacted student view |
//! | `cards` | assigning an RFID card (shared by persons, students and `AssignRfidCard`) |
//! | `guardians` | guardians as a caller may see them |
//! | `children` | a child's day as their guardian sees it (state, room, today's visits) |
//! | `convert` | rows → proto messages (full records) |
//! | [`redact`] | THE place where a record is cut down to what the caller may see |
//! | [`repo`] | diesel queries |
//! | `error` | database constraint names → caller-facing errors |

mod access;
mod cards;
mod children;
mod convert;
mod enums;
mod error;
pub mod family_service;
mod guardians;
pub mod import;
pub mod import_service;
pub mod redact;
pub mod repo;
pub mod service;
pub mod staff;
pub mod students;
pub mod validate;

use phoenix_common::authz::Authorized;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_common::settings::LiveSettings;
use phoenix_proto::users::v1::family_service_server::FamilyServiceServer;
use phoenix_proto::users::v1::import_service_server::ImportServiceServer;
use phoenix_proto::users::v1::users_service_server::UsersServiceServer;

/// This domain in the process: its gRPC service, permission table and servers.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Users,
    services: &["phoenix.users.v1.UsersService", "phoenix.users.v1.FamilyService", "phoenix.users.v1.ImportService"],
    methods: &[service::METHODS, family_service::FAMILY_METHODS, import_service::IMPORT_METHODS],
    add: add_servers,
    jobs: phoenix_common::jobs::no_jobs,
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        let server = UsersServiceServer::new(service::UsersApi::new(ctx.pool.clone()));
        routes.add_service(Authorized::new(server, service::METHODS, ctx.verifier.clone())?);
        let family = FamilyServiceServer::new(family_service::FamilyApi::new(ctx.pool.clone(), LiveSettings::of(ctx)));
        routes.add_service(Authorized::new(family, family_service::FAMILY_METHODS, ctx.verifier.clone())?);
        let import = ImportServiceServer::new(import_service::ImportApi::new(ctx.pool.clone()))
            .max_decoding_message_size(import_service::MAX_MESSAGE_BYTES);
        routes.add_service(Authorized::new(import, import_service::IMPORT_METHODS, ctx.verifier.clone())?);
        Ok(())
    })
}
