//! Per-reader bounded queues and tasks, and the fair share of [`BridgeConfig::shards`] they
//! work under.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use phoenix_reader_protocol::topics;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::acks::AckMsg;
use super::scan::handle_scan;
use super::status::handle_status;
use super::{BridgeConfig, Context, MAX_CACHE_ENTRIES};

pub(super) struct Job {
    pub(super) epoch: u64,
    pub(super) seq: Option<u64>,
    pub(super) kind: topics::Inbound,
    pub(super) device: String,
    pub(super) payload: Vec<u8>,
    /// When the event loop received it (`phoenix_scan_roundtrip_seconds` starts here).
    pub(super) received: Instant,
}

/// How long a reader's task waits for its next message before it ends (it is started again
/// by the next one).
const READER_IDLE: Duration = Duration::from_secs(30);

/// One bounded queue and one task per reader with messages in hand; the event loop owns it.
pub(super) struct Readers {
    ctx: Arc<Context>,
    acks: mpsc::UnboundedSender<AckMsg>,
    queues: HashMap<String, mpsc::Sender<Job>>,
    /// Messages queued and not yet taken up, across readers.
    queued: Arc<AtomicUsize>,
    /// Messages worked on at once.
    permits: Arc<Semaphore>,
    per_reader: usize,
    max_queued: usize,
    tasks: JoinSet<()>,
}

impl Readers {
    pub(super) fn new(ctx: Arc<Context>, acks: mpsc::UnboundedSender<AckMsg>, config: &BridgeConfig) -> Self {
        Self {
            ctx,
            acks,
            queues: HashMap::new(),
            queued: Arc::new(AtomicUsize::new(0)),
            permits: Arc::new(Semaphore::new(config.shards.max(1))),
            per_reader: config.reader_queue.max(1),
            max_queued: config.max_queued.max(1),
            tasks: JoinSet::new(),
        }
    }

    /// Queues `job` on its reader's queue, never waiting; false when it was dropped (its
    /// reader's queue or the bridge is full), counted `overflow`.
    pub(super) fn dispatch(&mut self, job: Job) -> bool {
        while self.tasks.try_join_next().is_some() {}
        let mut job = job;
        if self.queued.load(Ordering::Relaxed) < self.max_queued {
            for _ in 0..2 {
                let Some(tx) = self.sender(&job.device) else { break };
                match tx.try_send(job) {
                    Ok(()) => {
                        self.queued.fetch_add(1, Ordering::Relaxed);
                        phoenix_common::metrics::bridge_queue_changed(1.0);
                        return true;
                    }
                    Err(mpsc::error::TrySendError::Full(back)) => {
                        job = back;
                        break;
                    }
                    // The reader's task just ended for idleness: start a new one.
                    Err(mpsc::error::TrySendError::Closed(back)) => {
                        self.queues.remove(&back.device);
                        job = back;
                    }
                }
            }
        }
        let overflow = self.ctx.stats.overflow.fetch_add(1, Ordering::Relaxed) + 1;
        phoenix_common::metrics::bridge_overflow();
        if overflow.is_power_of_two() {
            tracing::warn!(device = %job.device, overflow, "reader queue full; message dropped (the reader re-sends)");
        }
        false
    }

    /// The queue of `device`, starting its task when it has none.
    fn sender(&mut self, device: &str) -> Option<mpsc::Sender<Job>> {
        if let Some(tx) = self.queues.get(device) {
            return Some(tx.clone());
        }
        if self.queues.len() >= MAX_CACHE_ENTRIES {
            self.queues.retain(|_, tx| !tx.is_closed());
            if self.queues.len() >= MAX_CACHE_ENTRIES {
                return None;
            }
        }
        let (tx, rx) = mpsc::channel(self.per_reader);
        let (ctx, acks, permits, queued) =
            (self.ctx.clone(), self.acks.clone(), self.permits.clone(), self.queued.clone());
        self.tasks.spawn(reader_task(ctx, rx, acks, permits, queued));
        self.queues.insert(device.to_owned(), tx.clone());
        Some(tx)
    }

    /// Closes every queue and waits until the messages in hand are done.
    pub(super) async fn close(mut self) {
        self.queues.clear();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Works off one reader's queue in order; ends after [`READER_IDLE`] without messages.
async fn reader_task(
    ctx: Arc<Context>,
    mut rx: mpsc::Receiver<Job>,
    acks: mpsc::UnboundedSender<AckMsg>,
    permits: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
) {
    loop {
        let job = match tokio::time::timeout(READER_IDLE, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => break,
            Err(_idle) => {
                // No new message can be queued from here on; the ones already queued are
                // still worked off before `recv` says the queue is done.
                rx.close();
                continue;
            }
        };
        queued.fetch_sub(1, Ordering::Relaxed);
        phoenix_common::metrics::bridge_queue_changed(-1.0);
        let mut slot = Slot { permits: &permits, held: None };
        slot.take().await;
        match job.kind {
            topics::Inbound::Scan => {
                // One trace per scan, continued by ProcessScan (phoenix_common::trace_context).
                let span = tracing::info_span!("scan", device = %job.device);
                handle_scan(&ctx, &job.device, &job.payload, job.received, &mut slot).instrument(span).await
            }
            topics::Inbound::Status => handle_status(&ctx, &job.device, &job.payload).await,
        }
        drop(slot);
        if let Some(seq) = job.seq {
            let _ = acks.send(AckMsg::Done { epoch: job.epoch, seq });
        }
    }
}

/// A reader task's share of [`BridgeConfig::shards`]: held while it works, given up while
/// it waits out a backoff, so a retrying reader never holds up the others.
pub(super) struct Slot<'a> {
    permits: &'a Arc<Semaphore>,
    held: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Slot<'_> {
    pub(super) async fn take(&mut self) {
        if self.held.is_none() {
            self.held = self.permits.clone().acquire_owned().await.ok();
        }
    }

    pub(super) fn release(&mut self) {
        self.held = None;
    }
}
