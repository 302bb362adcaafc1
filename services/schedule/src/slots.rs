//! Room occupancy on one weekday: overlap checks and free windows. Pure logic.

use chrono::NaiveTime;

/// A half-open local time window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    /// Start (inclusive).
    pub start: NaiveTime,
    /// End (exclusive).
    pub end: NaiveTime,
}

impl Window {
    /// Whether the two windows share any instant (touching ends do not overlap).
    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Windows of at least `min_minutes` inside `day` not covered by any of `busy`.
pub fn free_windows(day: Window, busy: &[Window], min_minutes: i64) -> Vec<Window> {
    let mut busy: Vec<Window> = busy.iter().copied().filter(|b| b.overlaps(&day)).collect();
    busy.sort();
    let mut out = Vec::new();
    let mut cursor = day.start;
    for b in busy {
        if b.start > cursor {
            out.push(Window { start: cursor, end: b.start.min(day.end) });
        }
        cursor = cursor.max(b.end);
        if cursor >= day.end {
            break;
        }
    }
    if cursor < day.end {
        out.push(Window { start: cursor, end: day.end });
    }
    out.retain(|w| (w.end - w.start).num_minutes() >= min_minutes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(a: &str, b: &str) -> Window {
        let t = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").unwrap();
        Window { start: t(a), end: t(b) }
    }

    #[test]
    fn free_windows_between_overlapping_and_touching_bookings() {
        let busy = [w("09:00", "10:00"), w("09:30", "11:00"), w("12:00", "12:30"), w("17:30", "19:00")];
        assert_eq!(
            free_windows(w("08:00", "18:00"), &busy, 30),
            [w("08:00", "09:00"), w("11:00", "12:00"), w("12:30", "17:30")]
        );
        assert_eq!(free_windows(w("08:00", "18:00"), &busy, 61), [w("12:30", "17:30")]);
        assert_eq!(free_windows(w("08:00", "09:00"), &[w("07:00", "19:00")], 1), []);
    }

    #[test]
    fn overlap_is_half_open() {
        assert!(!w("09:00", "10:00").overlaps(&w("10:00", "11:00")));
        assert!(w("09:00", "10:01").overlaps(&w("10:00", "11:00")));
    }
}
