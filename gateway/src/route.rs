//! Which server answers a gRPC call at the gateway.
//!
//! - `phoenix.<domain>.v1.*` services (every service in the Phoenix descriptor set) are
//!   forwarded to their domain.
//! - `grpc.reflection.*` is answered here, describing every Phoenix service, so grpcurl
//!   works against the gateway alone.
//! - `grpc.health.v1.Health` is answered here for the gateway itself (`""`,
//!   `phoenix.gateway`); asked about a domain's service (`phoenix.users.v1.UsersService`),
//!   it is forwarded to that domain, so a browser can check or watch any domain's health.
//! - Anything else is UNIMPLEMENTED.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use bytes::{Buf as _, Bytes};
use http::{Request, Response};
use http_body_util::BodyExt as _;
use phoenix_common::domain::Domain;
use prost::Message as _;
use tonic::Status;
use tonic::body::Body;
use tonic::service::Routes;
use tower::ServiceExt as _;

use crate::forward::Upstreams;
use crate::grpc::Handle;

const HEALTH: &str = "grpc.health.v1.Health";
const LOCAL: [&str; 3] = [HEALTH, "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/// Every Phoenix service and its domain, from the descriptor set.
#[derive(Debug, Default)]
pub struct Catalog {
    services: HashMap<String, Domain>,
    server_streaming: HashSet<String>,
}

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Served by the gateway itself (reflection).
    Local,
    /// Health: the gateway's own, or forwarded, depending on the service asked about.
    Health,
    /// Forwarded to a domain.
    Forward(Domain),
    /// No such service here.
    Unknown(String),
}

impl Catalog {
    /// The services of an encoded `FileDescriptorSet` whose package is
    /// `phoenix.<domain>.v1`.
    pub fn from_descriptors(encoded: &[u8]) -> anyhow::Result<Self> {
        let set = prost_types::FileDescriptorSet::decode(encoded)?;
        let mut catalog = Catalog::default();
        for file in set.file {
            let package = file.package();
            let Some(domain) = package
                .strip_prefix("phoenix.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|d| d.parse::<Domain>().ok())
            else {
                continue;
            };
            for service in &file.service {
                let name = format!("{package}.{}", service.name());
                for method in &service.method {
                    if method.server_streaming() {
                        catalog.server_streaming.insert(format!("/{name}/{}", method.name()));
                    }
                }
                catalog.services.insert(name, domain);
            }
        }
        anyhow::ensure!(!catalog.services.is_empty(), "the descriptor set holds no Phoenix service");
        Ok(catalog)
    }

    /// The domain serving the gRPC service `name` (`phoenix.users.v1.UsersService`).
    pub fn domain_of(&self, service: &str) -> Option<Domain> {
        self.services.get(service).copied()
    }

    /// Where a call to `path` (`/package.Service/Method`) goes.
    pub fn target(&self, path: &str) -> Target {
        let service = path.strip_prefix('/').and_then(|p| p.split_once('/')).map(|(s, _)| s).unwrap_or_default();
        if service == HEALTH {
            Target::Health
        } else if LOCAL.contains(&service) {
            Target::Local
        } else if let Some(domain) = self.domain_of(service) {
            Target::Forward(domain)
        } else {
            Target::Unknown(service.to_owned())
        }
    }

    /// Whether `path` is a server-streaming method.
    pub fn is_server_streaming(&self, path: &str) -> bool {
        self.server_streaming.contains(path)
    }
}

/// The gRPC side of the gateway (behind the grpc-web translation): local services,
/// forwarding, UNIMPLEMENTED. Served as a [`crate::grpc::Handler`].
#[derive(Clone)]
pub struct ApiService {
    local: Routes,
    upstreams: Upstreams,
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for ApiService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiService").field("upstreams", &self.upstreams).finish_non_exhaustive()
    }
}

impl ApiService {
    /// Routes `local` (health, reflection) and the domains of `upstreams` by `catalog`.
    pub fn new(local: Routes, upstreams: Upstreams, catalog: Arc<Catalog>) -> Self {
        Self { local, upstreams, catalog }
    }

    async fn respond(self, request: Request<Body>) -> Response<Body> {
        let path = request.uri().path().to_owned();
        match self.catalog.target(&path) {
            Target::Local => self.local(request).await,
            Target::Forward(domain) => {
                let streaming = self.catalog.is_server_streaming(&path);
                self.upstreams.forward(domain, request, streaming).await
            }
            Target::Health => {
                let (parts, body) = request.into_parts();
                let bytes = match body.collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(status) => return status.into_http(),
                };
                let asked = health_service_asked(&bytes);
                let request = Request::from_parts(parts, Body::new(http_body_util::Full::new(bytes)));
                match asked.as_deref().and_then(|s| self.catalog.domain_of(s)) {
                    Some(domain) => self.upstreams.forward(domain, request, path.ends_with("/Watch")).await,
                    None => self.local(request).await,
                }
            }
            Target::Unknown(service) => {
                Status::unimplemented(format!("unknown service {service:?} at the Phoenix gateway")).into_http()
            }
        }
    }

    async fn local(&self, request: Request<Body>) -> Response<Body> {
        match self.local.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// The `service` field of a `grpc.health.v1.HealthCheckRequest` in one uncompressed gRPC
/// frame; `None` when the body is anything else (the health server then answers it).
fn health_service_asked(body: &Bytes) -> Option<String> {
    let mut frame = body.clone();
    if frame.remaining() < 5 || frame.get_u8() != 0 {
        return None;
    }
    let len = frame.get_u32() as usize;
    if frame.remaining() != len {
        return None;
    }
    tonic_health::pb::HealthCheckRequest::decode(frame).ok().map(|r| r.service)
}

impl Handle for ApiService {
    fn handle(self, request: Request<Body>) -> impl Future<Output = Response<Body>> + Send {
        self.respond(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::from_descriptors(phoenix_proto::FILE_DESCRIPTOR_SET).expect("descriptor set")
    }

    #[test]
    fn every_domain_service_is_forwarded_to_its_domain() {
        let c = catalog();
        for domain in Domain::ALL {
            assert_eq!(c.target(&format!("/{}/Anything", domain.grpc_service())), Target::Forward(domain), "{domain}");
        }
        assert_eq!(c.target("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"), Target::Local);
        assert_eq!(c.target("/grpc.health.v1.Health/Watch"), Target::Health);
        assert_eq!(c.target("/phoenix.nope.v1.NopeService/Get"), Target::Unknown("phoenix.nope.v1.NopeService".into()));
        assert_eq!(c.target("/phoenix.users.v1.Other/Get"), Target::Unknown("phoenix.users.v1.Other".into()));
        assert_eq!(c.target("/"), Target::Unknown(String::new()));
    }

    #[test]
    fn health_requests_are_read_from_their_frame() {
        let message = tonic_health::pb::HealthCheckRequest { service: "phoenix.users.v1.UsersService".into() };
        let encoded = message.encode_to_vec();
        let mut frame = vec![0];
        frame.extend((encoded.len() as u32).to_be_bytes());
        frame.extend(&encoded);
        assert_eq!(health_service_asked(&Bytes::from(frame.clone())).as_deref(), Some("phoenix.users.v1.UsersService"));
        frame[0] = 1; // compressed: not read here
        assert_eq!(health_service_asked(&Bytes::from(frame)), None);
        assert_eq!(health_service_asked(&Bytes::from_static(&[0, 0, 0, 0, 0])).as_deref(), Some(""));
        assert_eq!(health_service_asked(&Bytes::from_static(b"xx")), None);
    }
}
