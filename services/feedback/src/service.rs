//! `phoenix.feedback.v1.FeedbackService`: [`FeedbackApi`], [`METHODS`] and the handlers
//! (validate → one transaction through `repo` → convert). Feedback has no resource rules:
//! the permission is all; a comment's author is the verified caller.

use diesel_async::AsyncConnection as _;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::caller::Caller;
use phoenix_common::db::{self, DbPool};
use phoenix_common::time::business_today;
use phoenix_common::validate::id;
use phoenix_common::{Error, Reply};
use phoenix_proto::feedback::v1 as pb;
use phoenix_proto::feedback::v1::feedback_service_server::FeedbackService;
use tonic::{Request, Response};

use crate::{convert, repo, validate};

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

/// The feedback service over a database pool.
#[derive(Clone)]
pub struct FeedbackApi {
    pool: DbPool,
}

impl std::fmt::Debug for FeedbackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedbackApi").finish_non_exhaustive()
    }
}

impl FeedbackApi {
    /// A service answering from `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

#[tonic::async_trait]
impl FeedbackService for FeedbackApi {
    async fn create_feedback_entry(
        &self,
        request: Request<pb::CreateFeedbackEntryRequest>,
    ) -> Reply<pb::CreateFeedbackEntryResponse> {
        // An empty day is the school day (in the school zone, PHOENIX_TIMEZONE).
        let new = [validate::create_entry(request.into_inner(), business_today())?];
        let mut conn = db::conn(&self.pool).await?;
        let rows = conn
            .transaction::<_, Error, _>(async |c| {
                repo::check_entry_refs(c, &new, |_, f| format!("entry.{f}")).await?;
                repo::insert_entries(c, &new).await
            })
            .await?;
        let row = rows.into_iter().next().ok_or_else(|| Error::Internal(anyhow::anyhow!("insert returned no row")))?;
        tracing::info!(entry_id = row.id, "feedback entry created");
        Ok(Response::new(pb::CreateFeedbackEntryResponse { entry: Some(convert::entry(row)) }))
    }

    async fn batch_create_feedback_entries(
        &self,
        request: Request<pb::BatchCreateFeedbackEntriesRequest>,
    ) -> Reply<pb::BatchCreateFeedbackEntriesResponse> {
        let new = validate::batch(&request.into_inner().entries, business_today())?;
        let mut conn = db::conn(&self.pool).await?;
        // One transaction: a missing student in any item rolls back every item.
        let rows = conn
            .transaction::<_, Error, _>(async |c| {
                repo::check_entry_refs(c, &new, |i, f| format!("entries[{i}].{f}")).await?;
                repo::insert_entries(c, &new).await
            })
            .await?;
        tracing::info!(entries = rows.len(), "feedback entries created");
        Ok(Response::new(pb::BatchCreateFeedbackEntriesResponse {
            entries: rows.into_iter().map(convert::entry).collect(),
        }))
    }

    async fn get_feedback_entry(
        &self,
        request: Request<pb::GetFeedbackEntryRequest>,
    ) -> Reply<pb::GetFeedbackEntryResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let row = repo::find_entry(&mut conn, id).await?.ok_or_else(|| Error::not_found("feedback entry", id))?;
        Ok(Response::new(pb::GetFeedbackEntryResponse { entry: Some(convert::entry(row)) }))
    }

    async fn list_feedback_entries(
        &self,
        request: Request<pb::ListFeedbackEntriesRequest>,
    ) -> Reply<pb::ListFeedbackEntriesResponse> {
        let (filter, page) = validate::list_entries(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let rows = repo::list_entries(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let total = repo::count_entries(&mut conn, &filter).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListFeedbackEntriesResponse {
            entries: rows.into_iter().map(convert::entry).collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn delete_feedback_entry(
        &self,
        request: Request<pb::DeleteFeedbackEntryRequest>,
    ) -> Reply<pb::DeleteFeedbackEntryResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async |c| {
            if repo::delete_entry(c, id).await? { Ok(()) } else { Err(Error::not_found("feedback entry", id)) }
        })
        .await?;
        tracing::info!(entry_id = id, "feedback entry deleted");
        Ok(Response::new(pb::DeleteFeedbackEntryResponse {}))
    }

    async fn create_feedback_comment(
        &self,
        request: Request<pb::CreateFeedbackCommentRequest>,
    ) -> Reply<pb::CreateFeedbackCommentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (entry_id, body) = validate::create_comment(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async |c| {
                // The entry is the parent the request addresses: missing → NotFound.
                if !repo::lock_entry(c, entry_id).await? {
                    return Err(Error::not_found("feedback entry", entry_id));
                }
                repo::insert_comment(c, entry_id, caller.account_id, &body).await
            })
            .await?;
        tracing::info!(comment_id = row.id, entry_id, "feedback comment created");
        Ok(Response::new(pb::CreateFeedbackCommentResponse { comment: Some(convert::comment(row)) }))
    }

    async fn list_feedback_comments(
        &self,
        request: Request<pb::ListFeedbackCommentsRequest>,
    ) -> Reply<pb::ListFeedbackCommentsResponse> {
        let (entry_id, page) = validate::list_comments(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        if repo::find_entry(&mut conn, entry_id).await?.is_none() {
            return Err(Error::not_found("feedback entry", entry_id).into());
        }
        let (rows, total) = repo::list_comments(&mut conn, entry_id, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListFeedbackCommentsResponse {
            comments: rows.into_iter().map(convert::comment).collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}
