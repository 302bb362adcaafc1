//! The tonic handlers of `phoenix.audit.v1.AuditService`: validate → (authorise, see
//! [`METHODS`]) → query or one transaction → convert.

use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::caller::Caller;
use phoenix_common::db::DbPool;
use phoenix_common::page::Page;
use phoenix_common::time::to_timestamp;
use phoenix_common::{Error, FieldViolations, Result};
use phoenix_proto::audit::v1 as pb;
use tonic::{Request, Response, Status};

use crate::erase;
use crate::export::{self, ExportRow};
use crate::trail::{self, AuthEventFilter, AuthEventRow, DeletionFilter, DeletionRow};

/// The permission each RPC needs (from the audit permissions migration; admins hold them
/// through `*:*`, no other seeded role does).
pub const METHODS: MethodTable = &[
    ("/phoenix.audit.v1.AuditService/ListDataDeletions", Requirement::Permission("audit:read")),
    ("/phoenix.audit.v1.AuditService/ListAuthEvents", Requirement::Permission("audit:read")),
    ("/phoenix.audit.v1.AuditService/ListDataExports", Requirement::Permission("audit:read")),
    ("/phoenix.audit.v1.AuditService/ExportStudentData", Requirement::Permission("audit:export")),
    ("/phoenix.audit.v1.AuditService/EraseStudent", Requirement::Permission("audit:erase")),
];

/// Longest erasure reason.
const MAX_REASON_CHARS: usize = 500;

/// The audit service.
#[derive(Clone)]
pub struct AuditApi {
    pool: DbPool,
}

impl std::fmt::Debug for AuditApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditApi").finish_non_exhaustive()
    }
}

impl AuditApi {
    /// A service on `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

/// Who acted, as the audit tables write it.
fn actor(caller: &Caller) -> String {
    caller.account_id.map_or_else(|| "system".to_owned(), |id| format!("account:{id}"))
}

fn student_id(id: i64, v: &mut FieldViolations) -> i64 {
    if id <= 0 {
        v.add("student_id", format!("must be a positive id, got {id}"));
    }
    id
}

fn deletion_type_name(t: pb::DeletionType) -> Option<&'static str> {
    match t {
        pb::DeletionType::Unspecified => None,
        pb::DeletionType::VisitRetention => Some("visit_retention"),
        pb::DeletionType::Manual => Some("manual"),
        pb::DeletionType::GdprRequest => Some("gdpr_request"),
    }
}

fn deletion(row: DeletionRow) -> pb::DataDeletion {
    let deletion_type = match row.deletion_type.as_str() {
        "visit_retention" => pb::DeletionType::VisitRetention,
        "manual" => pb::DeletionType::Manual,
        "gdpr_request" => pb::DeletionType::GdprRequest,
        _ => pb::DeletionType::Unspecified,
    };
    pb::DataDeletion {
        id: row.id,
        entity_type: row.entity_type,
        entity_id: row.entity_id,
        deletion_type: deletion_type as i32,
        records_deleted: row.records_deleted,
        reason: row.reason.unwrap_or_default(),
        deleted_by: row.deleted_by,
        delete_time: Some(to_timestamp(row.deleted_at)),
        metadata_json: row.metadata.to_string(),
    }
}

fn auth_event(row: AuthEventRow) -> pb::AuthEvent {
    pb::AuthEvent {
        id: row.id,
        account_id: row.account_id,
        client_id: row.client_id.unwrap_or_default(),
        event_type: row.event_type,
        success: row.success,
        ip_address: row.ip_address.map(|ip| ip.ip().to_string()).unwrap_or_default(),
        error_message: row.error_message.unwrap_or_default(),
        create_time: Some(to_timestamp(row.created_at)),
    }
}

fn data_export(row: ExportRow) -> pb::DataExport {
    pb::DataExport {
        id: row.id,
        student_id: row.subject_id,
        exported_by: row.exported_by,
        export_time: Some(to_timestamp(row.exported_at)),
        sections_json: row.sections.to_string(),
    }
}

/// Event types `ListAuthEvents` can filter by (`ck_audit_auth_events_event_type`).
const AUTH_EVENT_TYPES: &[&str] = &[
    "login",
    "logout",
    "token_refresh",
    "token_expired",
    "token_reuse_detected",
    "password_reset_requested",
    "password_reset",
    "password_changed",
    "account_locked",
    "pin_failed",
    "pin_locked",
    "invitation_accepted",
    "service_token",
];

impl AuditApi {
    async fn list_data_deletions(&self, req: pb::ListDataDeletionsRequest) -> Result<pb::ListDataDeletionsResponse> {
        let mut v = FieldViolations::default();
        let deletion_type = match pb::DeletionType::try_from(req.deletion_type) {
            Ok(t) => deletion_type_name(t),
            Err(_) => {
                v.add("deletion_type", format!("unknown value {}", req.deletion_type));
                None
            }
        };
        if let Some(id) = req.entity_id
            && id <= 0
        {
            v.add("entity_id", format!("must be a positive id, got {id}"));
        }
        v.into_result()?;
        let entity_type = Some(req.entity_type.trim().to_owned()).filter(|t| !t.is_empty());
        let filter = DeletionFilter { deletion_type, entity_type, entity_id: req.entity_id };
        let fingerprint = format!("{:?}", filter);
        let page = Page::parse(req.page_size, &req.page_token, &fingerprint)?;
        let mut conn = self.pool.get().await?;
        let (mut rows, total) = trail::list_deletions(&mut conn, &filter, page.after, page.fetch_limit()).await?;
        let next_page_token = page.finish(&mut rows, |r| r.id, &fingerprint);
        Ok(pb::ListDataDeletionsResponse {
            deletions: rows.into_iter().map(deletion).collect(),
            next_page_token,
            total_size: total,
        })
    }

    async fn list_auth_events(&self, req: pb::ListAuthEventsRequest) -> Result<pb::ListAuthEventsResponse> {
        let mut v = FieldViolations::default();
        if let Some(id) = req.account_id
            && id <= 0
        {
            v.add("account_id", format!("must be a positive id, got {id}"));
        }
        let event_type = Some(req.event_type.trim().to_owned()).filter(|t| !t.is_empty());
        if let Some(t) = &event_type
            && !AUTH_EVENT_TYPES.contains(&t.as_str())
        {
            v.add("event_type", format!("unknown event type {t:?}; one of {}", AUTH_EVENT_TYPES.join(", ")));
        }
        v.into_result()?;
        let filter = AuthEventFilter { account_id: req.account_id, event_type, failures_only: req.failures_only };
        let fingerprint = format!("{:?}", filter);
        let page = Page::parse(req.page_size, &req.page_token, &fingerprint)?;
        let mut conn = self.pool.get().await?;
        let (mut rows, total) = trail::list_auth_events(&mut conn, &filter, page.after, page.fetch_limit()).await?;
        let next_page_token = page.finish(&mut rows, |r| r.id, &fingerprint);
        Ok(pb::ListAuthEventsResponse {
            events: rows.into_iter().map(auth_event).collect(),
            next_page_token,
            total_size: total,
        })
    }

    async fn list_data_exports(&self, req: pb::ListDataExportsRequest) -> Result<pb::ListDataExportsResponse> {
        let mut v = FieldViolations::default();
        if let Some(id) = req.student_id {
            student_id(id, &mut v);
        }
        v.into_result()?;
        let fingerprint = format!("student={:?}", req.student_id);
        let page = Page::parse(req.page_size, &req.page_token, &fingerprint)?;
        let mut conn = self.pool.get().await?;
        let (mut rows, total) = trail::list_exports(&mut conn, req.student_id, page.after, page.fetch_limit()).await?;
        let next_page_token = page.finish(&mut rows, |r| r.id, &fingerprint);
        Ok(pb::ListDataExportsResponse {
            exports: rows.into_iter().map(data_export).collect(),
            next_page_token,
            total_size: total,
        })
    }

    async fn export_student_data(
        &self,
        caller: Caller,
        req: pb::ExportStudentDataRequest,
    ) -> Result<pb::ExportStudentDataResponse> {
        let mut v = FieldViolations::default();
        let student = student_id(req.student_id, &mut v);
        v.into_result()?;
        let mut conn = self.pool.get().await?;
        let by = actor(&caller);
        let (document, record) =
            diesel_async::AsyncConnection::transaction::<_, Error, _>(&mut conn, async move |conn| {
                let document =
                    export::document(conn, student).await?.ok_or_else(|| Error::not_found("student", student))?;
                // Recorded in the same transaction: no export leaves without its record.
                let record = export::record(conn, student, &by, export::section_counts(&document)).await?;
                Ok((document, record))
            })
            .await?;
        tracing::info!(student, export = record.id, by = %record.exported_by, "student data exported");
        Ok(pb::ExportStudentDataResponse { document_json: document.to_string(), export: Some(data_export(record)) })
    }

    async fn erase_student(&self, caller: Caller, req: pb::EraseStudentRequest) -> Result<pb::EraseStudentResponse> {
        let mut v = FieldViolations::default();
        let student = student_id(req.student_id, &mut v);
        let reason = req.reason.trim().to_owned();
        if reason.is_empty() {
            v.add("reason", "is required: say why (e.g. the request's reference), without personal data");
        } else if reason.chars().count() > MAX_REASON_CHARS {
            v.add("reason", format!("must be at most {MAX_REASON_CHARS} characters"));
        }
        v.into_result()?;
        let mut conn = self.pool.get().await?;
        let record = erase::erase_student(&mut conn, student, reason, actor(&caller)).await?;
        tracing::info!(student, deletion = record.id, records = record.records_deleted, by = %record.deleted_by, "student erased");
        Ok(pb::EraseStudentResponse { deletion: Some(deletion(record)) })
    }
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for AuditApi {
    async fn list_data_deletions(
        &self,
        request: Request<pb::ListDataDeletionsRequest>,
    ) -> Result<Response<pb::ListDataDeletionsResponse>, Status> {
        Ok(Response::new(AuditApi::list_data_deletions(self, request.into_inner()).await?))
    }

    async fn list_auth_events(
        &self,
        request: Request<pb::ListAuthEventsRequest>,
    ) -> Result<Response<pb::ListAuthEventsResponse>, Status> {
        Ok(Response::new(AuditApi::list_auth_events(self, request.into_inner()).await?))
    }

    async fn list_data_exports(
        &self,
        request: Request<pb::ListDataExportsRequest>,
    ) -> Result<Response<pb::ListDataExportsResponse>, Status> {
        Ok(Response::new(AuditApi::list_data_exports(self, request.into_inner()).await?))
    }

    async fn export_student_data(
        &self,
        request: Request<pb::ExportStudentDataRequest>,
    ) -> Result<Response<pb::ExportStudentDataResponse>, Status> {
        let caller = Caller::of(&request, &self.pool).await?;
        Ok(Response::new(AuditApi::export_student_data(self, caller, request.into_inner()).await?))
    }

    async fn erase_student(
        &self,
        request: Request<pb::EraseStudentRequest>,
    ) -> Result<Response<pb::EraseStudentResponse>, Status> {
        let caller = Caller::of(&request, &self.pool).await?;
        Ok(Response::new(AuditApi::erase_student(self, caller, request.into_inner()).await?))
    }
}
