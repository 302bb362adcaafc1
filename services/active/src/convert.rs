//! domain → proto for the active service.

use phoenix_common::time::{to_timestamp, to_timestamp_opt};
use phoenix_proto::active::v1 as pb;
use phoenix_reader_protocol::{Outcome, ScanResult};

use crate::sessions::SessionView;

pub fn session(v: SessionView) -> pb::Session {
    let supervisors = v
        .supervisors
        .into_iter()
        .map(|s| pb::SessionSupervisor {
            staff_id: s.staff_id,
            role: match s.role.as_str() {
                "supervisor" => pb::SupervisorRole::Supervisor,
                "assistant" => pb::SupervisorRole::Assistant,
                _ => pb::SupervisorRole::Unspecified,
            } as i32,
            start_date: s.start_date.to_string(),
            end_date: s.end_date.map(|d| d.to_string()).unwrap_or_default(),
        })
        .collect();
    pb::Session {
        id: v.row.id,
        room_id: v.row.room_id,
        room_name: v.room_name,
        activity_id: v.row.activity_id,
        education_group_id: v.row.education_group_id,
        device_id: v.row.device_id,
        start_time: Some(to_timestamp(v.row.start_time)),
        end_time: to_timestamp_opt(v.row.end_time),
        last_activity_time: Some(to_timestamp(v.row.last_activity)),
        timeout_minutes: v.row.timeout_minutes,
        supervisors,
        open_visit_count: v.open_visits,
        running: v.row.end_time.is_none(),
    }
}

pub fn outcome(o: Outcome) -> pb::ScanOutcome {
    match o {
        Outcome::CheckedIn => pb::ScanOutcome::CheckedIn,
        Outcome::CheckedOut => pb::ScanOutcome::CheckedOut,
        Outcome::Transferred => pb::ScanOutcome::Transferred,
        Outcome::Rejected => pb::ScanOutcome::Rejected,
    }
}

pub fn scan_result(r: ScanResult) -> pb::ProcessScanResponse {
    pb::ProcessScanResponse {
        scan_id: r.scan_id,
        outcome: outcome(r.outcome) as i32,
        code: r.code.as_str().to_owned(),
        message: r.message,
        student: r.student.map(|s| pb::ScanStudent { id: s.id, display_name: s.display_name }),
        room: r.room.map(|r| pb::ScanRoom { id: r.id, name: r.name }),
        duplicate: r.duplicate,
    }
}
