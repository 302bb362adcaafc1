//! Request fields → typed values, collecting field violations.

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveTime};
use phoenix_common::FieldViolations;
use phoenix_proto::schedule::v1 as pb;

use crate::recurrence::{End, Frequency, Rule};

/// `YYYY-MM-DD`; records a violation on `field` otherwise.
pub(crate) fn date(field: &str, raw: &str, v: &mut FieldViolations) -> Option<NaiveDate> {
    let parsed = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").ok();
    if parsed.is_none() {
        v.add(field, format!("must be a date YYYY-MM-DD, got {raw:?}"));
    }
    parsed
}

/// `HH:MM` (two-digit minutes); records a violation on `field` otherwise.
pub(crate) fn time(field: &str, raw: &str, v: &mut FieldViolations) -> Option<NaiveTime> {
    let raw = raw.trim();
    let parsed = Some(raw)
        .filter(|r| r.split_once(':').is_some_and(|(_, m)| m.len() == 2))
        .and_then(|r| NaiveTime::parse_from_str(r, "%H:%M").ok());
    if parsed.is_none() {
        v.add(field, format!("must be a time HH:MM, got {raw:?}"));
    }
    parsed
}

/// ISO weekday 1..=7.
pub(crate) fn weekday(field: &str, raw: i32, v: &mut FieldViolations) -> Option<u8> {
    match u8::try_from(raw) {
        Ok(d @ 1..=7) => Some(d),
        _ => {
            v.add(field, format!("must be an ISO weekday 1 (Monday)..=7 (Sunday), got {raw}"));
            None
        }
    }
}

/// A recurrence rule; `prefix` is e.g. `recurrence_pattern.`.
pub(crate) fn rule(prefix: &str, p: &pb::RecurrencePattern, v: &mut FieldViolations) -> Option<Rule> {
    let frequency = match pb::Frequency::try_from(p.frequency) {
        Ok(pb::Frequency::Daily) => Some(Frequency::Daily),
        Ok(pb::Frequency::Weekly) => Some(Frequency::Weekly),
        Ok(pb::Frequency::Monthly) => Some(Frequency::Monthly),
        Ok(pb::Frequency::Yearly) => Some(Frequency::Yearly),
        _ => {
            v.add(format!("{prefix}frequency"), "must be DAILY, WEEKLY, MONTHLY or YEARLY");
            None
        }
    };
    let interval = match p.interval {
        0 => Some(1),
        n if n >= 1 => u32::try_from(n).ok(),
        n => {
            v.add(format!("{prefix}interval"), format!("must be >= 1, got {n}"));
            None
        }
    };
    let mut weekdays = BTreeSet::new();
    for (i, d) in p.weekdays.iter().enumerate() {
        if let Some(d) = weekday(&format!("{prefix}weekdays[{i}]"), *d, v) {
            weekdays.insert(d);
        }
    }
    let mut month_days = BTreeSet::new();
    for (i, d) in p.month_days.iter().enumerate() {
        match u8::try_from(*d) {
            Ok(d @ 1..=31) => {
                month_days.insert(d);
            }
            _ => v.add(format!("{prefix}month_days[{i}]"), format!("must be 1..=31, got {d}")),
        }
    }
    let end = match (p.end_date.trim().is_empty(), p.count) {
        (true, 0) => Some(End::Never),
        (true, n) if n >= 1 => u32::try_from(n).ok().map(End::Count),
        (true, n) => {
            v.add(format!("{prefix}count"), format!("must be >= 1 (or 0 for none), got {n}"));
            None
        }
        (false, 0) => date(&format!("{prefix}end_date"), &p.end_date, v).map(End::Until),
        (false, _) => {
            v.add(format!("{prefix}count"), "end_date and count are mutually exclusive; set one");
            None
        }
    };
    Some(Rule { frequency: frequency?, interval: interval?, weekdays, month_days, end: end? })
}
