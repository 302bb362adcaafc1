//! `phoenix.education.v1.RolloverService`: [`RolloverApi`], [`METHODS`] and the handler:
//! validate ([`crate::rollover::validate`]) → the permission (`groups:rollover`, admins only)
//! is the whole rule → one transaction ([`crate::rollover::run`]) → convert.

use phoenix_common::Reply;
use phoenix_common::authz::{AuthContext, MethodTable, Principal, Requirement};
use phoenix_common::db::{self, DbPool};
use phoenix_proto::education::v1 as pb;
use phoenix_proto::education::v1::rollover_service_server::RolloverService;
use tonic::{Request, Response};

use crate::rollover;

/// The permission: `groups:rollover`, seeded for nobody (admins hold it through `*:*`). The
/// rollover changes every group's pupils, so no group rule narrows it.
pub const METHODS: MethodTable =
    &[("/phoenix.education.v1.RolloverService/Rollover", Requirement::Permission("groups:rollover"))];

/// The rollover service over a database pool.
#[derive(Clone)]
pub struct RolloverApi {
    pool: DbPool,
}

impl std::fmt::Debug for RolloverApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloverApi").finish_non_exhaustive()
    }
}

impl RolloverApi {
    /// A service on `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

#[tonic::async_trait]
impl RolloverService for RolloverApi {
    async fn rollover(&self, request: Request<pb::RolloverRequest>) -> Reply<pb::RolloverResponse> {
        // audit.data_changes.changed_by: `account:<id>`, or `system` for a service client.
        let changed_by = match &AuthContext::of(&request)?.principal {
            Principal::Account(id) => format!("account:{id}"),
            Principal::Service(_) => "system".to_owned(),
        };
        let cmd = rollover::validate(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let done = rollover::run(&mut conn, &cmd, &changed_by).await?;
        tracing::info!(
            dry_run = done.dry_run,
            moved = done.moved,
            archived = done.archived,
            audit_rows = done.audit_rows,
            "school-year rollover"
        );
        Ok(Response::new(rollover::to_pb(done)))
    }
}
