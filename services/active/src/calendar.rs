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

/// The instant of local wall-clock time `time` on `date` in `tz`: on a spring-forward day a
/// time inside the gap is the first instant after it; on a fall-back day a time that occurs
/// twice is the earlier one (as `phoenix_common::jobs::next_daily_run` schedules).
pub fn at_local(date: NaiveDate, time: chrono::NaiveTime, tz: Tz) -> DateTime<Utc> {
    let local = date.and_time(time);
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        chrono::LocalResult::None => (1..=180)
            .find_map(|m| tz.from_local_datetime(&(local + chrono::Duration::minutes(m))).earliest())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| local.and_utc()),
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

    #[test]
    fn local_times_on_dst_days() {
        let tz = chrono_tz::Europe::Berlin;
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let t = |h, m, s| chrono::NaiveTime::from_hms_opt(h, m, s).expect("time");
        assert_eq!(at_local(d("2026-03-29"), t(18, 0, 0), tz).to_rfc3339(), "2026-03-29T16:00:00+00:00");
        assert_eq!(at_local(d("2026-03-29"), t(2, 30, 0), tz).to_rfc3339(), "2026-03-29T01:00:00+00:00", "gap");
        assert_eq!(at_local(d("2026-10-25"), t(2, 30, 0), tz).to_rfc3339(), "2026-10-25T00:30:00+00:00", "twice");
        assert_eq!(at_local(d("2026-10-25"), t(23, 59, 59), tz).to_rfc3339(), "2026-10-25T22:59:59+00:00");
    }
}
