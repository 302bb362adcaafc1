//! The tonic handlers of `phoenix.feedback.v1.FeedbackService`.

use std::collections::BTreeSet;

use chrono::{NaiveDate, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use pb::feedback_service_server::FeedbackService;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::caller::Caller;
use phoenix_common::db::DbPool;
use phoenix_common::page::Page;
use phoenix_common::{Error, FieldViolations};
use phoenix_proto::feedback::v1 as pb;
use tonic::{Request, Response, Status};

use crate::repo::{self, NewEntry};
use crate::validate;

/// The permission each RPC needs (checked by the shared auth layer; strings from the seed).
pub const METHODS: MethodTable = &[
    ("/phoenix.feedback.v1.FeedbackService/CreateFeedbackEntry", Requirement::Permission("feedback:create")),
    ("/phoenix.feedback.v1.FeedbackService/BatchCreateFeedbackEntries", Requirement::Permission("feedback:create")),
    ("/phoenix.feedback.v1.FeedbackService/GetFeedbackEntry", Requirement::Permission("feedback:read")),
    ("/phoenix.feedback.v1.FeedbackService/ListFeedbackEntries", Requirement::Permission("feedback:list")),
    ("/phoenix.feedback.v1.FeedbackService/DeleteFeedbackEntry", Requirement::Permission("feedback:delete")),
    ("/phoenix.feedback.v1.FeedbackService/CreateFeedbackComment", Requirement::Permission("feedback:create")),
    ("/phoenix.feedback.v1.FeedbackService/ListFeedbackComments", Requirement::Permission("feedback:read")),
];

/// The service state.
#[derive(Clone)]
pub struct FeedbackServiceImpl {
    pool: DbPool,
}

impl std::fmt::Debug for FeedbackServiceImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedbackServiceImpl").finish_non_exhaustive()
    }
}

impl FeedbackServiceImpl {
    /// A service on `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// The school day (business dates are Europe/Berlin calendar dates).
fn today() -> NaiveDate {
    Utc::now().with_timezone(&chrono_tz::Europe::Berlin).date_naive()
}

/// Checks that every referenced student and device exists (locking them against deletion
/// until the transaction ends) and inserts the entries. A missing reference is a request
/// field: `InvalidArgument` naming `field(i, "student_id")` for each bad item.
async fn insert_checked(
    conn: &mut AsyncPgConnection,
    new: &[NewEntry],
    field: impl Fn(usize, &str) -> String,
) -> Result<Vec<repo::EntryRow>, Error> {
    let students: Vec<i64> = new.iter().map(|e| e.student_id).collect::<BTreeSet<_>>().into_iter().collect();
    let devices: Vec<i64> = new.iter().filter_map(|e| e.device_id).collect::<BTreeSet<_>>().into_iter().collect();
    let found_students = repo::lock_students(conn, &students).await?;
    let found_devices = repo::lock_devices(conn, &devices).await?;
    let mut v = FieldViolations::default();
    for (i, e) in new.iter().enumerate() {
        if !found_students.contains(&e.student_id) {
            v.add(field(i, "student_id"), format!("student {} does not exist", e.student_id));
        }
        if let Some(d) = e.device_id
            && !found_devices.contains(&d)
        {
            v.add(field(i, "device_id"), format!("device {d} does not exist"));
        }
    }
    v.into_result()?;
    Ok(repo::insert_entries(conn, new).await?)
}

#[tonic::async_trait]
impl FeedbackService for FeedbackServiceImpl {
    async fn create_feedback_entry(
        &self,
        request: Request<pb::CreateFeedbackEntryRequest>,
    ) -> Reply<pb::CreateFeedbackEntryResponse> {
        let e = request.into_inner().entry.ok_or_else(|| Error::invalid("entry", "is required"))?;
        let mut v = FieldViolations::default();
        let new = validate::entry("entry.", &e, today(), &mut v);
        v.into_result()?;
        let new = [new.ok_or_else(|| Error::invalid("entry", "is invalid"))?];
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let rows = conn
            .transaction::<_, Error, _>(async |conn| insert_checked(conn, &new, |_, f| format!("entry.{f}")).await)
            .await?;
        let row = rows.into_iter().next().ok_or_else(|| Error::Internal(anyhow::anyhow!("insert returned no row")))?;
        Ok(Response::new(pb::CreateFeedbackEntryResponse { entry: Some(row.into()) }))
    }

    async fn batch_create_feedback_entries(
        &self,
        request: Request<pb::BatchCreateFeedbackEntriesRequest>,
    ) -> Reply<pb::BatchCreateFeedbackEntriesResponse> {
        let new = validate::batch(&request.into_inner().entries, today())?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        // One transaction: a missing student in any item rolls back every item.
        let rows = conn
            .transaction::<_, Error, _>(async |conn| {
                insert_checked(conn, &new, |i, f| format!("entries[{i}].{f}")).await
            })
            .await?;
        Ok(Response::new(pb::BatchCreateFeedbackEntriesResponse {
            entries: rows.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_feedback_entry(
        &self,
        request: Request<pb::GetFeedbackEntryRequest>,
    ) -> Reply<pb::GetFeedbackEntryResponse> {
        let mut v = FieldViolations::default();
        let id = validate::id("id", request.get_ref().id, &mut v);
        v.into_result()?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = repo::find_entry(&mut conn, id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::not_found("feedback entry", id))?;
        Ok(Response::new(pb::GetFeedbackEntryResponse { entry: Some(row.into()) }))
    }

    async fn list_feedback_entries(
        &self,
        request: Request<pb::ListFeedbackEntriesRequest>,
    ) -> Reply<pb::ListFeedbackEntriesResponse> {
        let req = request.into_inner();
        let filter = validate::filter(&req)?;
        let fingerprint = filter.fingerprint();
        let page = Page::parse(req.page_size, &req.page_token, &fingerprint)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let mut rows =
            repo::list_entries(&mut conn, &filter, page.after, page.fetch_limit()).await.map_err(Error::from)?;
        let total = repo::count_entries(&mut conn, &filter).await.map_err(Error::from)?;
        let next_page_token = page.finish(&mut rows, |r| r.id, &fingerprint);
        Ok(Response::new(pb::ListFeedbackEntriesResponse {
            entries: rows.into_iter().map(Into::into).collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn delete_feedback_entry(
        &self,
        request: Request<pb::DeleteFeedbackEntryRequest>,
    ) -> Reply<pb::DeleteFeedbackEntryResponse> {
        let mut v = FieldViolations::default();
        let id = validate::id("id", request.get_ref().id, &mut v);
        v.into_result()?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        conn.transaction::<_, Error, _>(async |conn| {
            if !repo::delete_entry(conn, id).await? {
                return Err(Error::not_found("feedback entry", id));
            }
            Ok(())
        })
        .await?;
        Ok(Response::new(pb::DeleteFeedbackEntryResponse {}))
    }

    async fn create_feedback_comment(
        &self,
        request: Request<pb::CreateFeedbackCommentRequest>,
    ) -> Reply<pb::CreateFeedbackCommentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let entry_id = validate::id("entry_id", req.entry_id, &mut v);
        let body = match &req.comment {
            None => {
                v.add("comment", "is required");
                None
            }
            Some(c) => validate::comment_body("comment.body", &c.body, &mut v),
        };
        v.into_result()?;
        let body = body.ok_or_else(|| Error::invalid("comment.body", "is required"))?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = conn
            .transaction::<_, Error, _>(async |conn| {
                // The entry is the parent the request addresses: missing → NotFound.
                if !repo::lock_entry(conn, entry_id).await? {
                    return Err(Error::not_found("feedback entry", entry_id));
                }
                Ok(repo::insert_comment(conn, entry_id, caller.account_id, &body).await?)
            })
            .await?;
        Ok(Response::new(pb::CreateFeedbackCommentResponse { comment: Some(row.into()) }))
    }

    async fn list_feedback_comments(
        &self,
        request: Request<pb::ListFeedbackCommentsRequest>,
    ) -> Reply<pb::ListFeedbackCommentsResponse> {
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let entry_id = validate::id("entry_id", req.entry_id, &mut v);
        v.into_result()?;
        let fingerprint = format!("comments;entry={entry_id}");
        let page = Page::parse(req.page_size, &req.page_token, &fingerprint)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        if repo::find_entry(&mut conn, entry_id).await.map_err(Error::from)?.is_none() {
            return Err(Error::not_found("feedback entry", entry_id).into());
        }
        let (mut rows, total) =
            repo::list_comments(&mut conn, entry_id, page.after, page.fetch_limit()).await.map_err(Error::from)?;
        let next_page_token = page.finish(&mut rows, |r| r.id, &fingerprint);
        Ok(Response::new(pb::ListFeedbackCommentsResponse {
            comments: rows.into_iter().map(Into::into).collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}
