//! `phoenix-iot`: the `phoenix.iot.v1.IotService` (schema `iot`): RFID readers, their device
//! keys and their event log.
//!
//! Device keys are never stored: key = hex(HMAC-SHA256(`PHOENIX_DEVICE_KEY_SECRET`,
//! `device_id:key_version`)) (data-model.md `iot.devices`), shown once by `RegisterDevice` and
//! `RotateDeviceKey`; rotation increments the version, so the old key stops verifying.
//!
//! | module | holds |
//! |---|---|
//! | [`service`] | the tonic impl and [`METHODS`] |
//! | [`validate`] | requests → typed commands with field violations |
//! | [`convert`] | rows → proto |
//! | [`repo`] | diesel queries |
//! | [`model`] | status, kind and log-event values |
//! | [`presence`] | what the gateway records for readers (last seen, online/offline, refusals) |

pub mod convert;
pub mod model;
pub mod presence;
pub mod repo;
pub mod service;
pub mod validate;

pub use service::{IotApi, METHODS, accepts_scans};

use phoenix_common::config::Secret;
use phoenix_common::db::DbPool;
use phoenix_proto::iot::v1::iot_service_server::IotServiceServer;

/// The tonic server of the iot domain.
pub fn server(pool: DbPool, secret: Secret) -> IotServiceServer<IotApi> {
    IotServiceServer::new(IotApi::new(pool, secret))
}
