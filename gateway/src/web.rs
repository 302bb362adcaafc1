//! The browser-facing server: gRPC and grpc-web (binary and text) on one port, HTTP/1.1 and
//! HTTP/2, with health and reflection. Forwarding of the domain APIs is added with the
//! live-presence work (ARCHITECTURE.md).

use phoenix_common::server::{ServiceRoutes, ShutdownToken};
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

/// Serves the gateway on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, shutdown: ShutdownToken) -> anyhow::Result<()> {
    let (routes, health) = ServiceRoutes::new(&[crate::GATEWAY_HEALTH_NAME])?.into_serving().await;
    let drain = async move {
        shutdown.cancelled().await;
        health.set_service_status(crate::GATEWAY_HEALTH_NAME, ServingStatus::NotServing).await;
    };
    tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_routes(routes)
        .serve_with_incoming_shutdown(phoenix_common::server::incoming(listener), drain)
        .await?;
    Ok(())
}
