//! The tonic implementation of `phoenix.iot.v1.IotService`: validate → (authorise, see
//! [`METHODS`]) → one transaction per write → repo → convert.

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::config::Secret;
use phoenix_common::db::DbPool;
use phoenix_common::pagination;
use phoenix_common::{Error, Result};
use phoenix_proto::iot::v1 as pb;
use serde_json::json;
use tonic::{Request, Response, Status};
use tracing::instrument;

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

fn unique_device_id(err: diesel::result::Error, device_id: &str) -> Error {
    use diesel::result::{DatabaseErrorKind, Error as D};
    match err {
        D::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            Error::AlreadyExists(format!("device {device_id:?} is already registered"))
        }
        other => other.into(),
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

    async fn conn(&self) -> Result<phoenix_common::db::DbConn<'_>> {
        Ok(self.pool.get().await?)
    }

    /// `RegisterDevice`.
    pub async fn register(&self, req: pb::RegisterDeviceRequest) -> Result<pb::RegisterDeviceResponse> {
        let cmd = validate::register(req)?;
        let initial_version = {
            use rand::RngExt as _;
            rand::rng().random_range(1..=MAX_INITIAL_KEY_VERSION)
        };
        let mut conn = self.conn().await?;
        let row = conn
            .transaction::<_, Error, _>(async move |conn| {
                if let Some(room) = cmd.room_id
                    && !repo::room_exists(conn, room).await?
                {
                    return Err(Error::invalid("room_id", format!("room {room} does not exist")));
                }
                if repo::find_by_device_id(conn, &cmd.device_id).await?.is_some() {
                    return Err(Error::AlreadyExists(format!("device {:?} is already registered", cmd.device_id)));
                }
                let row = repo::insert_device(
                    conn,
                    NewDevice {
                        device_id: &cmd.device_id,
                        device_type: TYPE_RFID_READER,
                        kind: cmd.kind.as_str(),
                        room_id: cmd.room_id,
                        name: cmd.name.as_deref(),
                        key_version: initial_version,
                    },
                )
                .await
                .map_err(|e| unique_device_id(e, &cmd.device_id))?;
                repo::insert_log(conn, row.id, LogEvent::Registered, json!({"kind": row.kind, "room_id": row.room_id}))
                    .await?;
                Ok(row)
            })
            .await?;
        tracing::info!(device = %row.device_id, id = row.id, "device registered");
        let device_key = self.key_for(&row);
        Ok(pb::RegisterDeviceResponse { device: Some(convert::device(row, Utc::now())), device_key })
    }

    /// `RotateDeviceKey`.
    pub async fn rotate_key(&self, req: pb::RotateDeviceKeyRequest) -> Result<pb::RotateDeviceKeyResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        let row = conn
            .transaction::<_, Error, _>(async move |conn| {
                let current = repo::lock_by_id(conn, id).await?.ok_or_else(|| Error::not_found("device", id))?;
                if current.device_type == TYPE_VIRTUAL {
                    return Err(Error::precondition("VIRTUAL_DEVICE", "the virtual web device has no key to rotate"));
                }
                let row = repo::bump_key_version(conn, id).await?;
                repo::insert_log(conn, id, LogEvent::KeyRotated, json!({"key_version": row.key_version})).await?;
                Ok(row)
            })
            .await?;
        tracing::info!(device = %row.device_id, key_version = row.key_version, "device key rotated");
        let device_key = self.key_for(&row);
        Ok(pb::RotateDeviceKeyResponse { device: Some(convert::device(row, Utc::now())), device_key })
    }

    /// `GetDevice`.
    pub async fn get(&self, req: pb::GetDeviceRequest) -> Result<pb::GetDeviceResponse> {
        let lookup = validate::get(req)?;
        let mut conn = self.conn().await?;
        let row = match &lookup {
            Lookup::Id(id) => repo::find_by_id(&mut conn, *id).await?.ok_or_else(|| Error::not_found("device", id))?,
            Lookup::DeviceId(d) => repo::find_by_device_id(&mut conn, d)
                .await?
                .ok_or_else(|| Error::not_found("device", format!("{d:?}")))?,
        };
        Ok(pb::GetDeviceResponse { device: Some(convert::device(row, Utc::now())) })
    }

    /// `ListDevices`.
    pub async fn list(&self, req: pb::ListDevicesRequest) -> Result<pb::ListDevicesResponse> {
        let now = Utc::now();
        let cmd = validate::list(req, now)?;
        let mut conn = self.conn().await?;
        let mut rows = repo::list_devices(&mut conn, &cmd.filter, cmd.after, cmd.page_size + 1).await?;
        let total_size = repo::count_devices(&mut conn, &cmd.filter).await?;
        let next_page_token = pagination::finish_page(&mut rows, cmd.page_size, |r| r.id);
        Ok(pb::ListDevicesResponse {
            devices: rows.into_iter().map(|r| convert::device(r, now)).collect(),
            next_page_token,
            total_size,
        })
    }

    /// `UpdateDevice`.
    pub async fn update(&self, req: pb::UpdateDeviceRequest) -> Result<pb::UpdateDeviceResponse> {
        let cmd = validate::update(req)?;
        let mut conn = self.conn().await?;
        let row = conn
            .transaction::<_, Error, _>(async move |conn| {
                let current =
                    repo::lock_by_id(conn, cmd.id).await?.ok_or_else(|| Error::not_found("device", cmd.id))?;
                if let Some(room_id) = cmd.room_id {
                    // The virtual device has kind `room` but is never bound; leave it alone.
                    if current.device_type != TYPE_VIRTUAL {
                        let kind = DeviceKind::parse(&current.kind)
                            .ok_or_else(|| anyhow::anyhow!("device {} has unknown kind", current.id))?;
                        validate::binding_after_update(kind, room_id)?;
                    }
                    if let Some(room) = room_id
                        && !repo::room_exists(conn, room).await?
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
                let row = repo::update_device(conn, cmd.id, &changes).await?;
                if row.status != current.status {
                    repo::insert_log(
                        conn,
                        row.id,
                        LogEvent::StatusChanged,
                        json!({"from": current.status, "to": row.status}),
                    )
                    .await?;
                }
                Ok(row)
            })
            .await?;
        Ok(pb::UpdateDeviceResponse { device: Some(convert::device(row, Utc::now())) })
    }

    /// `DeleteDevice`.
    pub async fn delete(&self, req: pb::DeleteDeviceRequest) -> Result<pb::DeleteDeviceResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |conn| {
            let current = repo::lock_by_id(conn, id).await?.ok_or_else(|| Error::not_found("device", id))?;
            if current.device_type == TYPE_VIRTUAL {
                return Err(Error::precondition(
                    "SYSTEM_DEVICE",
                    "the virtual web device is part of the system and cannot be deleted",
                ));
            }
            repo::delete_device(conn, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(id, "device deleted");
        Ok(pb::DeleteDeviceResponse {})
    }

    /// `ListDeviceLogs`.
    pub async fn list_logs(&self, req: pb::ListDeviceLogsRequest) -> Result<pb::ListDeviceLogsResponse> {
        let cmd = validate::list_logs(req)?;
        let mut conn = self.conn().await?;
        if repo::find_by_id(&mut conn, cmd.device).await?.is_none() {
            return Err(Error::not_found("device", cmd.device));
        }
        let mut rows = repo::list_logs(&mut conn, cmd.device, cmd.event, cmd.before, cmd.page_size + 1).await?;
        let total_size = repo::count_logs(&mut conn, cmd.device, cmd.event).await?;
        let next_page_token = pagination::finish_page(&mut rows, cmd.page_size, |r| r.id);
        Ok(pb::ListDeviceLogsResponse {
            logs: rows.into_iter().map(convert::log).collect(),
            next_page_token,
            total_size,
        })
    }
}

/// Whether a device status lets scans through (behaviour.md step 2).
pub fn accepts_scans(status: &str) -> bool {
    status == DeviceStatus::Active.as_str()
}

#[tonic::async_trait]
impl pb::iot_service_server::IotService for IotApi {
    #[instrument(skip_all, fields(device = %request.get_ref().device_id))]
    async fn register_device(
        &self,
        request: Request<pb::RegisterDeviceRequest>,
    ) -> Result<Response<pb::RegisterDeviceResponse>, Status> {
        Ok(Response::new(self.register(request.into_inner()).await?))
    }

    #[instrument(skip_all, fields(id = request.get_ref().id))]
    async fn rotate_device_key(
        &self,
        request: Request<pb::RotateDeviceKeyRequest>,
    ) -> Result<Response<pb::RotateDeviceKeyResponse>, Status> {
        Ok(Response::new(self.rotate_key(request.into_inner()).await?))
    }

    #[instrument(skip_all)]
    async fn get_device(
        &self,
        request: Request<pb::GetDeviceRequest>,
    ) -> Result<Response<pb::GetDeviceResponse>, Status> {
        Ok(Response::new(self.get(request.into_inner()).await?))
    }

    #[instrument(skip_all)]
    async fn list_devices(
        &self,
        request: Request<pb::ListDevicesRequest>,
    ) -> Result<Response<pb::ListDevicesResponse>, Status> {
        Ok(Response::new(self.list(request.into_inner()).await?))
    }

    #[instrument(skip_all, fields(id = request.get_ref().device.as_ref().map(|d| d.id)))]
    async fn update_device(
        &self,
        request: Request<pb::UpdateDeviceRequest>,
    ) -> Result<Response<pb::UpdateDeviceResponse>, Status> {
        Ok(Response::new(self.update(request.into_inner()).await?))
    }

    #[instrument(skip_all, fields(id = request.get_ref().id))]
    async fn delete_device(
        &self,
        request: Request<pb::DeleteDeviceRequest>,
    ) -> Result<Response<pb::DeleteDeviceResponse>, Status> {
        Ok(Response::new(self.delete(request.into_inner()).await?))
    }

    #[instrument(skip_all, fields(id = request.get_ref().id))]
    async fn list_device_logs(
        &self,
        request: Request<pb::ListDeviceLogsRequest>,
    ) -> Result<Response<pb::ListDeviceLogsResponse>, Status> {
        Ok(Response::new(self.list_logs(request.into_inner()).await?))
    }
}
