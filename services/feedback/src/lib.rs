//! `phoenix-feedback`: the `phoenix.feedback.v1.FeedbackService` — pupil feedback entries
//! and staff comments, schema `feedback`.
//!
//! Entries are created one at a time or in an all-or-nothing batch (the
//! failing index is named, here as `entries[i].<field>` violations, every bad item at once);
//! staff comment on entries, the author taken from the verified token.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | [`service::FeedbackApi`], [`service::METHODS`] and the handlers |
//! | `validate` | requests → typed commands, collecting field violations |
//! | `repo` | diesel queries and reference checks |
//! | `convert` | the feedback value; rows → proto messages |

mod convert;
mod repo;
pub mod service;
mod validate;

use phoenix_common::authz::Authorized;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_proto::feedback::v1::feedback_service_server::FeedbackServiceServer;

/// This domain in the process: its gRPC service, permission table and servers.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Feedback,
    services: &["phoenix.feedback.v1.FeedbackService"],
    methods: &[service::METHODS],
    add: add_servers,
    jobs: phoenix_common::jobs::no_jobs,
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        let server = FeedbackServiceServer::new(service::FeedbackApi::new(ctx.pool.clone()));
        routes.add_service(Authorized::new(server, service::METHODS, ctx.verifier.clone())?);
        Ok(())
    })
}
