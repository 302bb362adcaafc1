//! Recurrence rules and their expansion into dates: pure logic, no I/O.
//!
//! Semantics (a small, explicit subset of RFC 5545, anchored at the first requested date):
//! - `Daily`: every `interval` days from the anchor.
//! - `Weekly`: every `interval` ISO weeks (Monday-based) from the anchor's week, on
//!   `weekdays` (default: the anchor's weekday).
//! - `Monthly`: every `interval` months from the anchor's month, on `month_days` (default:
//!   the anchor's day). A day a month does not have is skipped (the 31st skips April).
//!   `weekdays` alone means every such weekday of the month.
//! - `Yearly`: every `interval` years, in the anchor's month, on `month_days` (default: the
//!   anchor's day); Feb 29 therefore occurs only in leap years.
//! - `weekdays` also filters daily, monthly and yearly dates; `month_days` filters daily and
//!   weekly dates.
//! - `until` (inclusive) or `count` (occurrences counted from the anchor) ends the series.

use std::collections::BTreeSet;

use chrono::{Datelike, Days, LocalResult, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;

/// How often the rule repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    /// Every `interval` days.
    Daily,
    /// Every `interval` weeks.
    Weekly,
    /// Every `interval` months.
    Monthly,
    /// Every `interval` years.
    Yearly,
}

impl Frequency {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
            Frequency::Yearly => "yearly",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "daily" => Frequency::Daily,
            "weekly" => Frequency::Weekly,
            "monthly" => Frequency::Monthly,
            "yearly" => Frequency::Yearly,
            _ => return None,
        })
    }
}

/// How a series ends (exclusive: the table's CHECK `end_date IS NULL OR count IS NULL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Only bounded by the requested range.
    Never,
    /// Last possible date (inclusive).
    Until(NaiveDate),
    /// Number of occurrences from the anchor.
    Count(u32),
}

/// A validated recurrence rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Frequency.
    pub frequency: Frequency,
    /// Repeat every `interval` units (≥ 1).
    pub interval: u32,
    /// Allowed weekdays (empty: no weekday restriction / anchor's weekday for weekly).
    pub weekdays: BTreeSet<u8>,
    /// Allowed days of the month 1..=31 (empty: the anchor's day for monthly/yearly).
    pub month_days: BTreeSet<u8>,
    /// End of the series.
    pub end: End,
}

/// Longest range [`expand`] accepts, in days (about ten years), to bound the work.
pub const MAX_RANGE_DAYS: i64 = 3_660;

/// ISO weekday number, Monday = 1.
pub fn iso_weekday(d: NaiveDate) -> u8 {
    d.weekday().number_from_monday() as u8
}

fn months_between(a: NaiveDate, b: NaiveDate) -> i64 {
    (i64::from(b.year()) - i64::from(a.year())) * 12 + i64::from(b.month()) - i64::from(a.month())
}

fn monday_of(d: NaiveDate) -> NaiveDate {
    d.week(Weekday::Mon).first_day()
}

impl Rule {
    /// Whether `d` (≥ `anchor`) is an occurrence of the rule anchored at `anchor`, ignoring
    /// the end condition.
    pub fn matches(&self, anchor: NaiveDate, d: NaiveDate) -> bool {
        if d < anchor {
            return false;
        }
        let interval = i64::from(self.interval.max(1));
        let wd = iso_weekday(d);
        let weekday_ok = self.weekdays.is_empty() || self.weekdays.contains(&wd);
        let day = d.day() as u8;
        let day_ok = |default: u8| {
            if self.month_days.is_empty() { day == default } else { self.month_days.contains(&day) }
        };
        match self.frequency {
            Frequency::Daily => {
                (d - anchor).num_days() % interval == 0
                    && weekday_ok
                    && (self.month_days.is_empty() || self.month_days.contains(&day))
            }
            Frequency::Weekly => {
                let weeks = (monday_of(d) - monday_of(anchor)).num_days() / 7;
                let on_day = if self.weekdays.is_empty() { wd == iso_weekday(anchor) } else { weekday_ok };
                weeks % interval == 0 && on_day && (self.month_days.is_empty() || self.month_days.contains(&day))
            }
            Frequency::Monthly => {
                let on_day = if self.month_days.is_empty() && !self.weekdays.is_empty() {
                    true
                } else {
                    day_ok(anchor.day() as u8)
                };
                months_between(anchor, d) % interval == 0 && on_day && weekday_ok
            }
            Frequency::Yearly => {
                (i64::from(d.year()) - i64::from(anchor.year())) % interval == 0
                    && d.month() == anchor.month()
                    && day_ok(anchor.day() as u8)
                    && weekday_ok
            }
        }
    }
}

/// The occurrences of `rule` anchored at `start`, up to `end` (inclusive), sorted and unique.
///
/// The caller validates `start <= end` and the range length ([`MAX_RANGE_DAYS`]).
pub fn expand(rule: &Rule, start: NaiveDate, end: NaiveDate) -> Vec<NaiveDate> {
    let last = match rule.end {
        End::Until(u) => u.min(end),
        _ => end,
    };
    let limit = match rule.end {
        End::Count(n) => n as usize,
        _ => usize::MAX,
    };
    let mut out = Vec::new();
    // Day by day: at most MAX_RANGE_DAYS steps, and trivially sorted and unique.
    let mut d = start;
    while d <= last && out.len() < limit {
        if rule.matches(start, d) {
            out.push(d);
        }
        match d.checked_add_days(Days::new(1)) {
            Some(next) => d = next,
            None => break,
        }
    }
    out
}

/// The instant of local wall-clock `time` on `date` in `tz`. A time that does not exist
/// (spring-forward gap) moves forward by the gap (02:30 → 03:30 CEST); an ambiguous one
/// (fall-back) takes the earlier instant.
pub fn at_local_time(date: NaiveDate, time: NaiveTime, tz: Tz) -> chrono::DateTime<Tz> {
    let local = date.and_time(time);
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(early, _) => early,
        LocalResult::None => {
            let shifted = local + chrono::Duration::hours(1);
            tz.from_local_datetime(&shifted).earliest().unwrap_or_else(|| tz.from_utc_datetime(&local))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn rule(frequency: Frequency, interval: u32) -> Rule {
        Rule { frequency, interval, weekdays: BTreeSet::new(), month_days: BTreeSet::new(), end: End::Never }
    }

    #[test]
    fn monthly_on_the_31st_skips_short_months() {
        let r = Rule { month_days: [31].into(), ..rule(Frequency::Monthly, 1) };
        assert_eq!(
            expand(&r, d(2024, 1, 1), d(2024, 12, 31)),
            [
                d(2024, 1, 31),
                d(2024, 3, 31),
                d(2024, 5, 31),
                d(2024, 7, 31),
                d(2024, 8, 31),
                d(2024, 10, 31),
                d(2024, 12, 31)
            ]
        );
        // Anchored on the 31st without month_days: same rule by default.
        assert_eq!(
            expand(&rule(Frequency::Monthly, 1), d(2024, 1, 31), d(2024, 4, 30)),
            [d(2024, 1, 31), d(2024, 3, 31)]
        );
    }

    #[test]
    fn monthly_every_second_month_on_the_15th_and_last_february_day() {
        let r = Rule { month_days: [15, 29].into(), ..rule(Frequency::Monthly, 2) };
        // 2023 is no leap year: Feb has no 29th; 2024 is.
        assert_eq!(
            expand(&r, d(2022, 12, 1), d(2023, 4, 30)),
            [d(2022, 12, 15), d(2022, 12, 29), d(2023, 2, 15), d(2023, 4, 15), d(2023, 4, 29)]
        );
        assert_eq!(expand(&r, d(2024, 2, 1), d(2024, 2, 29)), [d(2024, 2, 15), d(2024, 2, 29)]);
    }

    #[test]
    fn yearly_on_february_29_only_in_leap_years() {
        let r = rule(Frequency::Yearly, 1);
        assert_eq!(expand(&r, d(2024, 2, 29), d(2033, 12, 31)), [d(2024, 2, 29), d(2028, 2, 29), d(2032, 2, 29)]);
        // 2100 is not a leap year (divisible by 100, not by 400); 2000 was.
        assert_eq!(expand(&r, d(2096, 2, 29), d(2104, 3, 1)), [d(2096, 2, 29), d(2104, 2, 29)]);
        assert_eq!(
            expand(&rule(Frequency::Yearly, 4), d(2000, 2, 29), d(2009, 1, 1)),
            [d(2000, 2, 29), d(2004, 2, 29), d(2008, 2, 29)]
        );
    }

    #[test]
    fn weekly_every_other_week_on_monday_and_thursday() {
        // 2025-03-03 is a Monday.
        let r = Rule { weekdays: [1, 4].into(), ..rule(Frequency::Weekly, 2) };
        assert_eq!(
            expand(&r, d(2025, 3, 4), d(2025, 3, 31)),
            [d(2025, 3, 6), d(2025, 3, 17), d(2025, 3, 20), d(2025, 3, 31)]
        );
    }

    #[test]
    fn daily_weekdays_with_count_and_until() {
        // Mon–Fri from Friday 2025-02-28 (2025 is no leap year: March follows Feb 28).
        let r = Rule { weekdays: [1, 2, 3, 4, 5].into(), end: End::Count(4), ..rule(Frequency::Daily, 1) };
        assert_eq!(
            expand(&r, d(2025, 2, 28), d(2025, 12, 31)),
            [d(2025, 2, 28), d(2025, 3, 3), d(2025, 3, 4), d(2025, 3, 5)]
        );
        let r = Rule { end: End::Until(d(2024, 3, 2)), ..rule(Frequency::Daily, 2) };
        assert_eq!(
            expand(&r, d(2024, 2, 25), d(2024, 12, 31)),
            [d(2024, 2, 25), d(2024, 2, 27), d(2024, 2, 29), d(2024, 3, 2)]
        );
    }

    #[test]
    fn weekly_at_16_00_berlin_keeps_wall_clock_across_the_dst_change() {
        // DST began in Europe/Berlin on Sunday 2025-03-30 (02:00 → 03:00).
        let r = Rule { weekdays: [5].into(), ..rule(Frequency::Weekly, 1) };
        let t = NaiveTime::from_hms_opt(16, 0, 0).unwrap();
        let utc: Vec<String> = expand(&r, d(2025, 3, 21), d(2025, 4, 4))
            .into_iter()
            .map(|day| at_local_time(day, t, chrono_tz::Europe::Berlin).to_utc().to_rfc3339())
            .collect();
        assert_eq!(utc, ["2025-03-21T15:00:00+00:00", "2025-03-28T15:00:00+00:00", "2025-04-04T14:00:00+00:00"]);
    }

    #[test]
    fn nonexistent_and_ambiguous_local_times() {
        let berlin = chrono_tz::Europe::Berlin;
        let gap = at_local_time(d(2025, 3, 30), NaiveTime::from_hms_opt(2, 30, 0).unwrap(), berlin);
        assert_eq!(gap.to_utc().to_rfc3339(), "2025-03-30T01:30:00+00:00"); // 03:30 CEST
        // DST ended 2025-10-26 (03:00 → 02:00): 02:30 happens twice; the first is CEST.
        let twice = at_local_time(d(2025, 10, 26), NaiveTime::from_hms_opt(2, 30, 0).unwrap(), berlin);
        assert_eq!(twice.to_utc().to_rfc3339(), "2025-10-26T00:30:00+00:00");
    }

    fn any_rule() -> impl Strategy<Value = Rule> {
        let freq = prop_oneof![
            Just(Frequency::Daily),
            Just(Frequency::Weekly),
            Just(Frequency::Monthly),
            Just(Frequency::Yearly)
        ];
        let end = prop_oneof![Just(0u32), 1u32..40].prop_map(|n| if n == 0 { End::Never } else { End::Count(n) });
        (freq, 1u32..5, prop::collection::btree_set(1u8..=7, 0..3), prop::collection::btree_set(1u8..=31, 0..3), end)
            .prop_map(|(frequency, interval, weekdays, month_days, end)| Rule {
                frequency,
                interval,
                weekdays,
                month_days,
                end,
            })
    }

    proptest! {
        #[test]
        fn expansion_is_in_range_sorted_unique_counted_and_matches(
            r in any_rule(), start_off in 0i64..3000, len in 0i64..800,
        ) {
            let start = d(2020, 1, 1) + chrono::Duration::days(start_off);
            let end = start + chrono::Duration::days(len);
            let events = expand(&r, start, end);
            prop_assert!(events.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
            prop_assert!(events.iter().all(|e| *e >= start && *e <= end), "in range");
            if let End::Count(n) = r.end { prop_assert!(events.len() <= n as usize); }
            for e in &events {
                if !r.weekdays.is_empty() { prop_assert!(r.weekdays.contains(&iso_weekday(*e))); }
                if !r.month_days.is_empty() { prop_assert!(r.month_days.contains(&(e.day() as u8))); }
                match r.frequency {
                    Frequency::Daily => prop_assert_eq!((*e - start).num_days() % i64::from(r.interval), 0),
                    Frequency::Monthly => prop_assert_eq!(months_between(start, *e) % i64::from(r.interval), 0),
                    Frequency::Yearly => prop_assert_eq!(e.month(), start.month()),
                    Frequency::Weekly => prop_assert_eq!(((monday_of(*e) - monday_of(start)).num_days() / 7) % i64::from(r.interval), 0),
                }
            }
            // Nothing skipped: every matching day of the range is there until the count is used up.
            let all: Vec<_> = start.iter_days().take_while(|x| *x <= end).filter(|x| r.matches(start, *x)).collect();
            let n = match r.end { End::Count(n) => all.len().min(n as usize), _ => all.len() };
            prop_assert_eq!(&events[..], &all[..n]);
        }

        #[test]
        fn count_limits_a_longer_series_exactly(n in 1u32..30) {
            let r = Rule { end: End::Count(n), ..rule(Frequency::Daily, 1) };
            prop_assert_eq!(expand(&r, d(2024, 1, 1), d(2024, 12, 31)).len(), n as usize);
        }
    }
}
