//! `phoenix.active.v1.CorrectionService`: the service struct, [`METHODS`] and the tonic trait
//! impl, whose methods are the handlers: validate ([`crate::corrections::validate`]) →
//! authorise and change in one transaction ([`crate::corrections`], the rules of
//! [`crate::scope`]) → convert. Logs carry ids only; the reason stays in the audit trail.

use chrono::Utc;
use phoenix_common::Reply;
use phoenix_common::access::Caller;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{self, DbPool};
use phoenix_common::settings::LiveSettings;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::correction_service_server::CorrectionService;
use tonic::{Request, Response};

use crate::{convert, corrections};

/// The permission each RPC needs (`resource:action`): corrections of the record are
/// `visits:manage` (seeded: admins through `*:*`, and staff, whom the resource rule limits).
pub const METHODS: MethodTable = &[
    ("/phoenix.active.v1.CorrectionService/CorrectVisit", Requirement::Permission("visits:manage")),
    ("/phoenix.active.v1.CorrectionService/CheckInAt", Requirement::Permission("visits:manage")),
];

/// The correction service.
#[derive(Clone)]
pub struct CorrectionApi {
    pool: DbPool,
    settings: LiveSettings,
}

impl std::fmt::Debug for CorrectionApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorrectionApi").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl CorrectionApi {
    /// A service on `pool`, business dates in the school's time zone of `settings`.
    pub fn new(pool: DbPool, settings: LiveSettings) -> Self {
        Self { pool, settings }
    }
}

#[tonic::async_trait]
impl CorrectionService for CorrectionApi {
    async fn correct_visit(&self, request: Request<pb::CorrectVisitRequest>) -> Reply<pb::CorrectVisitResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let now = Utc::now();
        let cmd = corrections::validate::correct_visit(request.into_inner(), now)?;
        let mut conn = db::conn(&self.pool).await?;
        let done = corrections::correct_visit(&mut conn, &caller, cmd, self.settings.time_zone(), now).await?;
        tracing::info!(
            visit_id = done.visit.id,
            student_id = done.visit.student_id,
            session_id = done.visit.session_id,
            audit_id = done.audit_id,
            staff_id = caller.staff_id,
            "visit corrected"
        );
        Ok(Response::new(pb::CorrectVisitResponse { visit: Some(convert::visit(done.visit)), audit_id: done.audit_id }))
    }

    async fn check_in_at(&self, request: Request<pb::CheckInAtRequest>) -> Reply<pb::CheckInAtResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let now = Utc::now();
        let cmd = corrections::validate::check_in_at(request.into_inner(), now)?;
        let mut conn = db::conn(&self.pool).await?;
        let done = corrections::check_in_at(&mut conn, &caller, cmd, self.settings.time_zone(), now).await?;
        tracing::info!(
            visit_id = done.visit.id,
            student_id = done.visit.student_id,
            session_id = done.visit.session_id,
            closed_visit_id = done.closed_visit_id,
            audit_id = done.audit_id,
            staff_id = caller.staff_id,
            "checked in by hand at an explicit time"
        );
        Ok(Response::new(pb::CheckInAtResponse {
            visit: Some(convert::visit(done.visit)),
            closed_visit_id: done.closed_visit_id,
            arrived: done.arrived,
            audit_id: done.audit_id,
        }))
    }
}
