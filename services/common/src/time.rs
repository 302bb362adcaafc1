//! Time: protobuf timestamps, and the school's business date. "Today" is a calendar date in
//! the school's time zone (Europe/Berlin by default, `PHOENIX_TIMEZONE`),
//! whatever the server's own zone is.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// The school's default time zone.
pub const BUSINESS_TZ: Tz = chrono_tz::Europe::Berlin;

static SCHOOL_ZONE: std::sync::OnceLock<Tz> = std::sync::OnceLock::new();

/// Sets the process's school time zone (`PHOENIX_TIMEZONE`), once, when the process builds its
/// services; later calls keep the first zone (one school per process). `false` when a
/// different zone was already set.
pub fn set_school_zone(zone: Tz) -> bool {
    *SCHOOL_ZONE.get_or_init(|| zone) == zone
}

/// The process's school time zone: the one set at start, else [`BUSINESS_TZ`].
pub fn school_zone() -> Tz {
    SCHOOL_ZONE.get().copied().unwrap_or(BUSINESS_TZ)
}

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

/// The school day `at` falls on in the process's school zone ([`school_zone`]).
pub fn business_date(at: DateTime<Utc>) -> NaiveDate {
    business_date_in(at, school_zone())
}

/// The school day `at` falls on in `zone` (the configured `PHOENIX_TIMEZONE`).
pub fn business_date_in(at: DateTime<Utc>, zone: Tz) -> NaiveDate {
    at.with_timezone(&zone).date_naive()
}

/// Today's school day in the process's school zone.
pub fn business_today() -> NaiveDate {
    business_date(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn timestamps_round_trip() {
        let t = DateTime::from_timestamp(1_764_000_000, 123_000_000).expect("valid");
        assert_eq!(from_timestamp(&to_timestamp(t)), Some(t));
        assert_eq!(from_timestamp(&prost_types::Timestamp { seconds: 0, nanos: -1 }), None);
    }

    #[test]
    fn late_evening_utc_is_already_tomorrow_in_berlin() {
        let at = Utc.with_ymd_and_hms(2026, 6, 30, 22, 30, 0).unwrap(); // 00:30 CEST
        assert_eq!(business_date(at), NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        let winter = Utc.with_ymd_and_hms(2026, 12, 31, 22, 59, 0).unwrap(); // 23:59 CET
        assert_eq!(business_date(winter), NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
        assert_eq!(business_date_in(winter, chrono_tz::UTC), NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
        let t = DateTime::parse_from_rfc3339("2026-11-25T23:30:00Z").unwrap().to_utc();
        assert_eq!(business_date_in(t, chrono_tz::UTC), NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
    }
}
