//! Time helpers: protobuf timestamps and the school's business date.

use chrono::{DateTime, NaiveDate, Utc};

/// A UTC instant as a `google.protobuf.Timestamp`.
pub fn to_timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// An optional instant as an optional timestamp.
pub fn to_timestamp_opt(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(to_timestamp)
}

/// A `google.protobuf.Timestamp` as a UTC instant; `None` when out of range.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.nanos).ok()?;
    DateTime::from_timestamp(t.seconds, nanos)
}

/// The business date ("school day") of an instant: its calendar date in the school's zone
/// (data-model.md: `date` columns hold the Europe/Berlin date by default).
pub fn business_date(t: DateTime<Utc>, zone: chrono_tz::Tz) -> NaiveDate {
    t.with_timezone(&zone).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = DateTime::from_timestamp(1_764_000_000, 123_000_000).expect("valid");
        assert_eq!(from_timestamp(&to_timestamp(t)), Some(t));
        assert_eq!(from_timestamp(&prost_types::Timestamp { seconds: 0, nanos: -1 }), None);
    }

    #[test]
    fn business_date_is_the_local_calendar_date() {
        // 23:30 UTC on 25 Nov is 00:30 on 26 Nov in Berlin (CET, UTC+1).
        let t = DateTime::parse_from_rfc3339("2026-11-25T23:30:00Z").expect("valid").to_utc();
        assert_eq!(business_date(t, chrono_tz::Europe::Berlin), NaiveDate::from_ymd_opt(2026, 11, 26).expect("date"));
        assert_eq!(business_date(t, chrono_tz::UTC), NaiveDate::from_ymd_opt(2026, 11, 25).expect("date"));
    }
}
