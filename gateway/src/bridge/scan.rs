//! A scan from its payload to its Result: decode, reader look-up, signature, rate limit,
//! ProcessScan with retries of transient failures ([`retryable`]) within the retry budget.

use std::time::{Duration, Instant};

use phoenix_iot::model::LogEvent;
use phoenix_iot::presence::Credentials;
use phoenix_proto::active::v1 as pb;
use phoenix_reader_protocol::{Code, Scan, ScanResult, decode_scan};

use super::queue::Slot;
use super::result::result_from_proto;
use super::{BridgeStats, Context};

/// Exponential backoff within [`BridgeConfig::retry_budget`](super::BridgeConfig::retry_budget) for one scan.
struct Backoff {
    started: Instant,
    delay: Duration,
    budget: Duration,
}

impl Backoff {
    fn new(budget: Duration) -> Self {
        Self { started: Instant::now(), delay: Duration::from_millis(100), budget }
    }

    /// Waits before the next attempt (without holding `slot`); false when the budget is spent
    /// or the bridge is stopping.
    async fn wait(&mut self, ctx: &Context, slot: &mut Slot<'_>) -> bool {
        let left = self.budget.saturating_sub(self.started.elapsed());
        if left.is_zero() || ctx.shutdown.is_cancelled() {
            return false;
        }
        BridgeStats::bump(&ctx.stats.retries);
        slot.release();
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return false,
            _ = tokio::time::sleep(self.delay.min(left)) => {}
        }
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        slot.take().await;
        true
    }
}

impl Context {
    /// Calls ProcessScan, retrying transient failures ([`retryable`]) with `backoff`.
    async fn process(
        &self,
        device: &str,
        scan: &Scan,
        backoff: &mut Backoff,
        slot: &mut Slot<'_>,
    ) -> Result<ScanResult, Failure> {
        let scanned_at = scan.scanned_at_utc().ok_or(Failure::Final(Code::Malformed))?;
        let request = pb::ProcessScanRequest {
            device_id: device.to_owned(),
            scan_id: scan.scan_id.clone(),
            tag: scan.tag.clone(),
            scanned_at: Some(phoenix_common::time::to_timestamp(scanned_at)),
        };
        loop {
            let mut client = self.deps.active.clone();
            match client.process_scan(request.clone()).await {
                Ok(reply) => {
                    return result_from_proto(reply.into_inner()).ok_or_else(|| {
                        tracing::error!(%device, scan_id = %scan.scan_id, "ProcessScan returned an unknown outcome or code");
                        Failure::Final(Code::Internal)
                    });
                }
                Err(status) if retryable(status.code()) => {
                    tracing::debug!(%device, code = ?status.code(), "ProcessScan failed transiently; retrying");
                    if !backoff.wait(self, slot).await {
                        return Err(Failure::Retryable(status));
                    }
                }
                Err(status) => {
                    tracing::error!(%device, scan_id = %scan.scan_id, code = ?status.code(), message = status.message(), "ProcessScan failed");
                    let code =
                        if status.code() == tonic::Code::InvalidArgument { Code::Malformed } else { Code::Internal };
                    return Err(Failure::Final(code));
                }
            }
        }
    }

    /// [`Context::credentials`], retrying while the database is unreachable.
    async fn credentials_retrying(
        &self,
        device: &str,
        backoff: &mut Backoff,
        slot: &mut Slot<'_>,
    ) -> phoenix_common::Result<Option<Credentials>> {
        loop {
            match self.credentials(device, false).await {
                Err(e) if backoff.wait(self, slot).await => {
                    tracing::debug!(%device, error = %e, "reader look-up failed; retrying");
                }
                other => return other,
            }
        }
    }
}

/// How a ProcessScan call ended without a Result from the service.
enum Failure {
    /// Still failing transiently when the retry budget ran out: no Result (the reader
    /// re-sends).
    Retryable(tonic::Status),
    /// Answered with this rejection code; the reader does not re-send.
    Final(Code),
}

/// The gRPC codes of a ProcessScan failure that are retried and, past the retry budget,
/// left unanswered rather than answered `internal` (reader-pipeline.md "Failures"). The
/// transaction of a failed call has rolled back, so a retry is always safe. UNAUTHENTICATED
/// is the gateway's own token (the reader's identity is its signature, checked here): an
/// auth outage let it lapse. INTERNAL includes database errors of a restarting server.
pub fn retryable(code: tonic::Code) -> bool {
    use tonic::Code as C;
    matches!(
        code,
        C::Unavailable
            | C::DeadlineExceeded
            | C::ResourceExhausted
            | C::Aborted
            | C::Unknown
            | C::Cancelled
            | C::Unauthenticated
            | C::Internal
    )
}

pub(super) async fn handle_scan(ctx: &Context, device: &str, payload: &[u8], received: Instant, slot: &mut Slot<'_>) {
    let scan = match decode_scan(payload) {
        Ok(scan) => scan,
        Err(malformed) => {
            BridgeStats::bump(&ctx.stats.malformed);
            tracing::debug!(%device, reason = %malformed.error, "malformed scan");
            ctx.answer(device, &ScanResult::rejected(malformed.scan_id.unwrap_or_default(), Code::Malformed), received)
                .await;
            if let Ok(Some(c)) = ctx.credentials(device, false).await {
                ctx.log(device, c.id, LogEvent::Malformed, serde_json::json!({"reason": malformed.error.to_string()}))
                    .await;
            }
            return;
        }
    };
    let mut backoff = Backoff::new(ctx.config.retry_budget);
    let credentials = match ctx.credentials_retrying(device, &mut backoff, slot).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            BridgeStats::bump(&ctx.stats.unknown_device);
            tracing::info!(%device, scan_id = %scan.scan_id, "scan from an unknown device");
            ctx.answer(device, &ScanResult::rejected(scan.scan_id, Code::UnknownDevice), received).await;
            return;
        }
        Err(e) => {
            // The database is unreachable: leave the scan unanswered; the reader re-sends.
            BridgeStats::bump(&ctx.stats.unanswered);
            phoenix_common::metrics::scan_unanswered();
            tracing::warn!(%device, error = %e, "cannot look up the reader; scan left for a re-send");
            return;
        }
    };
    let verified = ctx.verifies(device, credentials, &scan)
        || match ctx.credentials(device, true).await {
            Ok(Some(fresh)) if fresh.key_version != credentials.key_version => ctx.verifies(device, fresh, &scan),
            _ => false,
        };
    if !verified {
        BridgeStats::bump(&ctx.stats.bad_signature);
        tracing::warn!(%device, scan_id = %scan.scan_id, "scan with a bad signature refused");
        ctx.answer(device, &ScanResult::rejected(scan.scan_id.clone(), Code::BadSignature), received).await;
        ctx.log(device, credentials.id, LogEvent::BadSignature, serde_json::json!({"scan_id": scan.scan_id})).await;
        return;
    }
    ctx.seen(device, credentials.id).await;
    // After the signature (forged scans cannot use up a reader's budget), before any
    // scan work: a runaway reader must not take the database with it. Nothing is stored,
    // so the same scan is applied normally if it comes again later.
    if ctx.limiter.check(device.to_owned(), Instant::now()).is_err() {
        BridgeStats::bump(&ctx.stats.rate_limited);
        tracing::debug!(%device, scan_id = %scan.scan_id, "scan over the reader's rate limit");
        ctx.answer(device, &ScanResult::rejected(scan.scan_id.clone(), Code::RateLimited), received).await;
        ctx.log(device, credentials.id, LogEvent::RateLimited, serde_json::json!({"scan_id": scan.scan_id})).await;
        return;
    }

    let result = match ctx.process(device, &scan, &mut backoff, slot).await {
        Ok(result) => result,
        Err(Failure::Retryable(status)) => {
            BridgeStats::bump(&ctx.stats.unanswered);
            phoenix_common::metrics::scan_unanswered();
            tracing::warn!(%device, scan_id = %scan.scan_id, code = ?status.code(), "ProcessScan still failing after the retry budget; scan left for a re-send");
            return;
        }
        Err(Failure::Final(code)) => ScanResult::rejected(scan.scan_id.clone(), code),
    };
    BridgeStats::bump(&ctx.stats.processed);
    if !result.duplicate {
        let event = match result.code {
            Code::StaleScan => Some(LogEvent::StaleScan),
            Code::DeviceInactive => Some(LogEvent::DeviceInactive),
            _ => None,
        };
        if let Some(event) = event {
            ctx.log(device, credentials.id, event, serde_json::json!({"scan_id": scan.scan_id})).await;
        }
    }
    ctx.answer(device, &result, received).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_retried_and_the_rest_is_final() {
        use tonic::Code as C;
        for code in [
            C::Unavailable,
            C::DeadlineExceeded,
            C::ResourceExhausted,
            C::Aborted,
            C::Unknown,
            C::Cancelled,
            C::Unauthenticated,
            C::Internal,
        ] {
            assert!(retryable(code), "{code:?}");
        }
        for code in [
            C::InvalidArgument,
            C::PermissionDenied,
            C::NotFound,
            C::AlreadyExists,
            C::FailedPrecondition,
            C::OutOfRange,
            C::Unimplemented,
            C::DataLoss,
        ] {
            assert!(!retryable(code), "{code:?}");
        }
    }
}
