//! `phoenix-gateway`: Phoenix's edge.
//!
//! - [`broker`]: the embedded MQTT broker (rumqttd) that `phoenix dev` runs when `MQTT_URL`
//!   is unset; any standard broker works in its place.
//! - [`web`]: the browser-facing server — grpc-web (tonic-web) over HTTP/1.1 and HTTP/2.
//! - [`bridge`]: the MQTT reader bridge (signed scans → `active.v1 ProcessScan` → results).
//! - [`auth`]: the seam for the gateway's service credential on outgoing calls.
//! - [`rate_limit`]: token buckets per key (readers' scans; browser clients).
//! - [`sim`]: a simulated reader speaking the reader protocol (`phoenix reader-sim`, tests).
//!
//! Planned: forwarding of every domain's gRPC API to browsers.

pub mod auth;
pub mod bridge;
pub mod broker;
pub mod rate_limit;
pub mod sim;
pub mod web;

/// Name under which the gateway reports its own health.
pub const GATEWAY_HEALTH_NAME: &str = "phoenix.gateway";
