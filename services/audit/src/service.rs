//! The tonic handlers of `phoenix.audit.v1.AuditService`: validate → (authorise, see
//! [`METHODS`]) → query or one transaction → convert.

use diesel_async::AsyncConnection as _;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::caller::Caller;
use phoenix_common::db::{self, DbPool};
use phoenix_common::{Error, Reply};
use phoenix_proto::audit::v1 as pb;
use tonic::{Request, Response};

use crate::{convert, erase, export, trail, validate};

/// The permission each RPC needs (from the audit permissions migration; admins hold them
/// through `*:*`, no other seeded role does).
pub const METHODS: MethodTable = &[
    ("/phoenix.audit.v1.AuditService/ListDataDeletions", Requirement::Permission("audit:read")),
    ("/phoenix.audit.v1.AuditService/ListAuthEvents", Requirement::Permission("audit:read")),
    ("/phoenix.audit.v1.AuditService/ListDataExports", Requirement::Permission("audit:read")),
    ("/phoenix.audit.v1.AuditService/ExportStudentData", Requirement::Permission("audit:export")),
    ("/phoenix.audit.v1.AuditService/EraseStudent", Requirement::Permission("audit:erase")),
];

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

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for AuditApi {
    async fn list_data_deletions(
        &self,
        request: Request<pb::ListDataDeletionsRequest>,
    ) -> Reply<pb::ListDataDeletionsResponse> {
        let (filter, page) = validate::list_data_deletions(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let (rows, total) = trail::list_deletions(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListDataDeletionsResponse {
            deletions: rows.into_iter().map(convert::deletion).collect(),
            next_page_token,
            total_size: total,
        }))
    }

    async fn list_auth_events(&self, request: Request<pb::ListAuthEventsRequest>) -> Reply<pb::ListAuthEventsResponse> {
        let (filter, page) = validate::list_auth_events(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let (rows, total) = trail::list_auth_events(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListAuthEventsResponse {
            events: rows.into_iter().map(convert::auth_event).collect(),
            next_page_token,
            total_size: total,
        }))
    }

    async fn list_data_exports(
        &self,
        request: Request<pb::ListDataExportsRequest>,
    ) -> Reply<pb::ListDataExportsResponse> {
        let (student, page) = validate::list_data_exports(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let (rows, total) = trail::list_exports(&mut conn, student, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListDataExportsResponse {
            exports: rows.into_iter().map(convert::data_export).collect(),
            next_page_token,
            total_size: total,
        }))
    }

    async fn export_student_data(
        &self,
        request: Request<pb::ExportStudentDataRequest>,
    ) -> Reply<pb::ExportStudentDataResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let student = phoenix_common::validate::id("student_id", request.get_ref().student_id)?;
        let by = actor(&caller);
        let mut conn = db::conn(&self.pool).await?;
        let (document, record) = conn
            .transaction::<_, Error, _>(async move |conn| {
                let document =
                    export::document(conn, student).await?.ok_or_else(|| Error::not_found("student", student))?;
                // Recorded in the same transaction: no export leaves without its record.
                let record = export::record(conn, student, &by, export::section_counts(&document)).await?;
                Ok((document, record))
            })
            .await?;
        tracing::info!(student, export = record.id, by = %record.exported_by, "student data exported");
        Ok(Response::new(pb::ExportStudentDataResponse {
            document_json: document.to_string(),
            export: Some(convert::data_export(record)),
        }))
    }

    async fn erase_student(&self, request: Request<pb::EraseStudentRequest>) -> Reply<pb::EraseStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (student, reason) = validate::erase_student(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let record = erase::erase_student(&mut conn, student, reason, actor(&caller)).await?;
        tracing::info!(student, deletion = record.id, records = record.records_deleted, by = %record.deleted_by, "student erased");
        Ok(Response::new(pb::EraseStudentResponse { deletion: Some(convert::deletion(record)) }))
    }
}
