//! Requests → typed commands, collecting every field violation before any I/O.

use chrono::{DateTime, Utc};
use phoenix_common::page::PageRequest;
use phoenix_common::validate::{collect, finish, optional_id, page, required, required_id};
use phoenix_common::{Error, FieldViolations, Result};
use phoenix_proto::iot::v1 as pb;
use phoenix_reader_protocol::is_valid_device_id;

use crate::convert;
use crate::model::{DeviceKind, DeviceStatus, LogEvent, ONLINE_WINDOW};
use crate::repo::DeviceFilter;

/// Longest device name.
pub const MAX_NAME_CHARS: usize = 100;

/// A valid `RegisterDevice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    pub device_id: String,
    pub kind: DeviceKind,
    pub room_id: Option<i64>,
    pub name: Option<String>,
}

/// How a device is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Id(i64),
    DeviceId(String),
}

/// A valid `UpdateDevice`: `None` = leave alone; `Some(None)` = clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub id: i64,
    pub status: Option<DeviceStatus>,
    pub room_id: Option<Option<i64>>,
    pub name: Option<Option<String>>,
}

/// A valid `ListDevices`: devices by ascending id, after the page's last id.
#[derive(Debug, Clone)]
pub struct List {
    pub page: PageRequest,
    /// The previous page's last id.
    pub after: Option<i64>,
    pub filter: DeviceFilter,
}

/// A valid `ListDeviceLogs`: newest first, before the page's last log id.
#[derive(Debug, Clone)]
pub struct ListLogs {
    pub device: i64,
    pub page: PageRequest,
    /// The previous page's last log id.
    pub before: Option<i64>,
    pub event: Option<LogEvent>,
}

fn check_device_id(v: &mut FieldViolations, field: &str, device_id: &str) {
    if !is_valid_device_id(device_id) {
        v.add(field, "must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'");
    }
}

fn name(v: &mut FieldViolations, field: &str, raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > MAX_NAME_CHARS {
        v.add(field, format!("must have at most {MAX_NAME_CHARS} characters"));
    } else if trimmed.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
    }
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

fn kind(v: &mut FieldViolations, field: &str, raw: i32) -> Option<DeviceKind> {
    match convert::kind_from_proto(raw) {
        Ok(Some(k)) => Some(k),
        Ok(None) => {
            v.add(field, "is required: DEVICE_KIND_ROOM or DEVICE_KIND_ENTRANCE");
            None
        }
        Err(convert::UnknownValue) => {
            v.add(field, format!("unknown value {raw}"));
            None
        }
    }
}

/// Room binding rule: a room reader needs a room; an entrance reader has none.
fn check_binding(v: &mut FieldViolations, field: &str, kind: DeviceKind, room_id: Option<i64>) {
    match (kind, room_id) {
        (DeviceKind::Room, None) => v.add(field, "is required for a room reader"),
        (DeviceKind::Entrance, Some(_)) => {
            v.add(field, "must be unset for an entrance reader (it is bound to no room)")
        }
        (_, room_id) => {
            optional_id(field, room_id, v);
        }
    }
}

pub fn register(req: pb::RegisterDeviceRequest) -> Result<Register> {
    let mut v = FieldViolations::default();
    check_device_id(&mut v, "device_id", &req.device_id);
    let kind = kind(&mut v, "kind", req.kind);
    if let Some(k) = kind {
        check_binding(&mut v, "room_id", k, req.room_id);
    }
    let name = name(&mut v, "name", &req.name);
    let kind = finish(v, kind)?;
    Ok(Register { device_id: req.device_id, kind, room_id: req.room_id, name })
}

pub fn get(req: pb::GetDeviceRequest) -> Result<Lookup> {
    match req.device {
        Some(pb::get_device_request::Device::Id(i)) => phoenix_common::validate::id("id", i).map(Lookup::Id),
        Some(pb::get_device_request::Device::DeviceId(d)) => {
            let mut v = FieldViolations::default();
            check_device_id(&mut v, "device_id", &d);
            v.into_result().map(|()| Lookup::DeviceId(d))
        }
        None => Err(Error::invalid("device", "set either id or device_id")),
    }
}

/// Paths `UpdateDevice` accepts.
pub const UPDATE_PATHS: [&str; 3] = ["status", "room_id", "name"];

pub fn update(req: pb::UpdateDeviceRequest) -> Result<Update> {
    let device = required("device", req.device)?;
    let mut v = FieldViolations::default();
    required_id("device.id", device.id, &mut v);
    let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", format!("name at least one of: {}", UPDATE_PATHS.join(", ")));
    }
    let mut update = Update { id: device.id, status: None, room_id: None, name: None };
    for path in &paths {
        match path.as_str() {
            "status" => match convert::status_from_proto(device.status) {
                Ok(Some(s)) => update.status = Some(s),
                Ok(None) => v.add("device.status", "is required when update_mask names it"),
                Err(convert::UnknownValue) => v.add("device.status", format!("unknown value {}", device.status)),
            },
            "room_id" => {
                optional_id("device.room_id", device.room_id, &mut v);
                update.room_id = Some(device.room_id);
            }
            "name" => update.name = Some(name(&mut v, "device.name", &device.name)),
            other => v.add("update_mask", format!("unknown path {other:?}; use {}", UPDATE_PATHS.join(", "))),
        }
    }
    v.into_result().map(|()| update)
}

/// Checks a device's room binding after an update (the kind is only known from the row).
pub fn binding_after_update(kind: DeviceKind, room_id: Option<i64>) -> Result<()> {
    let mut v = FieldViolations::default();
    check_binding(&mut v, "device.room_id", kind, room_id);
    v.into_result()
}

pub fn list(req: pb::ListDevicesRequest, now: DateTime<Utc>) -> Result<List> {
    let mut v = FieldViolations::default();
    let mut filter = DeviceFilter::default();
    match convert::status_from_proto(req.status) {
        Ok(s) => filter.status = s,
        Err(convert::UnknownValue) => v.add("status", format!("unknown value {}", req.status)),
    }
    match convert::kind_from_proto(req.kind) {
        Ok(k) => filter.kind = k,
        Err(convert::UnknownValue) => v.add("kind", format!("unknown value {}", req.kind)),
    }
    match convert::type_from_proto(req.device_type) {
        Ok(t) => filter.device_type = t,
        Err(convert::UnknownValue) => v.add("device_type", format!("unknown value {}", req.device_type)),
    }
    filter.room_id = optional_id("room_id", req.room_id, &mut v);
    let search = req.search.trim();
    if search.chars().count() > MAX_NAME_CHARS {
        v.add("search", format!("must have at most {MAX_NAME_CHARS} characters"));
    } else if !search.is_empty() {
        filter.search = Some(search.to_owned());
    }
    let window = chrono::Duration::from_std(ONLINE_WINDOW).unwrap_or_default();
    filter.online = req.online.map(|o| (o, now - window));
    // The token is bound to the filters as the caller gave them (not to the moving cutoff).
    let filters = format!(
        "{:?} {:?} {:?} {:?} {:?} {:?}",
        filter.status, filter.kind, filter.device_type, filter.room_id, filter.search, req.online
    );
    let page = page("devices", &filters, req.page_size, &req.page_token, &mut v);
    let after = page.as_ref().and_then(|p| collect(p.after_id(), &mut v)).flatten();
    let page = finish(v, page)?;
    Ok(List { page, after, filter })
}

pub fn list_logs(req: pb::ListDeviceLogsRequest) -> Result<ListLogs> {
    let mut v = FieldViolations::default();
    required_id("id", req.id, &mut v);
    let event = match convert::event_from_proto(req.event) {
        Ok(e) => e,
        Err(convert::UnknownValue) => {
            v.add("event", format!("unknown value {}", req.event));
            None
        }
    };
    let page = page("device_logs", &format!("{} {event:?}", req.id), req.page_size, &req.page_token, &mut v);
    let before = page.as_ref().and_then(|p| collect(p.after_id(), &mut v)).flatten();
    let page = finish(v, page)?;
    Ok(ListLogs { device: req.id, page, before, event })
}

#[cfg(test)]
mod tests {
    use phoenix_common::validate::fields_of;

    use super::*;

    #[test]
    fn register_collects_every_violation() {
        let err = register(pb::RegisterDeviceRequest {
            device_id: "bad id/".into(),
            kind: 0,
            room_id: None,
            name: "x".repeat(101),
        })
        .unwrap_err();
        assert_eq!(fields_of(err), ["device_id", "kind", "name"]);
    }

    #[test]
    fn register_enforces_the_room_binding() {
        let room = pb::DeviceKind::Room as i32;
        let entrance = pb::DeviceKind::Entrance as i32;
        let req =
            |kind, room_id| pb::RegisterDeviceRequest { device_id: "r-1".into(), kind, room_id, name: String::new() };
        assert_eq!(fields_of(register(req(room, None)).unwrap_err()), ["room_id"]);
        assert_eq!(fields_of(register(req(room, Some(0))).unwrap_err()), ["room_id"]);
        assert_eq!(fields_of(register(req(entrance, Some(3))).unwrap_err()), ["room_id"]);
        assert_eq!(fields_of(register(req(7, None)).unwrap_err()), ["kind"]);
        let ok = register(pb::RegisterDeviceRequest { name: "  Leser  ".into(), ..req(room, Some(3)) }).expect("valid");
        assert_eq!(
            ok,
            Register { device_id: "r-1".into(), kind: DeviceKind::Room, room_id: Some(3), name: Some("Leser".into()) }
        );
        assert_eq!(register(req(entrance, None)).expect("valid").name, None);
    }

    #[test]
    fn update_checks_the_mask_and_the_named_fields() {
        let device = pb::Device { id: 4, status: pb::DeviceStatus::Inactive as i32, ..Default::default() };
        let mask =
            |paths: &[&str]| Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() });
        let ok =
            update(pb::UpdateDeviceRequest { device: Some(device.clone()), update_mask: mask(&["status", "name"]) })
                .expect("valid");
        assert_eq!(ok, Update { id: 4, status: Some(DeviceStatus::Inactive), room_id: None, name: Some(None) });
        let err = update(pb::UpdateDeviceRequest {
            device: Some(pb::Device { status: 0, ..device.clone() }),
            update_mask: mask(&["status", "kind"]),
        })
        .unwrap_err();
        assert_eq!(fields_of(err), ["device.status", "update_mask"]);
        let err = update(pb::UpdateDeviceRequest { device: Some(device), update_mask: None }).unwrap_err();
        assert_eq!(fields_of(err), ["update_mask"]);
    }

    #[test]
    fn lists_validate_paging_and_filters() {
        let now = Utc::now();
        let err = list(
            pb::ListDevicesRequest { page_size: 501, page_token: "zz".into(), status: 42, ..Default::default() },
            now,
        )
        .unwrap_err();
        assert_eq!(fields_of(err), ["status", "page_size", "page_token"], "every bad field at once");
        let err = list(pb::ListDevicesRequest { page_token: "zz".into(), status: 42, ..Default::default() }, now)
            .unwrap_err();
        assert_eq!(fields_of(err), ["status", "page_token"]);
        let ok = list(pb::ListDevicesRequest { online: Some(true), search: " lab ".into(), ..Default::default() }, now)
            .expect("valid");
        assert_eq!(ok.page.size, 50);
        assert_eq!(ok.filter.search.as_deref(), Some("lab"));
        assert!(matches!(ok.filter.online, Some((true, cutoff)) if cutoff < now));
        assert_eq!(fields_of(list_logs(pb::ListDeviceLogsRequest::default()).unwrap_err()), ["id"]);
    }
}
