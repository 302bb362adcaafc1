//! Diesel queries on `iot.*` (and the room look-up the iot service needs). No proto types here.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::facilities::rooms;
use phoenix_db::schema::iot::{device_logs, devices};

use phoenix_common::Result;
use phoenix_common::convert::like_contains;

use crate::model::{DeviceKind, DeviceStatus, LogEvent};

/// A row of `iot.devices`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = devices, check_for_backend(Pg))]
pub struct DeviceRow {
    pub id: i64,
    pub device_id: String,
    pub device_type: String,
    pub name: Option<String>,
    pub status: String,
    pub room_id: Option<i64>,
    pub kind: String,
    pub key_version: i32,
    pub key_rotated_at: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub registered_by_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub offline_since: Option<DateTime<Utc>>,
}

/// A reader to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = devices)]
pub struct NewDevice<'a> {
    pub device_id: &'a str,
    pub device_type: &'a str,
    pub kind: &'a str,
    pub room_id: Option<i64>,
    pub name: Option<&'a str>,
    pub key_version: i32,
}

/// Changes of an update: `None` leaves a column alone, `Some(None)` clears it.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = devices)]
pub struct DeviceChanges {
    pub status: Option<String>,
    pub room_id: Option<Option<i64>>,
    pub name: Option<Option<String>>,
}

impl DeviceChanges {
    /// Whether nothing would change (diesel refuses an empty `SET`).
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.room_id.is_none() && self.name.is_none()
    }
}

/// Filters of `ListDevices`.
#[derive(Debug, Default, Clone)]
pub struct DeviceFilter {
    pub status: Option<DeviceStatus>,
    pub kind: Option<DeviceKind>,
    pub room_id: Option<i64>,
    pub device_type: Option<&'static str>,
    pub search: Option<String>,
    /// `Some((online, cutoff))`: seen after `cutoff` and not marked offline (or the opposite).
    pub online: Option<(bool, DateTime<Utc>)>,
}

pub async fn insert_device(conn: &mut AsyncPgConnection, new: NewDevice<'_>) -> Result<DeviceRow> {
    Ok(diesel::insert_into(devices::table).values(new).returning(DeviceRow::as_returning()).get_result(conn).await?)
}

pub async fn find_by_id(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<DeviceRow>> {
    Ok(devices::table.find(id).select(DeviceRow::as_select()).first(conn).await.optional()?)
}

/// Locks the row for the rest of the transaction (read-modify-write).
pub async fn lock_by_id(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<DeviceRow>> {
    Ok(devices::table.find(id).select(DeviceRow::as_select()).for_update().first(conn).await.optional()?)
}

pub async fn find_by_device_id(conn: &mut AsyncPgConnection, device_id: &str) -> Result<Option<DeviceRow>> {
    let row = devices::table.filter(devices::device_id.eq(device_id)).select(DeviceRow::as_select()).first(conn).await;
    Ok(row.optional()?)
}

pub async fn room_exists(conn: &mut AsyncPgConnection, room_id: i64) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(rooms::table.find(room_id))).get_result(conn).await?)
}

/// Increments the key version (the old key stops verifying) and stamps the rotation.
pub async fn bump_key_version(conn: &mut AsyncPgConnection, id: i64) -> Result<DeviceRow> {
    Ok(diesel::update(devices::table.find(id))
        .set((devices::key_version.eq(devices::key_version + 1), devices::key_rotated_at.eq(diesel::dsl::now)))
        .returning(DeviceRow::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn update_device(conn: &mut AsyncPgConnection, id: i64, changes: &DeviceChanges) -> Result<DeviceRow> {
    Ok(diesel::update(devices::table.find(id))
        .set(changes)
        .returning(DeviceRow::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn delete_device(conn: &mut AsyncPgConnection, id: i64) -> Result<usize> {
    Ok(diesel::delete(devices::table.find(id)).execute(conn).await?)
}

fn filtered(filter: &DeviceFilter) -> devices::BoxedQuery<'static, Pg> {
    let mut q = devices::table.into_boxed();
    if let Some(s) = filter.status {
        q = q.filter(devices::status.eq(s.as_str()));
    }
    if let Some(k) = filter.kind {
        q = q.filter(devices::kind.eq(k.as_str()));
    }
    if let Some(r) = filter.room_id {
        q = q.filter(devices::room_id.eq(r));
    }
    if let Some(t) = filter.device_type {
        q = q.filter(devices::device_type.eq(t));
    }
    if let Some(search) = &filter.search {
        let pattern = like_contains(search);
        q = q.filter(devices::device_id.ilike(pattern.clone()).or(devices::name.ilike(pattern).assume_not_null()));
    }
    match filter.online {
        Some((true, cutoff)) => {
            q = q.filter(devices::last_seen.gt(cutoff).and(devices::offline_since.is_null()));
        }
        Some((false, cutoff)) => {
            q = q.filter(
                devices::last_seen
                    .is_null()
                    .or(devices::last_seen.le(cutoff).assume_not_null())
                    .or(devices::offline_since.is_not_null()),
            );
        }
        None => {}
    }
    q
}

/// One page of devices by ascending id, after `after` (keyset), at most `limit` rows.
pub async fn list_devices(
    conn: &mut AsyncPgConnection,
    filter: &DeviceFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<DeviceRow>> {
    let mut q = filtered(filter);
    if let Some(after) = after {
        q = q.filter(devices::id.gt(after));
    }
    Ok(q.order(devices::id.asc()).limit(limit).select(DeviceRow::as_select()).load(conn).await?)
}

pub async fn count_devices(conn: &mut AsyncPgConnection, filter: &DeviceFilter) -> Result<i64> {
    Ok(filtered(filter).count().get_result(conn).await?)
}

/// Appends to the device log (in the caller's transaction).
pub async fn insert_log(
    conn: &mut AsyncPgConnection,
    device: i64,
    event: LogEvent,
    detail: serde_json::Value,
) -> Result<()> {
    diesel::insert_into(device_logs::table)
        .values((
            device_logs::device_id.eq(device),
            device_logs::event.eq(event.as_str()),
            device_logs::detail.eq(detail),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// A device-log row with the reader's device id.
#[derive(Debug, Clone, Queryable)]
pub struct LogRow {
    pub id: i64,
    pub device_id: String,
    pub event: String,
    pub detail: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

fn logs_of(device: i64, event: Option<LogEvent>) -> device_logs::BoxedQuery<'static, Pg> {
    let mut q = device_logs::table.filter(device_logs::device_id.eq(device)).into_boxed();
    if let Some(e) = event {
        q = q.filter(device_logs::event.eq(e.as_str()));
    }
    q
}

/// One page of a device's log, newest first, before log id `before` (keyset).
pub async fn list_logs(
    conn: &mut AsyncPgConnection,
    device: i64,
    event: Option<LogEvent>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<LogRow>> {
    let mut q = logs_of(device, event);
    if let Some(before) = before {
        q = q.filter(device_logs::id.lt(before));
    }
    Ok(q.inner_join(devices::table)
        .order(device_logs::id.desc())
        .limit(limit)
        .select((device_logs::id, devices::device_id, device_logs::event, device_logs::detail, device_logs::created_at))
        .load(conn)
        .await?)
}

pub async fn count_logs(conn: &mut AsyncPgConnection, device: i64, event: Option<LogEvent>) -> Result<i64> {
    Ok(logs_of(device, event).count().get_result(conn).await?)
}

/// What the gateway needs to verify a reader's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// `iot.devices.id`.
    pub id: i64,
    /// Version the current key is derived from.
    pub key_version: i32,
}

pub async fn credentials(conn: &mut AsyncPgConnection, device_id: &str) -> Result<Option<Credentials>> {
    let row = devices::table
        .filter(devices::device_id.eq(device_id))
        .select((devices::id, devices::key_version))
        .first::<(i64, i32)>(conn)
        .await
        .optional()?;
    Ok(row.map(|(id, key_version)| Credentials { id, key_version }))
}

/// A reader's `(last_seen, offline_since)`.
pub type SeenState = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Stamps `last_seen` and clears an offline mark; returns the previous [`SeenState`] (the
/// row is locked first so the transition is seen once).
pub async fn mark_seen(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<SeenState>> {
    let before: Option<SeenState> = devices::table
        .find(id)
        .select((devices::last_seen, devices::offline_since))
        .for_no_key_update()
        .first(conn)
        .await
        .optional()?;
    if before.is_some() {
        diesel::update(devices::table.find(id))
            .set((devices::last_seen.eq(diesel::dsl::now), devices::offline_since.eq(None::<DateTime<Utc>>)))
            .execute(conn)
            .await?;
    }
    Ok(before)
}

/// Marks the reader offline now; `true` when it was not marked already.
pub async fn mark_offline(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    let n = diesel::update(devices::table.find(id).filter(devices::offline_since.is_null()))
        .set(devices::offline_since.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(n == 1)
}
