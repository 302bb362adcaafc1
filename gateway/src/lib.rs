//! `phoenix-gateway`: Phoenix's edge.
//!
//! - [`broker`]: the embedded MQTT broker (rumqttd behind the credential and ACL proxy of
//!   [`broker_acl`]) that `phoenix dev` runs when `MQTT_URL`
//!   is unset; any standard broker works in its place.
//! - [`web`]: the browser-facing server — gRPC and grpc-web (tonic-web) over HTTP/1.1 and
//!   HTTP/2, assembled from [`route`] (what answers a call), [`forward`] (to the domain
//!   services), [`cors`], [`headers`] (security headers), [`limits`] (request size),
//!   [`rate`] (token buckets per client, and per reader for the bridge), [`client_addr`] (the
//!   real client address: trusted proxies, the signed header for the services), [`grpc`] (protocol, errors) and [`assets`] (the
//!   embedded dashboard).
//! - [`bridge`]: the MQTT reader bridge (signed scans → `active.v1 ProcessScan` → results).
//! - [`auth`]: the seam for the gateway's service credential on outgoing calls.
//! - [`sim`]: a simulated reader speaking the reader protocol (`phoenix reader-sim`, tests).

pub mod assets;
pub mod auth;
pub mod bridge;
pub mod broker;
pub mod broker_acl;
pub mod client_addr;
pub mod cors;
pub mod forward;
pub mod grpc;
pub mod headers;
pub mod limits;
pub mod rate;
pub mod route;
pub mod sim;
pub mod web;

/// Name under which the gateway reports its own health.
pub const GATEWAY_HEALTH_NAME: &str = "phoenix.gateway";
