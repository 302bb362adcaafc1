//! `phoenix-iot`: the `phoenix.iot.v1.IotService` (schema `iot`): RFID readers, their device
//! keys and their event log.
//!
//! Device keys are never stored: key = hex(HMAC-SHA256(`PHOENIX_DEVICE_KEY_SECRET`,
//! `device_id:key_version`)) (docs/reader-pipeline.md), shown once by `RegisterDevice` and
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
//! | [`log_purge`] | the daily job that drops device-log rows older than 90 days |

pub mod convert;
pub mod log_purge;
pub mod model;
pub mod presence;
pub mod repo;
pub mod service;
pub mod validate;

pub use service::{IotApi, METHODS, accepts_scans};

use phoenix_common::authz::Authorized;
use phoenix_common::domain::Domain;
use phoenix_common::server::{AddServersFuture, DomainContext, DomainServers, ServiceRoutes};
use phoenix_proto::iot::v1::iot_service_server::IotServiceServer;

/// This domain in the process: its gRPC service, permission table and servers.
pub const SERVERS: DomainServers = DomainServers {
    domain: Domain::Iot,
    services: &["phoenix.iot.v1.IotService"],
    methods: &[METHODS],
    add: add_servers,
    jobs: |_| vec![log_purge::spec()],
};

fn add_servers<'a>(routes: &'a mut ServiceRoutes, ctx: &'a DomainContext) -> AddServersFuture<'a> {
    Box::pin(async move {
        let secret = ctx.config.device_key_secret.clone().ok_or_else(|| {
            anyhow::anyhow!("PHOENIX_DEVICE_KEY_SECRET is not set: the iot service derives reader keys from it")
        })?;
        routes.add_service(Authorized::new(
            IotServiceServer::new(IotApi::new(ctx.pool.clone(), secret)),
            METHODS,
            ctx.verifier.clone(),
        )?);
        Ok(())
    })
}
