//! Request → typed command, collecting field violations.

use std::collections::BTreeSet;

use phoenix_common::FieldViolations;
use phoenix_proto::activities::v1 as pb;

/// `#RGB` / `#RRGGBB`, a missing `#` added (reference §6, rooms and categories).
pub(crate) fn color(field: &str, raw: &str, v: &mut FieldViolations) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let hex = raw.strip_prefix('#').unwrap_or(raw);
    if (hex.len() == 3 || hex.len() == 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(format!("#{hex}"))
    } else {
        v.add(field, format!("must be a hex color #RGB or #RRGGBB, got {raw:?}"));
        None
    }
}

/// A positive id; records a violation on `field` otherwise.
pub(crate) fn id(field: &str, raw: i64, v: &mut FieldViolations) -> i64 {
    if raw <= 0 {
        v.add(field, format!("must be a positive id, got {raw}"));
    }
    raw
}

/// An optional reference: 0 means none, a negative value is a violation.
pub(crate) fn optional_id(field: &str, raw: i64, v: &mut FieldViolations) -> Option<i64> {
    if raw < 0 {
        v.add(field, format!("must be a positive id or 0 for none, got {raw}"));
    }
    (raw > 0).then_some(raw)
}

/// ISO weekday 1 (Monday) ..= 7 (Sunday).
pub(crate) fn weekday(field: &str, raw: i32, v: &mut FieldViolations) -> i16 {
    match i16::try_from(raw) {
        Ok(d @ 1..=7) => d,
        _ => {
            v.add(field, format!("invalid weekday: must be 1 (Monday) ..= 7 (Sunday), got {raw}"));
            0
        }
    }
}

/// A non-blank name, trimmed.
pub(crate) fn name(field: &str, raw: &str, v: &mut FieldViolations) -> String {
    let name = raw.trim().to_owned();
    if name.is_empty() {
        v.add(field, "must not be empty");
    }
    name
}

/// Places, > 0.
pub(crate) fn max_participants(field: &str, raw: i32, v: &mut FieldViolations) -> i32 {
    if raw <= 0 {
        v.add(field, format!("must be > 0, got {raw}"));
    }
    raw
}

/// A complete set of weekly schedules (`prefix` e.g. `activity.schedules`): each weekday
/// valid, each (weekday, timeframe) at most once.
pub(crate) fn schedules(
    prefix: &str,
    list: &[pb::ActivitySchedule],
    v: &mut FieldViolations,
) -> Vec<(i16, Option<i64>)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let weekday = weekday(&format!("{prefix}[{i}].weekday"), s.weekday, v);
        let timeframe = optional_id(&format!("{prefix}[{i}].timeframe_id"), s.timeframe_id, v);
        if let Some(t) = timeframe
            && !seen.insert((weekday, t))
        {
            v.add(format!("{prefix}[{i}]"), format!("weekday {weekday} in timeframe {t} is listed twice"));
        }
        out.push((weekday, timeframe));
    }
    out
}

/// A complete set of planned supervisors (`prefix` e.g. `activity.supervisors`): each staff
/// member at most once, exactly one primary unless the set is empty.
pub(crate) fn supervisors(prefix: &str, list: &[pb::Supervisor], v: &mut FieldViolations) -> Vec<(i64, bool)> {
    let mut seen = BTreeSet::new();
    for (i, s) in list.iter().enumerate() {
        id(&format!("{prefix}[{i}].staff_id"), s.staff_id, v);
        if !seen.insert(s.staff_id) {
            v.add(format!("{prefix}[{i}].staff_id"), format!("staff {} is listed twice", s.staff_id));
        }
    }
    let primaries = list.iter().filter(|s| s.is_primary).count();
    if !list.is_empty() && primaries != 1 {
        v.add(prefix, format!("exactly one supervisor must be primary, got {primaries}"));
    }
    list.iter().map(|s| (s.staff_id, s.is_primary)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colors() {
        let mut v = FieldViolations::default();
        assert_eq!(color("c", "7ED321", &mut v).as_deref(), Some("#7ED321"));
        assert_eq!(color("c", "#abc", &mut v).as_deref(), Some("#abc"));
        assert_eq!(color("c", "", &mut v), None);
        assert!(v.clone().into_result().is_ok());
        assert_eq!(color("c", "#12", &mut v), None);
        assert!(v.into_result().is_err());
    }

    fn fields(v: FieldViolations) -> Vec<String> {
        v.iter().map(|(f, _)| f.to_owned()).collect()
    }

    #[test]
    fn supervisor_sets_need_exactly_one_primary() {
        let sup = |staff_id, is_primary| pb::Supervisor { staff_id, is_primary };
        let mut v = FieldViolations::default();
        assert_eq!(supervisors("s", &[sup(1, false), sup(2, true)], &mut v), [(1, false), (2, true)]);
        assert!(supervisors("s", &[], &mut v).is_empty());
        assert!(v.into_result().is_ok());
        let mut v = FieldViolations::default();
        supervisors("s", &[sup(1, true), sup(1, true)], &mut v);
        assert_eq!(fields(v), ["s[1].staff_id", "s"]);
        let mut v = FieldViolations::default();
        supervisors("s", &[sup(1, false)], &mut v);
        assert_eq!(fields(v), ["s"]);
    }

    #[test]
    fn schedule_sets_check_weekdays_and_duplicates() {
        let s = |weekday, timeframe_id| pb::ActivitySchedule { weekday, timeframe_id, ..Default::default() };
        let mut v = FieldViolations::default();
        assert_eq!(schedules("x", &[s(1, 0), s(1, 0), s(7, 3)], &mut v), [(1, None), (1, None), (7, Some(3))]);
        assert!(v.into_result().is_ok());
        let mut v = FieldViolations::default();
        schedules("x", &[s(0, 3), s(8, -1), s(2, 3), s(2, 3)], &mut v);
        assert_eq!(fields(v), ["x[0].weekday", "x[1].weekday", "x[1].timeframe_id", "x[3]"]);
    }
}
