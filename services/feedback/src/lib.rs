//! `phoenix-feedback`: the `phoenix.feedback.v1.FeedbackService` server.
//!
//! Entries are created one at a time or in an all-or-nothing batch (reference §1.9: the
//! failing index is named, here as `entries[i].<field>` violations, every bad item at once);
//! staff comment on entries, the author taken from the verified token.

mod convert;
pub mod repo;
pub mod service;
mod validate;

pub use service::{FeedbackServiceImpl, METHODS};

use phoenix_common::db::DbPool;
use phoenix_proto::feedback::v1::feedback_service_server::FeedbackServiceServer;

/// The health/service name of this domain.
pub const SERVICE_NAME: &str = "phoenix.feedback.v1.FeedbackService";

/// The tonic server for `pool`.
pub fn server(pool: DbPool) -> FeedbackServiceServer<FeedbackServiceImpl> {
    FeedbackServiceServer::new(FeedbackServiceImpl::new(pool))
}
