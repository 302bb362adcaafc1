//! Read-only queries of the append-only audit tables, newest first (keyset pages by id).

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_db::auth_events::AuthEventType;
use phoenix_db::schema::audit::{auth_events, data_deletions, data_exports};

use crate::export::ExportRow;

/// A row of `audit.data_deletions`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = data_deletions, check_for_backend(Pg))]
pub struct DeletionRow {
    pub id: i64,
    pub entity_type: String,
    pub entity_id: i64,
    pub deletion_type: String,
    pub records_deleted: i32,
    pub reason: Option<String>,
    pub deleted_by: String,
    pub deleted_at: DateTime<Utc>,
    pub metadata: serde_json::Value,
}

/// Filters of `ListDataDeletions`.
#[derive(Debug, Clone, Default)]
pub struct DeletionFilter {
    pub deletion_type: Option<&'static str>,
    pub entity_type: Option<String>,
    pub entity_id: Option<i64>,
}

fn deletions(f: &DeletionFilter) -> data_deletions::BoxedQuery<'static, Pg> {
    let mut q = data_deletions::table.into_boxed();
    if let Some(t) = f.deletion_type {
        q = q.filter(data_deletions::deletion_type.eq(t));
    }
    if let Some(t) = &f.entity_type {
        q = q.filter(data_deletions::entity_type.eq(t.clone()));
    }
    if let Some(id) = f.entity_id {
        q = q.filter(data_deletions::entity_id.eq(id));
    }
    q
}

/// A page of deletions with ids below `before`, and the total matching the filter.
pub async fn list_deletions(
    conn: &mut AsyncPgConnection,
    f: &DeletionFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<DeletionRow>, i64)> {
    let mut q = deletions(f).select(DeletionRow::as_select()).order(data_deletions::id.desc()).limit(limit);
    if let Some(b) = before {
        q = q.filter(data_deletions::id.lt(b));
    }
    let rows = q.load(conn).await?;
    let total = deletions(f).count().get_result(conn).await?;
    Ok((rows, total))
}

/// A row of `audit.auth_events` (the user agent and metadata are not exposed).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = auth_events, check_for_backend(Pg))]
pub struct AuthEventRow {
    pub id: i64,
    pub account_id: Option<i64>,
    pub client_id: Option<String>,
    pub event_type: String,
    pub success: bool,
    pub ip_address: Option<ipnetwork::IpNetwork>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Filters of `ListAuthEvents`.
#[derive(Debug, Clone, Default)]
pub struct AuthEventFilter {
    pub account_id: Option<i64>,
    pub event_type: Option<AuthEventType>,
    pub failures_only: bool,
}

fn events(f: &AuthEventFilter) -> auth_events::BoxedQuery<'static, Pg> {
    let mut q = auth_events::table.into_boxed();
    if let Some(a) = f.account_id {
        q = q.filter(auth_events::account_id.eq(a));
    }
    if let Some(t) = f.event_type {
        q = q.filter(auth_events::event_type.eq(t.as_str()));
    }
    if f.failures_only {
        q = q.filter(auth_events::success.eq(false));
    }
    q
}

/// A page of auth events with ids below `before`, and the total matching the filter.
pub async fn list_auth_events(
    conn: &mut AsyncPgConnection,
    f: &AuthEventFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<AuthEventRow>, i64)> {
    let mut q = events(f).select(AuthEventRow::as_select()).order(auth_events::id.desc()).limit(limit);
    if let Some(b) = before {
        q = q.filter(auth_events::id.lt(b));
    }
    let rows = q.load(conn).await?;
    let total = events(f).count().get_result(conn).await?;
    Ok((rows, total))
}

fn exports(student: Option<i64>) -> data_exports::BoxedQuery<'static, Pg> {
    let mut q = data_exports::table.into_boxed();
    if let Some(s) = student {
        q = q.filter(data_exports::subject_type.eq("student")).filter(data_exports::subject_id.eq(s));
    }
    q
}

/// A page of recorded exports with ids below `before`, and the total matching the filter.
pub async fn list_exports(
    conn: &mut AsyncPgConnection,
    student: Option<i64>,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<ExportRow>, i64)> {
    let mut q = exports(student).select(ExportRow::as_select()).order(data_exports::id.desc()).limit(limit);
    if let Some(b) = before {
        q = q.filter(data_exports::id.lt(b));
    }
    let rows = q.load(conn).await?;
    let total = exports(student).count().get_result(conn).await?;
    Ok((rows, total))
}
