//! One `WatchPresence` stream: subscribe to the hub, read the backlog after the client's
//! cursor from the table, then follow the hub's batches; redact each event for the caller;
//! heartbeat when idle; end when the caller's access ends (token expiry, logout,
//! deactivation, a change of roles or permissions: `TokenVerifier::access_ended`, raced
//! against the whole stream) or the server shuts down.
//!
//! In the family view (a guardian) only events about the caller's own children are sent;
//! the cursor still moves past the others, so resuming works as in the school view.
//!
//! Every read a watcher makes (opening, backlog pages, lag re-reads, access refreshes) holds
//! a connection only under one of the bounded read permits of [`Limits`].
//!
//! The watcher keeps its own [`Cursor`] and sends an event only when the cursor does not
//! cover it yet, so the overlap between backlog and live batches is never sent twice. A
//! watcher that falls behind the broadcast channel (`Lagged`) re-reads from its cursor.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use phoenix_common::access::Caller;
use phoenix_common::db::DbPool;
use phoenix_common::time::business_date_in;
use phoenix_common::{Error, Result};
use phoenix_proto::active::v1 as pb;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::PresenceSettings;
use super::alerts::{self, Feed};
use super::board::{Access, View};
use super::convert::{self, Converted, Redaction};
use super::cursor::{Cursor, Position};
use super::feed::{self, Counting, Page, ReadOptions, Resolved};
use super::hub::{Batch, Hub, PAGE};
use super::limits::{Limits, Slot};
use super::repo::{self, Counts};

/// The response stream of one watcher.
pub type WatchStream = ReceiverStream<std::result::Result<pb::WatchPresenceResponse, Status>>;

/// Messages buffered per watcher before it waits for its client (the broadcast channel
/// behind it then fills, and the watcher re-reads from the table when it lags).
const BUFFER: usize = 64;

/// How long a new stream waits for a hub that has not started yet (database down).
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long the final status of a stream may wait for room in a client's buffer.
const FINAL_STATUS_WAIT: Duration = Duration::from_secs(5);

/// What a stream is opened on: the server's hub, pool, settings and limits, and the
/// stream's slot (held until the stream ends).
pub struct Open<'a> {
    pub hub: &'a Hub,
    pub pool: &'a DbPool,
    pub settings: &'a PresenceSettings,
    pub limits: &'a Arc<Limits>,
    pub slot: Slot,
    /// The process's alerts, when the stream asked for them (school view only).
    pub alerts: Option<&'a Feed>,
}

/// Opens a stream for `caller` in `view` after `cursor` (`None`: from now), ending with the
/// error `ended` resolves to (the caller's access ended). Cursor errors (expired, not of
/// this log) are the call's status, before any message.
pub async fn open(
    on: Open<'_>,
    caller: Caller,
    view: View,
    cursor: Option<Cursor>,
    ended: impl Future<Output = Error> + Send + 'static,
) -> Result<WatchStream> {
    let Open { hub, pool, settings, limits, slot, alerts } = on;
    match tokio::time::timeout(READY_WAIT, hub.ready()).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::Unavailable("the server is shutting down; reconnect with the last cursor".into()));
        }
        Err(_) => {
            return Err(Error::Unavailable("the presence stream is not ready (database unreachable); retry".into()));
        }
    }
    // Subscribe before reading anything (see the hub's ordering argument).
    let live = hub.subscribe();
    let mut conn = limits.conn(pool).await?;
    let today = business_date_in(Utc::now(), settings.timezone);
    let access = Access::load(&mut conn, caller, view, today).await?;
    let cursor = match cursor {
        Some(c) => c,
        None => Cursor::from_snapshot(repo::snapshot(&mut conn).await?.0),
    };
    let first = feed::read_page(&mut conn, &cursor, backlog_options(settings)).await?;
    let alerts = match alerts {
        Some(feed) => {
            let all = alerts::school(&mut conn, Utc::now(), &alerts::Rules::of_presence(settings)).await?;
            Some(feed.watch(alerts::visible(&all, &access)))
        }
        None => None,
    };
    drop(conn);

    let (out, stream) = mpsc::channel(BUFFER);
    let watcher = Watcher {
        hub: hub.clone(),
        pool: pool.clone(),
        settings: settings.clone(),
        limits: limits.clone(),
        _slot: slot,
        access,
        cursor,
        out,
        last_sent: Instant::now(),
        counts: None,
        alerts,
    };
    tokio::spawn(watcher.run(first, live, ended));
    Ok(ReceiverStream::new(stream))
}

fn backlog_options(settings: &PresenceSettings) -> ReadOptions {
    ReadOptions {
        limit: PAGE,
        resolve: true,
        counting: Counting::Query,
        supervision: false,
        check_cursor: true,
        timezone: settings.timezone,
    }
}

struct Watcher {
    hub: Hub,
    pool: DbPool,
    settings: PresenceSettings,
    limits: Arc<Limits>,
    /// This stream's slot among its caller's; freed when the watcher ends.
    _slot: Slot,
    access: Access,
    cursor: Cursor,
    out: mpsc::Sender<std::result::Result<pb::WatchPresenceResponse, Status>>,
    last_sent: Instant,
    /// The newest counts this watcher saw in a page or batch.
    counts: Option<Counts>,
    /// The alerts, when the stream asked for them.
    alerts: Option<alerts::Watch>,
}

/// Why a stream ends.
enum End {
    /// The client went away.
    Gone,
    /// Tell the client, then end.
    Status(Status),
}

impl From<Error> for End {
    fn from(e: Error) -> Self {
        End::Status(e.into())
    }
}

impl Watcher {
    async fn run(
        mut self,
        first: Page,
        live: broadcast::Receiver<Arc<Batch>>,
        ended: impl Future<Output = Error> + Send + 'static,
    ) {
        let out = self.out.clone();
        let end = tokio::select! {
            end = self.follow(first, live) => end,
            e = ended => {
                tracing::debug!(error = %e, "presence stream ended: the caller's access ended");
                Err(End::Status(e.into()))
            }
        };
        if let Err(End::Status(status)) = end {
            let _ = tokio::time::timeout(FINAL_STATUS_WAIT, out.send(Err(status))).await;
        }
    }

    async fn follow(&mut self, first: Page, mut live: broadcast::Receiver<Arc<Batch>>) -> Result<(), End> {
        let full = first.full;
        self.deliver_page(first).await?;
        if full {
            self.backlog().await?;
        }
        if let Some(first) = self.alerts.as_ref().map(|a| a.sent().to_vec()) {
            self.send(convert::alerts(&self.cursor, &first, Utc::now())).await?;
        }
        let mut refresh = tokio::time::interval(self.settings.access_refresh);
        refresh.tick().await;
        loop {
            let heartbeat_at = self.last_sent + self.settings.heartbeat;
            let shutdown = self.hub.shutdown().clone();
            tokio::select! {
                _ = shutdown.cancelled() => {
                    return Err(End::Status(Status::unavailable(
                        "the server is shutting down; reconnect with the last cursor",
                    )));
                }
                _ = self.out.closed() => return Err(End::Gone),
                batch = live.recv() => match batch {
                    Ok(batch) => self.deliver_batch(&batch).await?,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "presence watcher lagged; re-reading from its cursor");
                        self.backlog().await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(End::Status(Status::unavailable("presence stream closed; reconnect with the last cursor")));
                    }
                },
                _ = tokio::time::sleep_until(heartbeat_at) => self.heartbeat().await?,
                _ = refresh.tick() => {
                    self.refresh_access().await;
                    self.send_alerts().await?;
                }
                _ = alerts_changed(self.alerts.as_mut()) => self.send_alerts().await?,
            }
        }
    }

    /// Reads pages from the table after the cursor until below-horizon is exhausted.
    async fn backlog(&mut self) -> Result<(), End> {
        loop {
            let page = {
                let mut conn = self.limits.conn(&self.pool).await?;
                feed::read_page(&mut conn, &self.cursor, backlog_options(&self.settings)).await?
            };
            let full = page.full;
            if page.sessions_changed {
                self.access.set_supervision(&self.hub.supervision());
            }
            self.deliver_page(page).await?;
            if !full {
                return Ok(());
            }
        }
    }

    async fn deliver_page(&mut self, page: Page) -> Result<(), End> {
        self.deliver(&page.events, page.upto, page.counts, None).await
    }

    async fn deliver_batch(&mut self, batch: &Batch) -> Result<(), End> {
        if let Some(s) = &batch.supervision {
            self.access.set_supervision(s);
        }
        self.deliver(&batch.events, batch.upto, batch.counts, Some(&batch.converted)).await
    }

    /// Sends the events the cursor does not cover, in order, then moves the cursor to
    /// `upto` (everything up to it has been read). With `converted` (a hub batch's), an
    /// event is taken from there when this watcher's message is the shared one: its cursor
    /// holds no board snapshot (so it is the event's own position) and the counts are the
    /// batch's.
    async fn deliver(
        &mut self,
        events: &[Resolved],
        upto: Position,
        counts: Option<Counts>,
        converted: Option<&Converted>,
    ) -> Result<(), End> {
        if counts.is_some() {
            self.counts = counts;
        }
        let converted = converted.filter(|_| counts.is_some());
        for (i, e) in events.iter().enumerate() {
            if self.cursor.covers(e.position) {
                continue;
            }
            self.cursor.advance_to(e.position);
            if !self.access.admits(e.student.as_ref().map(|p| p.student_id)) {
                continue;
            }
            let event = match converted {
                Some(shared) if self.cursor.snapshot.is_none() => {
                    shared.get(events, i, Redaction::of(e, &self.access), counts.as_ref()).clone()
                }
                _ => convert::event(e, &self.access, self.counts.as_ref(), &self.cursor),
            };
            self.send(event).await?;
        }
        self.cursor.advance_to(upto);
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<(), End> {
        let counts = self.hub.counts();
        let counts = Some(&counts).filter(|_| self.access.view() == View::School);
        self.send(convert::heartbeat(&self.cursor, counts, Utc::now())).await
    }

    /// Reloads the caller's groups and sessions (substitutions start and end by date; a
    /// supervisor change may come without an event). Keeps the old set on failure.
    async fn refresh_access(&mut self) {
        let today = business_date_in(Utc::now(), self.settings.timezone);
        let loaded = async {
            let mut conn = self.limits.conn(&self.pool).await?;
            Access::load(&mut conn, self.access.caller, self.access.view(), today).await
        }
        .await;
        match loaded {
            Ok(access) => self.access = access,
            Err(e) => tracing::warn!(error = %e, "presence watcher: refreshing access failed; keeping the last"),
        }
    }

    /// An ALERTS event when the caller's alerts changed since the last one.
    async fn send_alerts(&mut self) -> Result<(), End> {
        let Some(changed) = self.alerts.as_mut().and_then(|a| a.next(&self.access)) else { return Ok(()) };
        self.send(convert::alerts(&self.cursor, &changed, Utc::now())).await
    }

    async fn send(&mut self, event: pb::PresenceEvent) -> Result<(), End> {
        self.last_sent = Instant::now();
        self.out.send(Ok(pb::WatchPresenceResponse { event: Some(event) })).await.map_err(|_| End::Gone)
    }
}

/// Resolves when the school's alerts changed; never without alerts.
async fn alerts_changed(alerts: Option<&mut alerts::Watch>) {
    match alerts {
        Some(a) => a.changed().await,
        None => std::future::pending().await,
    }
}
