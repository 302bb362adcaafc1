//! Rows ⇄ domain ⇄ proto, one free function per message.

use chrono::NaiveTime;
use phoenix_common::time::{to_timestamp, to_timestamp_opt};
use phoenix_proto::schedule::v1 as pb;

use crate::recurrence::{End, Frequency, Rule};
use crate::repo::{ClassScheduleRow, DateframeRow, NewPattern, PatternRow, TimeframeRow, date_to_ts};

const WEEKDAYS: [&str; 7] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// A local time as the API's `HH:MM`.
pub fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

/// The row of a validated rule.
pub fn new_pattern(rule: &Rule) -> NewPattern {
    let (end_date, count) = match rule.end {
        End::Never => (None, None),
        End::Until(d) => (Some(date_to_ts(d)), None),
        End::Count(n) => (None, i32::try_from(n).ok()),
    };
    NewPattern {
        frequency: rule.frequency.as_str().to_owned(),
        interval_count: i32::try_from(rule.interval).unwrap_or(i32::MAX),
        weekdays: (!rule.weekdays.is_empty())
            .then(|| rule.weekdays.iter().map(|d| WEEKDAYS[usize::from(*d - 1)].to_owned()).collect()),
        month_days: (!rule.month_days.is_empty()).then(|| rule.month_days.iter().map(|d| i32::from(*d)).collect()),
        end_date,
        count,
    }
}

fn frequency_pb(f: Option<Frequency>) -> pb::Frequency {
    match f {
        Some(Frequency::Daily) => pb::Frequency::Daily,
        Some(Frequency::Weekly) => pb::Frequency::Weekly,
        Some(Frequency::Monthly) => pb::Frequency::Monthly,
        Some(Frequency::Yearly) => pb::Frequency::Yearly,
        None => pb::Frequency::Unspecified,
    }
}

/// A recurrence pattern.
pub fn pattern(row: PatternRow) -> pb::RecurrencePattern {
    pb::RecurrencePattern {
        id: row.id,
        frequency: frequency_pb(Frequency::parse(&row.frequency)) as i32,
        interval: row.interval_count,
        weekdays: row
            .weekdays
            .unwrap_or_default()
            .iter()
            .filter_map(|w| WEEKDAYS.iter().position(|x| x == w).map(|i| i as i32 + 1))
            .collect(),
        month_days: row.month_days.unwrap_or_default(),
        end_date: row.end_date.map(|d| d.date_naive().to_string()).unwrap_or_default(),
        count: row.count.unwrap_or(0),
    }
}

/// A timeframe.
pub fn timeframe(row: TimeframeRow) -> pb::Timeframe {
    pb::Timeframe {
        id: row.id,
        start_time: Some(to_timestamp(row.start_time)),
        end_time: to_timestamp_opt(row.end_time),
        is_active: row.is_active,
        description: row.description.unwrap_or_default(),
    }
}

/// A dateframe.
pub fn dateframe(row: DateframeRow) -> pb::Dateframe {
    pb::Dateframe {
        id: row.id,
        start_date: row.start_date.date_naive().to_string(),
        end_date: row.end_date.date_naive().to_string(),
        name: row.name.unwrap_or_default(),
        description: row.description.unwrap_or_default(),
    }
}

/// A class schedule.
pub fn class_schedule(row: ClassScheduleRow) -> pb::ClassSchedule {
    pb::ClassSchedule {
        id: row.id,
        education_group_id: row.group_id.unwrap_or(0),
        activity_id: row.activity_id.unwrap_or(0),
        room_id: row.room_id.unwrap_or(0),
        weekday: i32::from(row.weekday),
        timeframe_id: row.timeframe_id.unwrap_or(0),
        start_time: hhmm(row.start_time),
        end_time: hhmm(row.end_time),
        description: row.description.unwrap_or_default(),
    }
}

/// A count as the API's `int32`.
pub fn count(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
