//! Serving a domain: the standard health and reflection services, binding its port, and
//! stopping gracefully (SIGTERM / Ctrl-C → health NOT_SERVING → drain → exit).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::authz::{Authorized, MethodTable, TokenVerifier};
use crate::config::Config;
use crate::db::DbPool;
use crate::domain::Domain;

/// What a domain's servers are built from: the process's pool, configuration, token
/// verifier (one key cache for every domain of the process) and shutdown token (background
/// tasks a server owns stop with it).
#[derive(Clone)]
pub struct DomainContext {
    /// The shared database pool.
    pub pool: DbPool,
    /// Where reads that tolerate replication lag go (the board, lists, analytics, reports):
    /// the read replica while it keeps up, else `pool` (`crate::db::ReadPool`).
    pub read: crate::db::ReadPool,
    /// Process configuration.
    pub config: Config,
    /// Verifies access tokens for every domain of the process.
    pub verifier: Arc<TokenVerifier>,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// Process-wide state a domain shares with the rest of the process, by type (the config
    /// domain's settings cache).
    pub extensions: http::Extensions,
}

impl std::fmt::Debug for DomainContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainContext").finish_non_exhaustive()
    }
}

/// The future [`DomainServers::add`] returns.
pub type AddServersFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// How a domain crate registers itself with the process (house style: every domain crate
/// exports one `pub const SERVERS: DomainServers` from its `lib.rs`, and the binary loops
/// over the list of them).
#[derive(Debug, Clone, Copy)]
pub struct DomainServers {
    /// Which domain.
    pub domain: Domain,
    /// Every gRPC service the domain's port serves (health and reflection report each).
    pub services: &'static [&'static str],
    /// The permission declarations of those services, one table per service.
    pub methods: &'static [MethodTable],
    /// Adds the domain's servers (each behind [`Authorized`]) to `routes`.
    pub add: for<'a> fn(&'a mut ServiceRoutes, &'a DomainContext) -> AddServersFuture<'a>,
    /// The domain's scheduled jobs ([`crate::jobs::no_jobs`] for none): the process serving
    /// the domain schedules them, `phoenix jobs run` runs one by hand.
    pub jobs: fn(&DomainContext) -> Vec<crate::jobs::JobSpec>,
}

/// Routes for one process-facing server, pre-filled with `grpc.health.v1.Health` and server
/// reflection (v1 and v1alpha, so every `grpcurl` version can list and describe).
///
/// A domain's own servers can only be added behind the authorization layer
/// ([`ServiceRoutes::add_service`] takes an [`Authorized`] server), so no RPC can be served
/// without a permission declaration.
pub struct ServiceRoutes {
    builder: RoutesBuilder,
    /// Reports the serving status of each named service.
    pub health: HealthReporter,
    names: Vec<String>,
}

impl std::fmt::Debug for ServiceRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRoutes").field("names", &self.names).finish()
    }
}

/// The services reflection advertises besides a server's own.
const STANDARD_SERVICES: [&str; 3] =
    ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

impl ServiceRoutes {
    /// Health + reflection for a domain port whose services are `names`: health reports
    /// each, and reflection lists exactly these plus health and reflection (every type of
    /// the descriptor set can still be described).
    pub fn new(names: &[&str]) -> anyhow::Result<Self> {
        Self::build(names, false)
    }

    /// Health for `names` and reflection listing every Phoenix service: the gateway, which
    /// forwards all of them.
    pub fn listing_all(names: &[&str]) -> anyhow::Result<Self> {
        Self::build(names, true)
    }

    fn build(names: &[&str], list_all: bool) -> anyhow::Result<Self> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let configure = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(phoenix_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
            if !list_all {
                for name in names.iter().chain(&STANDARD_SERVICES) {
                    builder = builder.with_service_name(*name);
                }
            }
            builder
        };
        let reflection_v1 = configure().build_v1()?;
        let reflection_v1alpha = configure().build_v1alpha()?;
        let mut builder = RoutesBuilder::default();
        builder.add_service(health_service).add_service(reflection_v1).add_service(reflection_v1alpha);
        Ok(Self { builder, health, names: names.iter().map(|n| n.to_string()).collect() })
    }

    /// Adds a domain server behind its authorization check.
    pub fn add_service<S>(&mut self, service: Authorized<S>) -> &mut Self
    where
        S: tonic::codegen::Service<
                tonic::codegen::http::Request<tonic::body::Body>,
                Response = tonic::codegen::http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.builder.add_service(service);
        self
    }

    /// The service names health reports for this server.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Marks every named service SERVING and returns the finished routes.
    pub async fn into_serving(self) -> (Routes, HealthReporter) {
        for name in &self.names {
            self.health.set_service_status(name, ServingStatus::Serving).await;
        }
        (self.builder.routes(), self.health)
    }
}

/// Binds `host:port`. When `fallback` is set and the port is taken, binds an ephemeral port
/// instead (for `phoenix dev`, where a busy default port should not stop a demo).
pub async fn bind(host: IpAddr, port: u16, fallback: bool) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(SocketAddr::new(host, port)).await {
        Ok(l) => Ok(l),
        Err(e) if fallback && port != 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(port, "port in use; using a free one instead");
            Ok(TcpListener::bind(SocketAddr::new(host, 0)).await?)
        }
        Err(e) => Err(anyhow::anyhow!("cannot listen on {host}:{port}: {e}")),
    }
}

/// Serves `routes` on `listener` until `shutdown` is cancelled, then finishes in-flight
/// requests. `health` is flipped to NOT_SERVING first so load balancers stop routing here.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    health: HealthReporter,
    names: Vec<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let drain = async move {
        shutdown.cancelled().await;
        for name in &names {
            health.set_service_status(name, ServingStatus::NotServing).await;
        }
    };
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener), drain)
        .await?;
    Ok(())
}

/// Accepted connections with `TCP_NODELAY`: a unary gRPC response is written in pieces
/// (headers, data, trailers), and Nagle's algorithm with delayed ACKs would hold the last
/// piece back ~40 ms (`Server::tcp_nodelay` does not apply to an incoming stream).
pub fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send + 'static {
    use tokio_stream::StreamExt as _;
    TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn {
            let _ = stream.set_nodelay(true);
        }
        conn
    })
}

/// Cancels `token` on SIGTERM (Kubernetes) or Ctrl-C (a terminal).
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C only");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        token.cancel();
    });
}

pub use tokio_util::sync::CancellationToken as ShutdownToken;
