//! `phoenix.active.v1.PresenceService`: [`PresenceApi`], [`METHODS`] and the tonic trait
//! impl, whose methods are the handlers: the caller → validate → the board snapshot
//! ([`super::board`]) or a stream ([`super::watch`]) → convert. Who sees which pupil is
//! [`super::board::Access`], applied inside both.

use phoenix_common::Reply;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::caller::Caller;
use phoenix_common::db::{self, DbPool};
use phoenix_common::server::ShutdownToken;
use phoenix_common::{Error, Result};
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::presence_service_server::{PresenceService, PresenceServiceServer};
use tonic::{Request, Response};

use super::{Hub, PresenceSettings, board, convert, cursor::Cursor, watch};

/// The permission each presence RPC needs (both read the same data), checked by
/// `Authorized` before the handler runs.
pub const METHODS: MethodTable = &[
    ("/phoenix.active.v1.PresenceService/GetPresenceBoard", Requirement::Permission("groups:read")),
    ("/phoenix.active.v1.PresenceService/WatchPresence", Requirement::Permission("groups:read")),
];

/// The presence service of one process (its hub is shared by all clones).
#[derive(Clone)]
pub struct PresenceApi {
    pool: DbPool,
    settings: PresenceSettings,
    hub: Hub,
}

impl std::fmt::Debug for PresenceApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceApi").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl PresenceApi {
    /// The service, starting the process's hub (stopped by `shutdown`, which also ends the
    /// open streams so the server can drain).
    pub fn start(pool: DbPool, settings: PresenceSettings, shutdown: ShutdownToken) -> Self {
        let hub = Hub::start(pool.clone(), settings.clone(), shutdown);
        Self { pool, settings, hub }
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

#[tonic::async_trait]
impl PresenceService for PresenceApi {
    async fn get_presence_board(
        &self,
        request: Request<pb::GetPresenceBoardRequest>,
    ) -> Reply<pb::GetPresenceBoardResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let mut conn = db::conn(&self.pool).await?;
        let board = board::load(&mut conn, caller, self.settings.timezone).await?;
        Ok(Response::new(convert::board(board)))
    }

    type WatchPresenceStream = watch::WatchStream;

    async fn watch_presence(&self, request: Request<pb::WatchPresenceRequest>) -> Reply<Self::WatchPresenceStream> {
        let caller = Caller::of(&request, &self.pool).await?;
        let cursor = cursor(&request.get_ref().cursor)?;
        let stream = watch::open(&self.hub, &self.pool, &self.settings, caller, cursor).await?;
        Ok(Response::new(stream))
    }
}

/// The tonic server of the presence service (starts its hub).
pub fn server(pool: DbPool, settings: PresenceSettings, shutdown: ShutdownToken) -> PresenceServiceServer<PresenceApi> {
    PresenceServiceServer::new(PresenceApi::start(pool, settings, shutdown))
}
