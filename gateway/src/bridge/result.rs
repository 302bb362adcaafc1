//! Results: converted from `ProcessScanResponse` and published on the reader's result topic.

use phoenix_proto::active::v1 as pb;
use phoenix_reader_protocol::{Code, Outcome, ResultRoom, ResultStudent, ScanResult, topics};
use rumqttc::QoS;

use super::{BridgeStats, Context};

impl Context {
    /// Publishes the Result of a scan that reached the gateway at `received`, and counts it
    /// (`phoenix_scans_total`, `phoenix_scan_roundtrip_seconds`).
    pub(super) async fn answer(&self, device: &str, result: &ScanResult, received: std::time::Instant) {
        self.publish_result(device, result).await;
        let (outcome, code) = (result.outcome.as_str(), result.code.as_str());
        phoenix_common::metrics::scan_answered(outcome, code, result.duplicate, received.elapsed());
    }

    pub(super) async fn publish_result(&self, device: &str, result: &ScanResult) {
        let topic = topics::result(&self.prefix, device);
        match self.client.publish(topic, QoS::AtLeastOnce, false, result.to_json()).await {
            Ok(()) => BridgeStats::bump(&self.stats.results_published),
            Err(e) => tracing::warn!(%device, error = %e, "result could not be queued for publishing"),
        }
    }
}

/// The reader-facing Result of a `ProcessScanResponse`; `None` for values this gateway does
/// not know (a newer service: answered `internal`).
pub fn result_from_proto(r: pb::ProcessScanResponse) -> Option<ScanResult> {
    let outcome = match r.outcome() {
        pb::ScanOutcome::CheckedIn => Outcome::CheckedIn,
        pb::ScanOutcome::CheckedOut => Outcome::CheckedOut,
        pb::ScanOutcome::Transferred => Outcome::Transferred,
        pb::ScanOutcome::Rejected => Outcome::Rejected,
        pb::ScanOutcome::Unspecified => return None,
    };
    Some(ScanResult {
        scan_id: r.scan_id,
        outcome,
        code: Code::parse(&r.code)?,
        message: r.message,
        student: r.student.map(|s| ResultStudent { id: s.id, display_name: s.display_name }),
        room: r.room.map(|r| ResultRoom { id: r.id, name: r.name }),
        duplicate: r.duplicate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_convert_from_proto_and_reject_unknown_values() {
        let reply = pb::ProcessScanResponse {
            scan_id: "s".into(),
            outcome: pb::ScanOutcome::CheckedIn as i32,
            code: "ok".into(),
            message: "Eingecheckt: Raum A".into(),
            student: Some(pb::ScanStudent { id: 3, display_name: "Emma M.".into() }),
            room: Some(pb::ScanRoom { id: 4, name: "Raum A".into() }),
            duplicate: true,
        };
        let r = result_from_proto(reply.clone()).expect("known values");
        assert_eq!((r.outcome, r.code, r.duplicate), (Outcome::CheckedIn, Code::Ok, true));
        assert!(result_from_proto(pb::ProcessScanResponse { code: "new_code".into(), ..reply.clone() }).is_none());
        assert!(result_from_proto(pb::ProcessScanResponse { outcome: 0, ..reply }).is_none());
    }
}
