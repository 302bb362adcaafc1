//! The presence hub: one per active server process, shared by every watcher.
//!
//! - A dedicated (non-pooled) connection `LISTEN`s on [`PRESENCE_CHANNEL`]; a notification
//!   wakes the hub at once. The notification carries no data the hub trusts: it reads the
//!   log itself, after its position and below the horizon.
//! - A safety poll (every [`PresenceSettings::poll`]) reads too, because the horizon can
//!   advance without a notification (a transaction without presence events ends) and
//!   notifications are lost while the connection is down. The same tick pings the LISTEN
//!   connection; when it fails the hub reconnects with backoff and re-reads from its position,
//!   so nothing is missed.
//! - A notified event that is not below the horizon yet (an older transaction is still
//!   running) is retried quickly (2 ms doubling to 100 ms) instead of waiting for the poll.
//! - Each page is resolved once (names, rooms; who supervises what when sessions changed)
//!   and broadcast as a [`Batch`] to the process's watchers, which only redact. While nobody
//!   watches, pages are not resolved. The school-wide counts come from the hub's [`Tally`],
//!   which each page moves by the states of its own pupils (see [`super::tally`]).
//! - The log is purged every [`PresenceSettings::purge_every`] of events older than the
//!   retention ([`PresenceSettings::retention`], 48 h), by one replica at a time (advisory
//!   lock), recording the purged position so old cursors are answered CURSOR_EXPIRED.
//!
//! Ordering argument (no gap, no duplicate): a watcher subscribes *before* it reads its
//! backlog. Every batch sent after the subscription reaches it; every batch sent before
//! holds only events below a horizon read before the subscription, which the backlog (read
//! after it, below a horizon at least as high) contains. Duplicates are dropped by position.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures::{FutureExt as _, StreamExt as _};
use phoenix_common::db::DbPool;
use phoenix_common::server::ShutdownToken;
use phoenix_common::time::business_date_in;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::PresenceSettings;
use super::board::Supervision;
use super::convert::Converted;
use super::cursor::{Cursor, Position};
use super::feed::{self, Counting, ReadOptions, Resolved};
use super::repo::{self, Counts};
use super::tally::Tally;
use crate::events::PRESENCE_CHANNEL;

/// Events per page read from the log.
pub const PAGE: i64 = 500;

/// The `application_name` of the hub's LISTEN connection (visible in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "phoenix-presence-hub";

/// One page of the log, resolved, as every watcher of the process receives it.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub events: Vec<Resolved>,
    /// Every event up to here has been broadcast.
    pub upto: Position,
    pub counts: Option<Counts>,
    /// Set when the page started, ended or re-staffed sessions: who supervises what now.
    pub supervision: Option<Arc<Supervision>>,
    /// The events as watchers send them, converted once per redaction.
    pub converted: Converted,
}

#[derive(Debug, Default)]
struct Latest {
    counts: Counts,
    supervision: Arc<Supervision>,
}

#[derive(Debug)]
struct Shared {
    pool: DbPool,
    settings: PresenceSettings,
    sender: broadcast::Sender<Arc<Batch>>,
    latest: RwLock<Latest>,
    ready: watch::Receiver<bool>,
    shutdown: ShutdownToken,
    /// Receivers of the process itself (the alert feed), not counted as watchers.
    internal: std::sync::atomic::AtomicUsize,
}

/// A handle on the process's hub (cheap to clone).
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

impl Hub {
    /// Starts the hub's tasks; they stop when `shutdown` is cancelled.
    pub fn start(pool: DbPool, settings: PresenceSettings, shutdown: ShutdownToken) -> Self {
        let (sender, _) = broadcast::channel(settings.channel_capacity.max(1));
        let (ready_tx, ready) = watch::channel(false);
        let shared = Arc::new(Shared {
            pool,
            settings,
            sender,
            latest: RwLock::default(),
            ready,
            shutdown,
            internal: Default::default(),
        });
        tokio::spawn(run(shared.clone(), ready_tx));
        tokio::spawn(purge_loop(shared.clone()));
        let watched = Arc::downgrade(&shared);
        phoenix_common::metrics::sampled_gauge(phoenix_common::metrics::PRESENCE_WATCHERS, &[], move || {
            watched.upgrade().map(|s| {
                let internal = std::sync::atomic::AtomicUsize::load(&s.internal, std::sync::atomic::Ordering::Relaxed);
                s.sender.receiver_count().saturating_sub(internal) as f64
            })
        });
        Self { shared }
    }

    /// Waits until the hub knows its starting position (watchers must not subscribe
    /// earlier); `false` when the server shuts down first.
    pub async fn ready(&self) -> bool {
        let mut ready = self.shared.ready.clone();
        tokio::select! {
            r = ready.wait_for(|r| *r) => r.is_ok(),
            _ = self.shared.shutdown.cancelled() => false,
        }
    }

    /// A receiver of every batch broadcast from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.shared.sender.subscribe()
    }

    /// [`Hub::subscribe`] for the process's own consumers (the alert feed): kept for the
    /// hub's life and not counted in `phoenix_presence_watchers`.
    pub fn subscribe_internal(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.shared.internal.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.shared.sender.subscribe()
    }

    /// The latest school-wide counts.
    pub fn counts(&self) -> Counts {
        self.shared.latest.read().map(|l| l.counts).unwrap_or_default()
    }

    /// Who supervises what, as last read.
    pub fn supervision(&self) -> Arc<Supervision> {
        self.shared.latest.read().map(|l| l.supervision.clone()).unwrap_or_default()
    }

    /// Cancelled when the server shuts down.
    pub fn shutdown(&self) -> &ShutdownToken {
        &self.shared.shutdown
    }
}

/// The hub's reading state (owned by its task).
struct Reader {
    shared: Arc<Shared>,
    position: Position,
    tally: Tally,
}

async fn run(shared: Arc<Shared>, ready: watch::Sender<bool>) {
    let mut backoff = Duration::from_millis(100);
    // The starting position: everything below the current horizon is history that
    // watchers read from the table themselves.
    let position = loop {
        match start_position(&shared).await {
            Ok(p) => break p,
            Err(e) => {
                tracing::warn!(error = %e, "presence hub: cannot read the event log yet; retrying");
                if !pause(&shared.shutdown, &mut backoff).await {
                    return;
                }
            }
        }
    };
    let mut reader = Reader { shared: shared.clone(), position, tally: Tally::default() };
    if let Err(e) = reader.recount().await {
        tracing::warn!(error = %e, "presence hub: initial counts failed; they follow with the first page");
    }
    if let Err(e) = reader.refresh_supervision().await {
        tracing::warn!(error = %e, "presence hub: reading who supervises what failed; it follows with the first change");
    }
    let _ = ready.send(true);
    tracing::info!(tx = position.tx, "presence hub started");
    loop {
        let started = Instant::now();
        match reader.listen().await {
            Ok(()) => return, // shutdown
            Err(e) => {
                if started.elapsed() > Duration::from_secs(30) {
                    backoff = Duration::from_millis(100); // it had been up for a while
                }
                tracing::warn!(error = %e, "presence hub: LISTEN connection lost; reconnecting");
                if !pause(&shared.shutdown, &mut backoff).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps `backoff` (doubling it up to 30 s); `false` on shutdown.
async fn pause(shutdown: &ShutdownToken, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(Duration::from_secs(30));
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = shutdown.cancelled() => false,
    }
}

async fn start_position(shared: &Shared) -> anyhow::Result<Position> {
    let mut conn = shared.pool.get().await?;
    let (snapshot, _) = repo::snapshot(&mut conn).await?;
    Ok(Position::horizon(snapshot.xmin))
}

impl Reader {
    fn options(&self, resolve: bool, counting: Counting) -> ReadOptions {
        ReadOptions {
            limit: PAGE,
            resolve,
            counting,
            supervision: true,
            check_cursor: false,
            timezone: self.shared.settings.timezone,
        }
    }

    fn watched(&self) -> bool {
        self.shared.sender.receiver_count() > 0
    }

    /// Listens until the connection fails (`Err`) or the server shuts down (`Ok`).
    async fn listen(&mut self) -> anyhow::Result<()> {
        let settings = self.shared.settings.clone();
        let mut conn = phoenix_common::db::listen_connection(&self.shared.pool).await?;
        diesel::sql_query(format!("SET application_name = '{APPLICATION_NAME}'")).execute(&mut conn).await?;
        // The page reads are prepared once (repo.rs) and would still be planned again on
        // every page: their generic plans are costed above the custom ones, so PostgreSQL
        // keeps planning, which took a third of this connection's CPU under reader-bench. The
        // generic plans are the same index lookups (docs/performance.md "Prepared once"); a
        // statement added to the hub's pages needs its generic plan checked.
        diesel::sql_query("SET plan_cache_mode = force_generic_plan").execute(&mut conn).await?;
        diesel::sql_query(format!("LISTEN {PRESENCE_CHANNEL}")).execute(&mut conn).await?;
        // Whatever committed while (re)connecting: LISTEN is in place, so anything later
        // notifies.
        self.catch_up(&mut conn).await?;

        let mut poll = tokio::time::interval(settings.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        let mut refresh = tokio::time::interval(settings.access_refresh);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.tick().await;
        // Notified events not read yet, and the quick retry for them.
        let mut pending: HashMap<i64, Instant> = HashMap::new();
        let mut retry = RETRY_MIN;
        // The tally's recount on the side (a pool connection), while pages go on.
        let mut recount: Option<JoinHandle<anyhow::Result<Recounted>>> = None;
        self.tally.abandon_recount(); // one the previous connection left in flight
        loop {
            let wake = {
                let mut notices = std::pin::pin!(conn.notifications_stream());
                let retry_at = Instant::now() + retry;
                let wake = tokio::select! {
                    _ = self.shared.shutdown.cancelled() => return Ok(()),
                    n = notices.next() => note(&mut pending, n)?,
                    _ = poll.tick() => Wake::Poll,
                    _ = refresh.tick() => Wake::Refresh,
                    _ = tokio::time::sleep_until(retry_at), if !pending.is_empty() => Wake::Retry,
                    r = async {
                        match recount.as_mut() {
                            Some(task) => task.await,
                            None => std::future::pending().await,
                        }
                    } => {
                        recount = None;
                        Wake::Recounted(r.map_err(anyhow::Error::from).and_then(|r| r))
                    }
                };
                if matches!(wake, Wake::Notified) {
                    // A burst of commits: take every notification already here, one read.
                    while let Some(n) = notices.next().now_or_never() {
                        note(&mut pending, n)?;
                    }
                }
                wake
            };
            match wake {
                Wake::Poll => {
                    // A dead connection (no RST) would never error by itself.
                    tokio::time::timeout(Duration::from_secs(5), diesel::sql_query("SELECT 1").execute(&mut conn))
                        .await
                        .map_err(|_| anyhow::anyhow!("LISTEN connection ping timed out"))??;
                }
                Wake::Refresh => {
                    if let Err(e) = self.refresh_supervision().await {
                        tracing::warn!(error = %e, "presence hub: refreshing who supervises what failed");
                    }
                }
                Wake::Recounted(r) => self.finish_recount(&mut conn, r).await,
                // Fresh commits: retry soon; the same ones still waiting: back off.
                Wake::Notified => retry = RETRY_MIN,
                Wake::Retry => retry = (retry * 2).min(RETRY_MAX),
            }
            match self.catch_up(&mut conn).await {
                Ok(read) => {
                    let give_up = settings.poll * 2;
                    pending.retain(|id, since| !read.contains(id) && since.elapsed() < give_up);
                    if pending.is_empty() {
                        retry = RETRY_MIN;
                    }
                }
                // A query failure; the next tick retries (and its ping finds a broken connection).
                Err(e) => tracing::warn!(error = %e, "presence hub: reading the event log failed"),
            }
            if recount.is_none() && self.watched() && self.tally.recount_due(Instant::now()) {
                recount = Some(self.begin_recount());
            }
        }
    }

    /// Reads, resolves and broadcasts every page below the horizon; returns the ids read.
    /// The pages are read on the hub's own connection `conn` (no pool checkout and its
    /// validity query per page; notifications wait in it meanwhile). Each page moves the
    /// [`Tally`] by the states of the pupils its events changed, and counts every pupil again
    /// when the tally asks for it.
    async fn catch_up(&mut self, conn: &mut AsyncPgConnection) -> anyhow::Result<HashSet<i64>> {
        let mut read = HashSet::new();
        loop {
            // Whether anyone watches, checked before and after the read: a watcher that
            // subscribes after the second check reads its backlog below a horizon at least
            // as high as this page's, so skipping the broadcast (and the resolving) of an
            // unwatched page loses nothing (see the module docs).
            let watched = self.watched();
            // While nobody watches, the tally is left behind and counted again for the
            // first page someone watches.
            let now = Instant::now();
            let date = business_date_in(Utc::now(), self.shared.settings.timezone);
            let counting =
                if watched { Counting::States { date, all: !self.tally.is_of(date) } } else { Counting::None };
            let page = feed::read_page(conn, &Cursor::after(self.position), self.options(watched, counting)).await?;
            match page.states {
                Some(s) if s.all => self.tally.recount(s.date, s.states, now),
                Some(s) => self.tally.update(&s.asked, &s.states),
                None if page.ids.is_empty() => {}
                None => self.tally.invalidate(),
            }
            if !watched && self.watched() {
                continue; // someone subscribed during the read: read it again, resolved
            }
            read.extend(page.ids.iter().copied());
            let mut events = page.events;
            for e in &mut events {
                // The rooms' pupils as the tally holds them after this page.
                for (room, count) in
                    [(e.room_id, &mut e.room_student_count), (e.from_room_id, &mut e.from_room_student_count)]
                {
                    if let (Some(room), Some(count)) = (room, count.as_mut()) {
                        *count = self.tally.in_room(room);
                    }
                }
            }
            let supervision = page.supervision.map(Arc::new);
            let counts = self.tally.counts();
            if let Ok(mut latest) = self.shared.latest.write() {
                if let Some(s) = &supervision {
                    latest.supervision = s.clone();
                }
                if watched {
                    latest.counts = counts;
                }
            }
            if page.upto > self.position {
                self.position = page.upto;
                if watched {
                    let batch = Batch {
                        counts: (!events.is_empty()).then_some(counts),
                        events,
                        upto: page.upto,
                        supervision,
                        converted: Converted::default(),
                    };
                    // No receiver left is fine: the next watcher reads its backlog.
                    let _ = self.shared.sender.send(Arc::new(batch));
                }
            }
            if !page.full {
                return Ok(read);
            }
        }
    }

    /// Counts every pupil again (on a pool connection: the hub's position is below this
    /// snapshot's horizon, so every change this snapshot lacks comes in a later page).
    async fn recount(&mut self) -> anyhow::Result<()> {
        let mut conn = self.shared.pool.get().await?;
        let date = business_date_in(Utc::now(), self.shared.settings.timezone);
        let states = repo::pupil_states(&mut conn, date, repo::Pupils::All).await?;
        self.tally.recount(date, states, Instant::now());
        if let Ok(mut latest) = self.shared.latest.write() {
            latest.counts = self.tally.counts();
        }
        Ok(())
    }

    /// Starts a recount of every pupil on a pool connection (see [`super::tally`]).
    fn begin_recount(&mut self) -> JoinHandle<anyhow::Result<Recounted>> {
        let flight = self.tally.begin_recount();
        let began = Instant::now();
        let date = business_date_in(Utc::now(), self.shared.settings.timezone);
        let pool = self.shared.pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.get().await?;
            let states = repo::pupil_states(&mut conn, date, repo::Pupils::All).await?;
            Ok(Recounted { flight, date, began, states })
        })
    }

    /// Takes a recount on the side into the tally, and reads the pupils that pages updated
    /// meanwhile once more, on the hub's connection.
    async fn finish_recount(&mut self, conn: &mut AsyncPgConnection, recounted: anyhow::Result<Recounted>) {
        let Recounted { flight, date, began, states } = match recounted {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "presence hub: recounting every pupil failed; the next interval retries");
                self.tally.abandon_recount();
                return;
            }
        };
        let again = self.tally.finish_recount(flight, date, states, began);
        if !again.is_empty() {
            // In one snapshot with every pupil of later events it holds (see feed::states_after).
            match feed::read_states_after(conn, date, again, self.position).await {
                Ok(s) if s.all => self.tally.recount(s.date, s.states, Instant::now()),
                Ok(s) => self.tally.update(&s.asked, &s.states),
                Err(e) => {
                    tracing::warn!(error = %e, "presence hub: reading pupils after a recount failed; the next page recounts");
                    self.tally.invalidate();
                    return;
                }
            }
        }
        if let Ok(mut latest) = self.shared.latest.write() {
            latest.counts = self.tally.counts();
        }
    }

    /// Reloads who supervises what (in case a change came without an event).
    async fn refresh_supervision(&self) -> anyhow::Result<()> {
        let mut conn = self.shared.pool.get().await?;
        let supervision = Supervision::from_rows(&repo::supervision(&mut conn, None).await?);
        if let Ok(mut latest) = self.shared.latest.write()
            && *latest.supervision != supervision
        {
            latest.supervision = Arc::new(supervision);
        }
        Ok(())
    }
}

/// Why the hub woke up.
enum Wake {
    Notified,
    Poll,
    Refresh,
    Retry,
    Recounted(anyhow::Result<Recounted>),
}

/// A recount on the side, as [`Tally::finish_recount`] takes it.
struct Recounted {
    flight: u64,
    date: chrono::NaiveDate,
    began: Instant,
    states: Vec<(i64, repo::PupilState)>,
}

/// Records a notification's event id as pending.
fn note(
    pending: &mut HashMap<i64, Instant>,
    n: Option<diesel::QueryResult<diesel::pg::PgNotification>>,
) -> anyhow::Result<Wake> {
    match n {
        Some(Ok(n)) => {
            if let Ok(id) = n.payload.parse() {
                pending.insert(id, Instant::now());
            }
            Ok(Wake::Notified)
        }
        Some(Err(e)) => Err(e.into()),
        None => anyhow::bail!("the LISTEN connection closed"),
    }
}

const RETRY_MIN: Duration = Duration::from_millis(2);
const RETRY_MAX: Duration = Duration::from_millis(100);

async fn purge_loop(shared: Arc<Shared>) {
    let every = shared.settings.purge_every;
    let mut tick = tokio::time::interval_at(Instant::now() + every.min(Duration::from_secs(60)), every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let result = async {
            let mut conn = shared.pool.get().await?;
            Ok::<_, anyhow::Error>(super::purge(&mut conn, shared.settings.retention).await?)
        }
        .await;
        match result {
            Ok(Some(deleted)) if deleted > 0 => tracing::info!(deleted, "presence event log purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "presence event log purge failed"),
        }
    }
}
