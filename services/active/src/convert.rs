//! domain → proto for the active service, one function per message.

use chrono::NaiveDate;
use phoenix_common::convert::format_date;
use phoenix_common::time::{to_timestamp, to_timestamp_opt};
use phoenix_proto::active::v1 as pb;
use phoenix_reader_protocol::{Outcome, ScanResult};

use crate::attendance::{DayRow, Status};
use crate::combined::CombinedView;
use crate::sessions::SessionView;
use crate::visits::VisitView;

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

pub fn combined_group(v: CombinedView) -> pb::CombinedGroup {
    pb::CombinedGroup {
        id: v.row.id,
        name: v.row.name,
        room_id: v.row.room_id,
        room_name: v.room_name,
        notes: v.row.notes.unwrap_or_default(),
        created_by_staff_id: v.row.created_by,
        start_time: Some(to_timestamp(v.row.start_time)),
        end_time: to_timestamp_opt(v.row.end_time),
        running: v.row.end_time.is_none(),
        session_ids: v.session_ids,
    }
}

pub fn visit(v: VisitView) -> pb::Visit {
    pb::Visit {
        id: v.id,
        student_id: v.student_id,
        session_id: v.session_id,
        room_id: v.room_id,
        room_name: v.room_name,
        entry_time: Some(to_timestamp(v.entry_time)),
        exit_time: to_timestamp_opt(v.exit_time),
        open: v.exit_time.is_none(),
    }
}

/// The pupil's day `row` on `date`.
pub fn attendance(row: DayRow, date: NaiveDate) -> pb::Attendance {
    pb::Attendance {
        student_id: row.student_id,
        date: format_date(date),
        status: Status::parse(&row.status).unwrap_or(Status::Absent).to_pb() as i32,
        check_in_time: to_timestamp_opt(row.check_in_time),
        check_out_time: to_timestamp_opt(row.check_out_time),
        destination: destination(row.check_out_destination.as_deref()) as i32,
        checked_in_by_staff_id: row.checked_in_by,
        checked_out_by_staff_id: row.checked_out_by,
        room_id: row.room_id,
        session_id: row.session_id,
        closed_by_system: row.closed_by_system,
    }
}

fn destination(stored: Option<&str>) -> pb::CheckoutDestination {
    match stored {
        Some("zuhause") => pb::CheckoutDestination::Home,
        Some("unterwegs") => pb::CheckoutDestination::Underway,
        _ => pb::CheckoutDestination::Unspecified,
    }
}
