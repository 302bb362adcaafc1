//! Business days as instants: a date in the school's time zone is the half-open range from
//! its local midnight to the next one (23 or 25 hours on DST days).

use chrono::{DateTime, Days, NaiveDate, TimeZone as _, Utc};
use chrono_tz::Tz;

/// The first instant of `date` in `tz`.
pub fn day_start(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        // Midnight skipped by a DST jump (not in Europe, but in some zones): the day starts
        // at the first local time that exists, an hour later.
        chrono::LocalResult::None => tz
            .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| midnight.and_utc()),
    }
}

/// `[start, end)` of the days `first..=last` in `tz`.
pub fn days(first: NaiveDate, last: NaiveDate, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let next = last.checked_add_days(Days::new(1)).unwrap_or(last);
    (day_start(first, tz), day_start(next, tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berlin_days_follow_daylight_saving() {
        let tz = chrono_tz::Europe::Berlin;
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let (start, end) = days(d("2026-03-29"), d("2026-03-29"), tz);
        assert_eq!(start.to_rfc3339(), "2026-03-28T23:00:00+00:00");
        assert_eq!((end - start).num_hours(), 23, "the spring-forward day");
        let (start, end) = days(d("2026-12-01"), d("2026-12-31"), tz);
        assert_eq!(start.to_rfc3339(), "2026-11-30T23:00:00+00:00");
        assert_eq!((end - start).num_days(), 31);
    }
}
