//! `phoenix.users.v1.ImportService`: the pupil import as an admin RPC (docs/import.md).
//! The file comes as bytes in one message of at most [`import::MAX_FILE_BYTES`]; the server
//! decodes messages up to [`MAX_MESSAGE_BYTES`] so that a slightly larger file gets a clear
//! `InvalidArgument` instead of the transport's size error.

use phoenix_common::Reply;
use phoenix_common::access::Caller;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{self, DbPool};
use phoenix_common::validate::required;
use phoenix_proto::users::v1 as pb;
use phoenix_proto::users::v1::import_service_server::ImportService;
use tonic::{Request, Response};

use crate::import::{self, Counts, Via};

/// Both RPCs need `students:import` (admins, through `*:*`).
pub const IMPORT_METHODS: MethodTable = &[
    ("/phoenix.users.v1.ImportService/PreviewStudentImport", Requirement::Permission("students:import")),
    ("/phoenix.users.v1.ImportService/CommitStudentImport", Requirement::Permission("students:import")),
];

/// The largest request message the server decodes: the file limit plus 1 MiB.
pub const MAX_MESSAGE_BYTES: usize = import::MAX_FILE_BYTES + 1024 * 1024;

/// The import service over a database pool.
#[derive(Clone)]
pub struct ImportApi {
    pool: DbPool,
}

impl std::fmt::Debug for ImportApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportApi").finish_non_exhaustive()
    }
}

impl ImportApi {
    /// A service writing to `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

fn file(file: Option<pb::StudentImportFile>) -> phoenix_common::Result<import::ImportFile> {
    let f = required("file", file)?;
    import::check_file(&f.filename, f.content, import::MAX_FILE_BYTES)
}

fn counts(c: Counts) -> pb::StudentImportCounts {
    pb::StudentImportCounts {
        rows: c.rows,
        students_created: c.students_created,
        students_updated: c.students_updated,
        students_unchanged: c.students_unchanged,
        guardians_created: c.guardians_created,
        guardians_updated: c.guardians_updated,
        links_created: c.links_created,
        links_updated: c.links_updated,
        phone_numbers_created: c.phone_numbers_created,
        cards_created: c.cards_created,
        cards_assigned: c.cards_assigned,
    }
}

#[tonic::async_trait]
impl ImportService for ImportApi {
    async fn preview_student_import(
        &self,
        request: Request<pb::PreviewStudentImportRequest>,
    ) -> Reply<pb::PreviewStudentImportResponse> {
        let file = file(request.into_inner().file)?;
        let mut conn = db::conn(&self.pool).await?;
        let preview = import::preview(&mut conn, &file).await?;
        Ok(Response::new(pb::PreviewStudentImportResponse {
            format: preview.format.name().into(),
            counts: Some(counts(preview.counts)),
            problems: preview
                .problems
                .into_iter()
                .map(|p| pb::StudentImportProblem {
                    row: p.row,
                    column: p.column,
                    code: p.code.as_str().into(),
                    message: p.message,
                })
                .collect(),
            file_sha256: hex::encode(preview.file_sha256),
        }))
    }

    async fn commit_student_import(
        &self,
        request: Request<pb::CommitStudentImportRequest>,
    ) -> Reply<pb::CommitStudentImportResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let file = file(request.into_inner().file)?;
        let mut conn = db::conn(&self.pool).await?;
        let done = import::commit(&mut conn, &file, caller.account_id, Via::Rpc).await?;
        tracing::info!(
            import_id = done.import_id,
            rows = done.counts.rows,
            created = done.counts.students_created,
            updated = done.counts.students_updated,
            "students imported"
        );
        Ok(Response::new(pb::CommitStudentImportResponse {
            import_id: done.import_id,
            format: done.format.name().into(),
            counts: Some(counts(done.counts)),
            file_sha256: hex::encode(done.file_sha256),
        }))
    }
}
