//! Rows → proto messages, one free function per message.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use phoenix_common::convert::format_date;
use phoenix_common::time::BUSINESS_TZ;
use phoenix_proto::activities::v1 as pb;

use crate::repo::enrollment_lists::EnrolledRow;
use crate::repo::{ActivityDetails, ActivityRow, CategoryRow, ScheduleRow};

/// A category.
pub fn category(row: CategoryRow) -> pb::Category {
    pb::Category {
        id: row.id,
        name: row.name,
        description: row.description.unwrap_or_default(),
        color: row.color.unwrap_or_default(),
    }
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&BUSINESS_TZ).format("%H:%M").to_string()
}

/// A weekly schedule, its timeframe's times as local `HH:MM`.
pub fn schedule(row: ScheduleRow) -> pb::ActivitySchedule {
    pb::ActivitySchedule {
        id: row.id,
        activity_id: row.activity_id,
        weekday: i32::from(row.weekday),
        timeframe_id: row.timeframe_id.unwrap_or(0),
        start_time: row.start.map(local).unwrap_or_default(),
        end_time: row.end.map(local).unwrap_or_default(),
    }
}

/// Planned supervisors (staff id, primary).
pub fn supervisors(rows: Vec<(i64, bool)>) -> Vec<pb::Supervisor> {
    rows.into_iter().map(|(staff_id, is_primary)| pb::Supervisor { staff_id, is_primary }).collect()
}

/// A count as the API's `int32`.
pub fn count(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

/// Activities with their supervisors, schedules and enrollment counts.
pub fn activities(rows: Vec<ActivityRow>, details: ActivityDetails) -> Vec<pb::Activity> {
    let ActivityDetails { supervisors: mut sups, counts, schedules } = details;
    let mut scheds: HashMap<i64, Vec<pb::ActivitySchedule>> = HashMap::new();
    for s in schedules {
        scheds.entry(s.activity_id).or_default().push(schedule(s));
    }
    rows.into_iter()
        .map(|row| pb::Activity {
            id: row.id,
            name: row.name,
            max_participants: row.max_participants,
            is_open: row.is_open,
            category_id: row.category_id,
            planned_room_id: row.planned_room_id.unwrap_or(0),
            created_by_staff_id: row.created_by,
            supervisors: supervisors(sups.remove(&row.id).unwrap_or_default()),
            enrolled_count: count(counts.get(&row.id).copied().unwrap_or(0)),
            schedules: scheds.remove(&row.id).unwrap_or_default(),
        })
        .collect()
}

/// An enrolled pupil: id and display name (first name and last initial) only.
pub fn activity_enrollment(row: EnrolledRow) -> pb::ActivityEnrollment {
    pb::ActivityEnrollment {
        student_id: row.student_id,
        display_name: phoenix_reader_protocol::display_name(&row.first_name, &row.last_name),
        enrollment_date: format_date(row.enrollment_date),
    }
}

/// An activity of a pupil.
pub fn student_enrollment((activity_id, activity_name, date): (i64, String, NaiveDate)) -> pb::StudentEnrollment {
    pb::StudentEnrollment { activity_id, activity_name, enrollment_date: format_date(date) }
}
