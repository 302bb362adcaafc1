//! `phoenix.active.v1.PresenceService`: [`PresenceApi`], [`METHODS`] and the tonic trait
//! impl, whose methods are the handlers: the caller → validate → the board snapshot
//! ([`super::board`]; the school view cached per process, [`super::board_cache`]) or a
//! stream ([`super::watch`]) → convert. Who sees which pupil is [`super::board::Access`]
//! (the school view with `groups:read`, else the family view), applied inside both; how
//! many streams a caller may hold and what their reads may take of the pool is
//! [`super::limits`]. [`server`] returns [`PresenceServer`]: the generated server, with
//! `GetPresenceBoard` written from the board's encoded rooms and alerts
//! ([`convert::BoardCodec`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use phoenix_common::Reply;
use phoenix_common::authz::{AuthContext, MethodTable, Requirement, TokenVerifier};
use phoenix_common::caller::Caller;
use phoenix_common::db::DbPool;
use phoenix_common::server::ShutdownToken;
use phoenix_common::{Error, Result};
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::presence_service_server::{PresenceService, PresenceServiceServer};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::board::View;
use super::board_cache::BoardCache;
use super::limits::Limits;
use super::{Hub, PresenceSettings, alerts, board, convert, cursor::Cursor, watch};

/// The path of `GetPresenceBoard` ([`PresenceServer`] answers it).
const GET_PRESENCE_BOARD: &str = "/phoenix.active.v1.PresenceService/GetPresenceBoard";

/// The permission each presence RPC needs (both read the same data), checked by
/// `Authorized` before the handler runs. `presence:read` is held by staff and guardians;
/// what it shows depends on `groups:read` ([`View`]).
pub const METHODS: MethodTable = &[
    (GET_PRESENCE_BOARD, Requirement::Permission("presence:read")),
    ("/phoenix.active.v1.PresenceService/WatchPresence", Requirement::Permission("presence:read")),
];

/// The presence service of one process (its hub is shared by all clones).
#[derive(Clone)]
pub struct PresenceApi {
    pool: DbPool,
    settings: PresenceSettings,
    hub: Hub,
    verifier: Arc<TokenVerifier>,
    limits: Arc<Limits>,
    alerts: alerts::Feed,
    boards: Arc<BoardCache>,
}

impl std::fmt::Debug for PresenceApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceApi").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl PresenceApi {
    /// The service, starting the process's hub (stopped by `shutdown`, which also ends the
    /// open streams so the server can drain). `verifier` is the one of the authorization
    /// layer: a stream ends when its caller's access does.
    pub fn start(
        pool: DbPool,
        settings: PresenceSettings,
        shutdown: ShutdownToken,
        verifier: Arc<TokenVerifier>,
    ) -> Self {
        let hub = Hub::start(pool.clone(), settings.clone(), shutdown);
        let limits = Limits::new(&settings);
        let alerts = alerts::Feed::start(pool.clone(), settings.clone(), &hub, limits.clone());
        Self { pool, settings, hub, verifier, limits, alerts, boards: Arc::default() }
    }
}

/// The resume cursor of `WatchPresence`: none (start at the live edge) or one from an event
/// or `GetPresenceBoard`.
fn cursor(text: &str) -> Result<Option<Cursor>> {
    if text.is_empty() {
        return Ok(None);
    }
    let cursor = Cursor::decode(text).ok_or_else(|| {
        Error::invalid("cursor", "not a cursor of this stream; pass one from an event or GetPresenceBoard")
    })?;
    Ok(Some(cursor))
}

impl PresenceApi {
    /// The handler of `GetPresenceBoard` (the caller, the board, convert), shared by the two
    /// ways in: [`PresenceServer`]'s encoded answer and the generated trait's message.
    async fn board(&self, request: Request<pb::GetPresenceBoardRequest>) -> Result<convert::BoardReply> {
        let caller = Caller::of(&request, &self.pool).await?;
        let view = View::of(AuthContext::of(&request)?);
        let rules = alerts::Rules::of_presence(&self.settings);
        let board = board::load(&self.pool, &self.boards, caller, view, self.settings.timezone, &rules).await?;
        Ok(convert::board(board))
    }
}

#[tonic::async_trait]
impl PresenceService for PresenceApi {
    /// The board as a message, for the generated server on its own; [`PresenceServer`] (what
    /// [`server`] returns) writes it from the encoded rooms instead.
    async fn get_presence_board(
        &self,
        request: Request<pb::GetPresenceBoardRequest>,
    ) -> Reply<pb::GetPresenceBoardResponse> {
        Ok(Response::new(self.board(request).await?.decode()?))
    }

    type WatchPresenceStream = watch::WatchStream;

    async fn watch_presence(&self, request: Request<pb::WatchPresenceRequest>) -> Reply<Self::WatchPresenceStream> {
        let ctx = AuthContext::of(&request)?.clone();
        let slot = self.limits.claim(&ctx.principal)?;
        let caller = Caller::from_context(&ctx, &self.pool).await?;
        let cursor = cursor(&request.get_ref().cursor)?;
        let view = View::of(&ctx);
        let alerts = Some(&self.alerts).filter(|_| request.get_ref().alerts && view == View::School);
        let ended = {
            let verifier = self.verifier.clone();
            let ctx = ctx.clone();
            async move { verifier.access_ended(&ctx).await }
        };
        let on = watch::Open {
            hub: &self.hub,
            pool: &self.pool,
            settings: &self.settings,
            limits: &self.limits,
            slot,
            alerts,
        };
        let stream = watch::open(on, caller, view, cursor, ended).await?;
        Ok(Response::new(stream))
    }
}

/// The presence service's server: the generated one, except that `GetPresenceBoard` is
/// answered through [`convert::BoardCodec`], copying the school board's rooms as encoded once
/// per cache entry (the generated server would build and encode every pupil for every call).
#[derive(Clone)]
pub struct PresenceServer {
    api: PresenceApi,
    generated: PresenceServiceServer<PresenceApi>,
}

impl NamedService for PresenceServer {
    const NAME: &'static str = <PresenceServiceServer<PresenceApi> as NamedService>::NAME;
}

/// `GetPresenceBoard` as the unary service [`tonic::server::Grpc`] runs.
struct BoardCall(PresenceApi);

impl UnaryService<pb::GetPresenceBoardRequest> for BoardCall {
    type Response = convert::BoardReply;
    type Future = BoxFuture<Response<convert::BoardReply>, Status>;

    fn call(&mut self, request: Request<pb::GetPresenceBoardRequest>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { Ok(Response::new(api.board(request).await?)) })
    }
}

impl Service<http::Request<Body>> for PresenceServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != GET_PRESENCE_BOARD {
            return self.generated.call(request);
        }
        let call = BoardCall(self.api.clone());
        Box::pin(async move { Ok(tonic::server::Grpc::new(convert::BoardCodec).unary(call, request).await) })
    }
}

/// The tonic server of the presence service (starts its hub); put it behind `Authorized`
/// with the same `verifier`.
pub fn server(
    pool: DbPool,
    settings: PresenceSettings,
    shutdown: ShutdownToken,
    verifier: Arc<TokenVerifier>,
) -> PresenceServer {
    let api = PresenceApi::start(pool, settings, shutdown, verifier);
    PresenceServer { generated: PresenceServiceServer::new(api.clone()), api }
}
