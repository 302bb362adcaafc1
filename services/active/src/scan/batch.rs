//! Group commit of reader scans (issue 17; docs/performance.md "Group commit"): `ProcessScan`
//! hands its scan to a [`ScanCommitter`]; the scans that queue up while a transaction commits
//! are applied together in the next one — one `active.process_scans` call, one COMMIT, one WAL
//! flush — instead of one transaction each.
//!
//! Why: a scan's own statements cost the database ~2 ms; its transaction's commit (the WAL
//! flush) and round trips cost as much again, and sixteen transactions at once on a two-core
//! database spend the rest switching between backends. Measured with pgbench on the bench's
//! school (16 scans in flight): 430–460 scans/s one transaction each, 810 in two transactions
//! of eight.
//!
//! What a scan keeps:
//! - **A Result means committed**: every scan of a batch is answered after its COMMIT returned.
//! - **Exactly once, per-reader order, the locks**: a batch applies its scans in the order they
//!   arrived, each as `active.process_scan` — receipt first — so a scan repeated within a batch
//!   is a `duplicate`, and two scans of one pupil serialise on the pupil's row as before.
//! - **Nothing partial, one scan's failure is its own**: a batch that fails is rolled back
//!   whole and its scans are applied again one transaction each ([`super::process`]), so each
//!   gets the Result or the error it would have had alone (a transient fault: `Unavailable`).
//! - **No added wait**: a committer takes what has queued when it is free; a lone scan commits
//!   alone, at once, as before.
//!
//! `PHOENIX_SCAN_COMMITTERS` committers (default 1) share one queue, each taking up to
//! `PHOENIX_SCAN_BATCH_MAX` scans ([`MAX_BATCH`]; 1 turns group commit off). One by default:
//! the presence log is read below the oldest running transaction, so while two batches
//! overlap, the events of the one that commits first wait for the other's commit before any
//! watcher sees them (presence-bench, 500 watchers at 200 scans/s: p50 13–19 ms with one
//! committer, 28–36 ms with two), while the reader pipeline at 16 readers stayed within the
//! run-to-run noise (docs/performance.md "One committer"). Two batches hold their pupils' and sessions'
//! locks until they commit; two that lock the same two pupils in opposite orders deadlock,
//! PostgreSQL ends one after `deadlock_timeout` (1 s) and its scans are applied one by one — a
//! slow answer, never a wrong one. The live settings and `now` are read when a batch starts.

use std::sync::Arc;

use chrono::Utc;
use phoenix_common::db::{self, DbPool};
use phoenix_common::settings::LiveSettings;
use phoenix_common::{Error, Result};
use phoenix_reader_protocol::ScanResult;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{ScanCommand, ScanSettings};

/// Most scans one transaction applies by default (`PHOENIX_SCAN_BATCH_MAX`): a batch holds
/// its locks until it commits, and its first scan waits for its last.
pub const MAX_BATCH: usize = 16;

/// Scans waiting for a committer before `ProcessScan` waits to queue (back-pressure).
const QUEUE: usize = 1024;

/// One scan waiting for its Result.
struct Job {
    cmd: ScanCommand,
    reply: oneshot::Sender<Result<ScanResult>>,
}

/// The queue of scans and its committer tasks; cheap to clone. The committers end when the
/// last clone is dropped and the queue is empty.
#[derive(Clone)]
pub struct ScanCommitter {
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for ScanCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanCommitter").field("queued", &self.queued()).finish_non_exhaustive()
    }
}

impl ScanCommitter {
    /// Starts `committers` committer tasks on `pool` (at least one), each committing up to
    /// `max_batch` scans at once (at least one), reading the scan settings live from
    /// `settings`.
    pub fn start(pool: DbPool, settings: LiveSettings, committers: usize, max_batch: usize) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..committers.max(1) {
            tokio::spawn(commit_loop(pool.clone(), settings.clone(), jobs.clone(), max_batch.max(1)));
        }
        Self { queue }
    }

    /// Applies `cmd` exactly once (in a batch with the scans queued beside it) and returns its
    /// Result once it is committed.
    pub async fn process(&self, cmd: ScanCommand) -> Result<ScanResult> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Job { cmd, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Scans queued and not yet taken by a committer.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}

fn stopped() -> Error {
    Error::Unavailable("the scan committer has stopped (the service is shutting down); retry the scan".into())
}

/// One committer: takes the first queued scan and every scan queued behind it (up to
/// `max_batch`) and commits them, until the queue closes.
async fn commit_loop(pool: DbPool, settings: LiveSettings, jobs: Arc<Mutex<mpsc::Receiver<Job>>>, max_batch: usize) {
    loop {
        let batch = {
            let mut jobs = jobs.lock().await;
            let Some(first) = jobs.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        commit(&pool, ScanSettings::live(&settings), batch).await;
    }
}

/// Commits `batch` and answers each of its scans.
async fn commit(pool: &DbPool, settings: ScanSettings, batch: Vec<Job>) {
    let now = Utc::now();
    let (cmds, replies): (Vec<ScanCommand>, Vec<_>) = batch.into_iter().map(|j| (j.cmd, j.reply)).unzip();
    if cmds.len() > 1 {
        let applied = match db::conn(pool).await {
            Ok(mut conn) => super::process_batch(&mut conn, settings, &cmds, now).await,
            Err(e) => Err(e),
        };
        match applied {
            Ok(results) => {
                phoenix_common::metrics::scans_committed("batch", cmds.len());
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
                return;
            }
            Err(e) => {
                tracing::warn!(scans = cmds.len(), error = %e, "scan batch failed; applying its scans one by one");
                phoenix_common::metrics::scans_committed("one_by_one", cmds.len());
            }
        }
    } else {
        phoenix_common::metrics::scans_committed("single", 1);
    }
    for (cmd, reply) in cmds.into_iter().zip(replies) {
        let result = match db::conn(pool).await {
            Ok(mut conn) => super::process(&mut conn, settings, cmd, now).await,
            Err(e) => Err(e),
        };
        let _ = reply.send(result);
    }
}
