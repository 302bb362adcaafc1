//! proto ⇄ domain for the iot service.

use chrono::{DateTime, Utc};
use phoenix_common::time::{to_timestamp, to_timestamp_opt};
use phoenix_proto::iot::v1 as pb;

use crate::model::{DeviceKind, DeviceStatus, LogEvent, ONLINE_WINDOW, TYPE_RFID_READER, TYPE_VIRTUAL};
use crate::repo::{DeviceRow, LogRow};

/// A number a proto enum does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownValue;

/// A proto enum value: `Ok(None)` for UNSPECIFIED, `Err` for a number the enum lacks.
pub type Decoded<T> = Result<Option<T>, UnknownValue>;

pub fn status_from_proto(v: i32) -> Decoded<DeviceStatus> {
    match pb::DeviceStatus::try_from(v).map_err(|_| UnknownValue)? {
        pb::DeviceStatus::Unspecified => Ok(None),
        pb::DeviceStatus::Active => Ok(Some(DeviceStatus::Active)),
        pb::DeviceStatus::Inactive => Ok(Some(DeviceStatus::Inactive)),
        pb::DeviceStatus::Maintenance => Ok(Some(DeviceStatus::Maintenance)),
        pb::DeviceStatus::Offline => Ok(Some(DeviceStatus::Offline)),
    }
}

pub fn status_to_proto(s: DeviceStatus) -> pb::DeviceStatus {
    match s {
        DeviceStatus::Active => pb::DeviceStatus::Active,
        DeviceStatus::Inactive => pb::DeviceStatus::Inactive,
        DeviceStatus::Maintenance => pb::DeviceStatus::Maintenance,
        DeviceStatus::Offline => pb::DeviceStatus::Offline,
    }
}

pub fn kind_from_proto(v: i32) -> Decoded<DeviceKind> {
    match pb::DeviceKind::try_from(v).map_err(|_| UnknownValue)? {
        pb::DeviceKind::Unspecified => Ok(None),
        pb::DeviceKind::Room => Ok(Some(DeviceKind::Room)),
        pb::DeviceKind::Entrance => Ok(Some(DeviceKind::Entrance)),
    }
}

pub fn kind_to_proto(k: DeviceKind) -> pb::DeviceKind {
    match k {
        DeviceKind::Room => pb::DeviceKind::Room,
        DeviceKind::Entrance => pb::DeviceKind::Entrance,
    }
}

pub fn type_from_proto(v: i32) -> Decoded<&'static str> {
    match pb::DeviceType::try_from(v).map_err(|_| UnknownValue)? {
        pb::DeviceType::Unspecified => Ok(None),
        pb::DeviceType::RfidReader => Ok(Some(TYPE_RFID_READER)),
        pb::DeviceType::Virtual => Ok(Some(TYPE_VIRTUAL)),
    }
}

fn type_to_proto(t: &str) -> pb::DeviceType {
    match t {
        TYPE_RFID_READER => pb::DeviceType::RfidReader,
        TYPE_VIRTUAL => pb::DeviceType::Virtual,
        _ => pb::DeviceType::Unspecified,
    }
}

pub fn event_from_proto(v: i32) -> Decoded<LogEvent> {
    use pb::DeviceLogEvent as E;
    Ok(Some(match E::try_from(v).map_err(|_| UnknownValue)? {
        E::Unspecified => return Ok(None),
        E::Registered => LogEvent::Registered,
        E::KeyRotated => LogEvent::KeyRotated,
        E::StatusChanged => LogEvent::StatusChanged,
        E::Online => LogEvent::Online,
        E::Offline => LogEvent::Offline,
        E::BadSignature => LogEvent::BadSignature,
        E::Malformed => LogEvent::Malformed,
        E::StaleScan => LogEvent::StaleScan,
        E::RateLimited => LogEvent::RateLimited,
        E::SessionStarted => LogEvent::SessionStarted,
        E::SessionEnded => LogEvent::SessionEnded,
        E::DeviceInactive => LogEvent::DeviceInactive,
    }))
}

pub fn event_to_proto(e: LogEvent) -> pb::DeviceLogEvent {
    use pb::DeviceLogEvent as E;
    match e {
        LogEvent::Registered => E::Registered,
        LogEvent::KeyRotated => E::KeyRotated,
        LogEvent::StatusChanged => E::StatusChanged,
        LogEvent::Online => E::Online,
        LogEvent::Offline => E::Offline,
        LogEvent::BadSignature => E::BadSignature,
        LogEvent::Malformed => E::Malformed,
        LogEvent::StaleScan => E::StaleScan,
        LogEvent::RateLimited => E::RateLimited,
        LogEvent::SessionStarted => E::SessionStarted,
        LogEvent::SessionEnded => E::SessionEnded,
        LogEvent::DeviceInactive => E::DeviceInactive,
    }
}

/// Whether a reader counts as online at `now`.
pub fn is_online(row: &DeviceRow, now: DateTime<Utc>) -> bool {
    let window = chrono::Duration::from_std(ONLINE_WINDOW).unwrap_or_default();
    row.offline_since.is_none() && row.last_seen.is_some_and(|seen| seen > now - window)
}

pub fn device(row: DeviceRow, now: DateTime<Utc>) -> pb::Device {
    let online = is_online(&row, now);
    pb::Device {
        id: row.id,
        device_type: type_to_proto(&row.device_type) as i32,
        kind: DeviceKind::parse(&row.kind).map(kind_to_proto).unwrap_or(pb::DeviceKind::Unspecified) as i32,
        name: row.name.unwrap_or_default(),
        status: DeviceStatus::parse(&row.status).map(status_to_proto).unwrap_or(pb::DeviceStatus::Unspecified) as i32,
        room_id: row.room_id,
        key_version: row.key_version,
        key_rotate_time: to_timestamp_opt(row.key_rotated_at),
        last_seen_time: to_timestamp_opt(row.last_seen),
        online,
        registered_by_id: row.registered_by_id,
        create_time: Some(to_timestamp(row.created_at)),
        update_time: Some(to_timestamp(row.updated_at)),
        offline_time: to_timestamp_opt(row.offline_since),
        device_id: row.device_id,
    }
}

pub fn log(row: LogRow) -> pb::DeviceLog {
    pb::DeviceLog {
        id: row.id,
        device_id: row.device_id,
        event: LogEvent::parse(&row.event).map(event_to_proto).unwrap_or(pb::DeviceLogEvent::Unspecified) as i32,
        detail_json: row.detail.to_string(),
        create_time: Some(to_timestamp(row.created_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_map_both_ways_and_reject_unknown_numbers() {
        for s in DeviceStatus::ALL {
            assert_eq!(status_from_proto(status_to_proto(*s) as i32), Ok(Some(*s)));
        }
        for k in DeviceKind::ALL {
            assert_eq!(kind_from_proto(kind_to_proto(*k) as i32), Ok(Some(*k)));
        }
        for e in LogEvent::ALL {
            assert_eq!(event_from_proto(event_to_proto(*e) as i32), Ok(Some(*e)));
        }
        assert_eq!(status_from_proto(0), Ok(None));
        assert_eq!(status_from_proto(99), Err(UnknownValue));
        assert_eq!(kind_from_proto(-1), Err(UnknownValue));
        assert_eq!(type_from_proto(1), Ok(Some(TYPE_RFID_READER)));
    }
}
