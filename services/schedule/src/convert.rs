//! Rows ⇄ domain ⇄ proto.

use chrono::{DateTime, Utc};
use phoenix_proto::schedule::v1 as pb;

use crate::recurrence::{End, Frequency, Rule};
use crate::repo::{DateframeRow, NewPattern, PatternRow, TimeframeRow, date_to_ts};

const WEEKDAYS: [&str; 7] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

pub(crate) fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) }
}

pub(crate) fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

pub(crate) fn new_pattern(rule: &Rule) -> NewPattern {
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

pub(crate) fn pattern(row: PatternRow) -> pb::RecurrencePattern {
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

pub(crate) fn timeframe(row: TimeframeRow) -> pb::Timeframe {
    pb::Timeframe {
        id: row.id,
        start_time: Some(timestamp(row.start_time)),
        end_time: row.end_time.map(timestamp),
        is_active: row.is_active,
        description: row.description.unwrap_or_default(),
    }
}

pub(crate) fn dateframe(row: DateframeRow) -> pb::Dateframe {
    pb::Dateframe {
        id: row.id,
        start_date: row.start_date.date_naive().to_string(),
        end_date: row.end_date.date_naive().to_string(),
        name: row.name.unwrap_or_default(),
        description: row.description.unwrap_or_default(),
    }
}
