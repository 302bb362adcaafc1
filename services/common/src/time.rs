//! Business time: "today" is the Europe/Berlin calendar date (reference §0 "Time"), whatever
//! the server's own time zone is.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// The school's time zone.
pub const BUSINESS_TZ: Tz = chrono_tz::Europe::Berlin;

/// The school day `at` falls on.
pub fn business_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&BUSINESS_TZ).date_naive()
}

/// Today's school day.
pub fn business_today() -> NaiveDate {
    business_date(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn late_evening_utc_is_already_tomorrow_in_berlin() {
        let at = Utc.with_ymd_and_hms(2026, 6, 30, 22, 30, 0).unwrap(); // 00:30 CEST
        assert_eq!(business_date(at), NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        let winter = Utc.with_ymd_and_hms(2026, 12, 31, 22, 59, 0).unwrap(); // 23:59 CET
        assert_eq!(business_date(winter), NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
    }
}
