//! `phoenix-audit`: the `phoenix.audit.v1.AuditService` server (GDPR export and
//! erasure).
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | `AuditApi`: the tonic handlers and [`METHODS`] |
//! | [`validate`] | requests → filters and pages |
//! | [`convert`] | audit rows → proto messages |
//! | [`trail`] | read-only queries of the append-only audit tables |
//! | [`export`] | the subject-access export: one JSON document, one consistent snapshot |
//! | [`erase`] | erasure of a student in one transaction, with its deletion record |
//!
//! Export and erasure read and delete rows of other schemas (users, active, feedback,
//! activities, schedule) in one statement or transaction: GDPR asks for one consistent
//! answer and an erasure that cannot stop half-way, which a chain of service calls could
//! not give. This is the one deliberate exception to "a service writes only its own schema".

pub mod convert;
pub mod erase;
pub mod export;
pub mod service;
pub mod trail;
pub mod validate;

pub use service::{AuditApi, METHODS};

use phoenix_common::authz::Authorized;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_proto::audit::v1::audit_service_server::AuditServiceServer;

/// This domain in the process: its gRPC service, permission table and servers.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Audit,
    services: &["phoenix.audit.v1.AuditService"],
    methods: &[METHODS],
    add: add_servers,
    jobs: phoenix_common::jobs::no_jobs,
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        routes.add_service(Authorized::new(
            AuditServiceServer::new(AuditApi::new(ctx.pool.clone())),
            METHODS,
            ctx.verifier.clone(),
        )?);
        Ok(())
    })
}
