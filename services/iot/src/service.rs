//! `IotApi`, the tonic handlers of `phoenix.iot.v1.IotService`: validate → (permission:
//! [`METHODS`]) → one transaction per write through [`repo`] → convert.

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::config::Secret;
use phoenix_common::db::{self, DbPool};
use phoenix_common::{Error, Reply};
use phoenix_proto::iot::v1 as pb;
use serde_json::json;
use tonic::{Request, Response};

use crate::convert;
use crate::model::{DeviceKind, DeviceStatus, LogEvent, TYPE_RFID_READER, TYPE_VIRTUAL};
use crate::repo::{self, DeviceChanges, NewDevice};
use crate::validate::{self, Lookup};

/// The permission each RPC needs (`resource:action`, from the seed migration), for the shared
/// authorization layer to enforce before the handler runs.
pub const METHODS: MethodTable = &[
    ("/phoenix.iot.v1.IotService/RegisterDevice", Requirement::Permission("iot:manage")),
    ("/phoenix.iot.v1.IotService/RotateDeviceKey", Requirement::Permission("iot:manage")),
    ("/phoenix.iot.v1.IotService/GetDevice", Requirement::Permission("iot:read")),
    ("/phoenix.iot.v1.IotService/ListDevices", Requirement::Permission("iot:read")),
    ("/phoenix.iot.v1.IotService/UpdateDevice", Requirement::Permission("iot:update")),
    ("/phoenix.iot.v1.IotService/DeleteDevice", Requirement::Permission("iot:manage")),
    ("/phoenix.iot.v1.IotService/ListDeviceLogs", Requirement::Permission("iot:read")),
];

/// Highest key version a fresh registration starts at. Registration starts at a random
/// version so that deleting and re-registering a device id never hands out an earlier key
/// again (keys are derived from device id and version, nothing is stored).
const MAX_INITIAL_KEY_VERSION: i32 = 1_000_000;

/// The iot service.
#[derive(Clone)]
pub struct IotApi {
    pool: DbPool,
    secret: Secret,
}

impl std::fmt::Debug for IotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IotApi").finish_non_exhaustive()
    }
}

/// A unique violation on insert: a concurrent registration of the same device id won.
fn already_registered(err: Error, device_id: &str) -> Error {
    match err {
        Error::AlreadyExists(_) => Error::AlreadyExists(format!("device {device_id:?} is already registered")),
        other => other,
    }
}

impl IotApi {
    /// A service on `pool` that derives device keys from `secret`.
    pub fn new(pool: DbPool, secret: Secret) -> Self {
        Self { pool, secret }
    }

    fn key_for(&self, row: &repo::DeviceRow) -> String {
        phoenix_reader_protocol::derive_device_key(self.secret.expose().as_bytes(), &row.device_id, row.key_version)
    }
}

/// Whether a device status lets scans through (only `active` ones; docs/reader-pipeline.md).
pub fn accepts_scans(status: &str) -> bool {
    status == DeviceStatus::Active.as_str()
}

#[tonic::async_trait]
impl pb::iot_service_server::IotService for IotApi {
    async fn register_device(&self, request: Request<pb::RegisterDeviceRequest>) -> Reply<pb::RegisterDeviceResponse> {
        let cmd = validate::register(request.into_inner())?;
        let initial_version = {
            use rand::RngExt as _;
            rand::rng().random_range(1..=MAX_INITIAL_KEY_VERSION)
        };
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async |c| {
                if let Some(room) = cmd.room_id
                    && !repo::room_exists(c, room).await?
                {
                    return Err(Error::invalid("room_id", format!("room {room} does not exist")));
                }
                if repo::find_by_device_id(c, &cmd.device_id).await?.is_some() {
                    return Err(Error::AlreadyExists(format!("device {:?} is already registered", cmd.device_id)));
                }
                let new = NewDevice {
                    device_id: &cmd.device_id,
                    device_type: TYPE_RFID_READER,
                    kind: cmd.kind.as_str(),
                    room_id: cmd.room_id,
                    name: cmd.name.as_deref(),
                    key_version: initial_version,
                };
                let row = repo::insert_device(c, new).await.map_err(|e| already_registered(e, &cmd.device_id))?;
                repo::insert_log(c, row.id, LogEvent::Registered, json!({"kind": row.kind, "room_id": row.room_id}))
                    .await?;
                Ok(row)
            })
            .await?;
        tracing::info!(id = row.id, device_id = %row.device_id, "device registered");
        let device_key = self.key_for(&row);
        Ok(Response::new(pb::RegisterDeviceResponse { device: Some(convert::device(row, Utc::now())), device_key }))
    }

    async fn rotate_device_key(
        &self,
        request: Request<pb::RotateDeviceKeyRequest>,
    ) -> Reply<pb::RotateDeviceKeyResponse> {
        let id = phoenix_common::validate::id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async |c| {
                let current = repo::lock_by_id(c, id).await?.ok_or_else(|| Error::not_found("device", id))?;
                if current.device_type == TYPE_VIRTUAL {
                    return Err(Error::precondition("VIRTUAL_DEVICE", "the virtual web device has no key to rotate"));
                }
                let row = repo::bump_key_version(c, id).await?;
                repo::insert_log(c, id, LogEvent::KeyRotated, json!({"key_version": row.key_version})).await?;
                Ok(row)
            })
            .await?;
        tracing::info!(id = row.id, device_id = %row.device_id, key_version = row.key_version, "device key rotated");
        let device_key = self.key_for(&row);
        Ok(Response::new(pb::RotateDeviceKeyResponse { device: Some(convert::device(row, Utc::now())), device_key }))
    }

    async fn get_device(&self, request: Request<pb::GetDeviceRequest>) -> Reply<pb::GetDeviceResponse> {
        let lookup = validate::get(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = match &lookup {
            Lookup::Id(id) => repo::find_by_id(&mut conn, *id).await?.ok_or_else(|| Error::not_found("device", id))?,
            Lookup::DeviceId(d) => repo::find_by_device_id(&mut conn, d)
                .await?
                .ok_or_else(|| Error::not_found("device", format!("{d:?}")))?,
        };
        Ok(Response::new(pb::GetDeviceResponse { device: Some(convert::device(row, Utc::now())) }))
    }

    async fn list_devices(&self, request: Request<pb::ListDevicesRequest>) -> Reply<pb::ListDevicesResponse> {
        let now = Utc::now();
        let cmd = validate::list(request.into_inner(), now)?;
        let mut conn = db::conn(&self.pool).await?;
        let rows = repo::list_devices(&mut conn, &cmd.filter, cmd.after, cmd.page.fetch_limit()).await?;
        let total_size = repo::count_devices(&mut conn, &cmd.filter).await?;
        let (rows, next_page_token) = cmd.page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListDevicesResponse {
            devices: rows.into_iter().map(|r| convert::device(r, now)).collect(),
            next_page_token,
            total_size,
        }))
    }

    async fn update_device(&self, request: Request<pb::UpdateDeviceRequest>) -> Reply<pb::UpdateDeviceResponse> {
        let cmd = validate::update(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async |c| {
                let current = repo::lock_by_id(c, cmd.id).await?.ok_or_else(|| Error::not_found("device", cmd.id))?;
                if let Some(room_id) = cmd.room_id {
                    // The virtual device has kind `room` but is never bound; leave it alone.
                    if current.device_type != TYPE_VIRTUAL {
                        let kind = DeviceKind::parse(&current.kind)
                            .ok_or_else(|| anyhow::anyhow!("device {} has unknown kind", current.id))?;
                        validate::binding_after_update(kind, room_id)?;
                    }
                    if let Some(room) = room_id
                        && !repo::room_exists(c, room).await?
                    {
                        return Err(Error::invalid("device.room_id", format!("room {room} does not exist")));
                    }
                }
                let changes = DeviceChanges {
                    status: cmd.status.map(|s| s.as_str().to_owned()),
                    room_id: cmd.room_id,
                    name: cmd.name.clone(),
                };
                if changes.is_empty() {
                    return Ok(current);
                }
                let row = repo::update_device(c, cmd.id, &changes).await?;
                if row.status != current.status {
                    let detail = json!({"from": current.status, "to": row.status});
                    repo::insert_log(c, row.id, LogEvent::StatusChanged, detail).await?;
                }
                Ok(row)
            })
            .await?;
        tracing::info!(id = row.id, "device updated");
        Ok(Response::new(pb::UpdateDeviceResponse { device: Some(convert::device(row, Utc::now())) }))
    }

    async fn delete_device(&self, request: Request<pb::DeleteDeviceRequest>) -> Reply<pb::DeleteDeviceResponse> {
        let id = phoenix_common::validate::id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async |c| {
            let current = repo::lock_by_id(c, id).await?.ok_or_else(|| Error::not_found("device", id))?;
            if current.device_type == TYPE_VIRTUAL {
                return Err(Error::precondition(
                    "SYSTEM_DEVICE",
                    "the virtual web device is part of the system and cannot be deleted",
                ));
            }
            repo::delete_device(c, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(id, "device deleted");
        Ok(Response::new(pb::DeleteDeviceResponse {}))
    }

    async fn list_device_logs(&self, request: Request<pb::ListDeviceLogsRequest>) -> Reply<pb::ListDeviceLogsResponse> {
        let cmd = validate::list_logs(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        if repo::find_by_id(&mut conn, cmd.device).await?.is_none() {
            return Err(Error::not_found("device", cmd.device).into());
        }
        let rows = repo::list_logs(&mut conn, cmd.device, cmd.event, cmd.before, cmd.page.fetch_limit()).await?;
        let total_size = repo::count_logs(&mut conn, cmd.device, cmd.event).await?;
        let (rows, next_page_token) = cmd.page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListDeviceLogsResponse {
            logs: rows.into_iter().map(convert::log).collect(),
            next_page_token,
            total_size,
        }))
    }
}
