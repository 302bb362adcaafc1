//! Requests → typed commands, pure, before any I/O. Every violation names its request field
//! (`recurrence_pattern.weekdays[1]`, `class_schedule.room_id`), all of them at once.

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use phoenix_common::page::PageRequest;
use phoenix_common::time::{BUSINESS_TZ, from_timestamp};
use phoenix_common::validate::{
    Update, collect, finish, mask_paths, optional_id, optional_text, page, parse_date, required, required_id,
};
use phoenix_common::{Error, FieldViolations, Result};
use phoenix_proto::schedule::v1 as pb;

use crate::recurrence::{End, Frequency, MAX_RANGE_DAYS, Rule};
use crate::repo::{ClassScheduleFilter, ClassScheduleValues, DateframeRow, TimeframeRow, date_to_ts};
use crate::slots::Window;

/// Fields `UpdateClassSchedule` may change.
pub const CLASS_SCHEDULE_FIELDS: &[&str] =
    &["education_group_id", "activity_id", "room_id", "weekday", "timeframe_id", "description"];

const MAX_DESCRIPTION: usize = 1000;

/// `HH:MM` (two-digit minutes); records a violation on `field` otherwise.
fn time(field: &str, raw: &str, v: &mut FieldViolations) -> Option<NaiveTime> {
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
fn weekday(field: &str, raw: i32, v: &mut FieldViolations) -> Option<u8> {
    match u8::try_from(raw) {
        Ok(d @ 1..=7) => Some(d),
        _ => {
            v.add(field, format!("must be an ISO weekday 1 (Monday)..=7 (Sunday), got {raw}"));
            None
        }
    }
}

/// A recurrence rule; `prefix` is e.g. `recurrence_pattern.`.
fn rule(prefix: &str, p: &pb::RecurrencePattern, v: &mut FieldViolations) -> Option<Rule> {
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
        (false, 0) => parse_date(&format!("{prefix}end_date"), &p.end_date, v).map(End::Until),
        (false, _) => {
            v.add(format!("{prefix}count"), "end_date and count are mutually exclusive; set one");
            None
        }
    };
    Some(Rule { frequency: frequency?, interval: interval?, weekdays, month_days, end: end? })
}

/// An optional reference in the proto's form: 0 means none.
fn reference(field: &str, raw: i64, v: &mut FieldViolations) -> Option<i64> {
    optional_id(field, (raw != 0).then_some(raw), v).filter(|id| *id > 0)
}

/// `end` after `start`, else a violation on `end_field`.
fn ordered<T: PartialOrd>(start: Option<T>, end: Option<T>, end_field: &str, what: &str, v: &mut FieldViolations) {
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        v.add(end_field, format!("must be after {what}"));
    }
}

/// `CreateRecurrencePattern`.
pub fn create_recurrence_pattern(req: pb::CreateRecurrencePatternRequest) -> Result<Rule> {
    let p = required("recurrence_pattern", req.recurrence_pattern)?;
    let mut v = FieldViolations::default();
    let rule = rule("recurrence_pattern.", &p, &mut v);
    finish(v, rule)
}

/// A stored recurrence pattern read back as a rule (`Internal` when it no longer validates).
pub fn stored_rule(id: i64, p: &pb::RecurrencePattern) -> Result<Rule> {
    let mut v = FieldViolations::default();
    rule("", p, &mut v).ok_or_else(|| Error::Internal(anyhow::anyhow!("stored pattern {id} is invalid: {v}")))
}

/// The rule an `ExpandRecurrence` expands.
#[derive(Debug)]
pub enum PatternRef {
    /// Given inline.
    Rule(Rule),
    /// A stored pattern.
    Stored(i64),
}

/// `ExpandRecurrence`.
#[derive(Debug)]
pub struct Expansion {
    /// First date.
    pub start: NaiveDate,
    /// Last date (inclusive).
    pub end: NaiveDate,
    /// Local time of each event, when asked.
    pub time: Option<NaiveTime>,
    /// Zone of `time`.
    pub tz: Tz,
    /// The rule.
    pub pattern: PatternRef,
}

/// `ExpandRecurrence`.
pub fn expand_recurrence(req: pb::ExpandRecurrenceRequest) -> Result<Expansion> {
    let mut v = FieldViolations::default();
    let start = parse_date("start_date", &req.start_date, &mut v);
    let end = parse_date("end_date", &req.end_date, &mut v);
    if let (Some(s), Some(e)) = (start, end) {
        let days = (e - s).num_days();
        if days < 0 {
            v.add("end_date", "must not be before start_date");
        } else if days > MAX_RANGE_DAYS {
            v.add("end_date", format!("range must be at most {MAX_RANGE_DAYS} days, got {days}"));
        }
    }
    let time = (!req.time_of_day.trim().is_empty()).then(|| time("time_of_day", &req.time_of_day, &mut v)).flatten();
    let tz = if req.time_zone.trim().is_empty() {
        BUSINESS_TZ
    } else {
        req.time_zone.trim().parse::<Tz>().unwrap_or_else(|_| {
            v.add("time_zone", format!("must be an IANA time zone, got {:?}", req.time_zone));
            BUSINESS_TZ
        })
    };
    let pattern = match &req.pattern {
        Some(pb::expand_recurrence_request::Pattern::Rule(p)) => rule("rule.", p, &mut v).map(PatternRef::Rule),
        Some(pb::expand_recurrence_request::Pattern::PatternId(id)) => {
            Some(PatternRef::Stored(required_id("pattern_id", *id, &mut v)))
        }
        None => {
            v.add("pattern", "set pattern_id or rule");
            None
        }
    };
    v.into_result()?;
    match (start, end, pattern) {
        (Some(start), Some(end), Some(pattern)) => Ok(Expansion { start, end, time, tz, pattern }),
        _ => Err(Error::invalid("pattern", "set pattern_id or rule")),
    }
}

/// `CreateTimeframe`: the row to insert.
pub fn create_timeframe(req: pb::CreateTimeframeRequest) -> Result<TimeframeRow> {
    let tf = required("timeframe", req.timeframe)?;
    let mut v = FieldViolations::default();
    let start = tf.start_time.as_ref().and_then(from_timestamp);
    if start.is_none() {
        v.add("timeframe.start_time", "is required");
    }
    let end = tf.end_time.as_ref().and_then(from_timestamp);
    ordered(start, end, "timeframe.end_time", "start_time", &mut v);
    let start_time = finish(v, start)?;
    Ok(TimeframeRow {
        id: 0,
        start_time,
        end_time: end,
        is_active: tf.is_active,
        description: optional_text(Some(tf.description)),
    })
}

/// `ListTimeframes`: active only, and the page.
pub fn list_timeframes(req: &pb::ListTimeframesRequest) -> Result<(bool, PageRequest)> {
    let page =
        PageRequest::parse("timeframes", &format!("active_only={}", req.active_only), req.page_size, &req.page_token)?;
    Ok((req.active_only, page))
}

/// `ListRecurrencePatterns`.
pub fn list_recurrence_patterns(req: &pb::ListRecurrencePatternsRequest) -> Result<PageRequest> {
    PageRequest::parse("recurrence patterns", "", req.page_size, &req.page_token)
}

/// `CreateDateframe`: the row to insert.
pub fn create_dateframe(req: pb::CreateDateframeRequest) -> Result<DateframeRow> {
    let df = required("dateframe", req.dateframe)?;
    let mut v = FieldViolations::default();
    let start = parse_date("dateframe.start_date", &df.start_date, &mut v);
    let end = parse_date("dateframe.end_date", &df.end_date, &mut v);
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        v.add("dateframe.end_date", "must not be before start_date");
    }
    let (start, end) = finish(v, start.zip(end))?;
    Ok(DateframeRow {
        id: 0,
        start_date: date_to_ts(start),
        end_date: date_to_ts(end),
        name: optional_text(Some(df.name)),
        description: optional_text(Some(df.description)),
    })
}

/// `GetCurrentDateframe`: the day asked for; `None` for today.
pub fn get_current_dateframe(req: &pb::GetCurrentDateframeRequest) -> Result<Option<NaiveDate>> {
    if req.date.trim().is_empty() {
        return Ok(None);
    }
    let mut v = FieldViolations::default();
    let day = parse_date("date", &req.date, &mut v);
    finish(v, day).map(Some)
}

/// A time window in a room on a weekday (`CheckRoomConflict`, `FindFreeSlots`).
#[derive(Debug)]
pub struct RoomDay {
    /// The room.
    pub room_id: i64,
    /// ISO weekday.
    pub weekday: u8,
    /// The window asked about.
    pub window: Window,
}

/// `CheckRoomConflict`.
pub fn check_room_conflict(req: &pb::CheckRoomConflictRequest) -> Result<RoomDay> {
    let mut v = FieldViolations::default();
    let room_id = required_id("room_id", req.room_id, &mut v);
    let weekday = weekday("weekday", req.weekday, &mut v);
    let start = time("start_time", &req.start_time, &mut v);
    let end = time("end_time", &req.end_time, &mut v);
    ordered(start, end, "end_time", "start_time", &mut v);
    let (weekday, (start, end)) = finish(v, weekday.zip(start.zip(end)))?;
    Ok(RoomDay { room_id, weekday, window: Window { start, end } })
}

/// `FindFreeSlots`: the room's day and the shortest slot in minutes.
pub fn find_free_slots(req: &pb::FindFreeSlotsRequest) -> Result<(RoomDay, i64)> {
    let mut v = FieldViolations::default();
    let room_id = required_id("room_id", req.room_id, &mut v);
    let weekday = weekday("weekday", req.weekday, &mut v);
    if !(1..=1440).contains(&req.duration_minutes) {
        v.add("duration_minutes", format!("must be 1..=1440, got {}", req.duration_minutes));
    }
    let or_default = |raw: &str, d: &str| if raw.trim().is_empty() { d.to_owned() } else { raw.to_owned() };
    let start = time("day_start", &or_default(&req.day_start, "08:00"), &mut v);
    let end = time("day_end", &or_default(&req.day_end, "18:00"), &mut v);
    ordered(start, end, "day_end", "day_start", &mut v);
    let (weekday, (start, end)) = finish(v, weekday.zip(start.zip(end)))?;
    Ok((RoomDay { room_id, weekday, window: Window { start, end } }, i64::from(req.duration_minutes)))
}

/// `ListClassSchedules`: the filter and the page.
pub fn list_class_schedules(req: &pb::ListClassSchedulesRequest) -> Result<(ClassScheduleFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let weekday = match req.weekday {
        0 => None,
        w => weekday("weekday", w, &mut v).map(i16::from),
    };
    let filter = ClassScheduleFilter {
        group_id: reference("education_group_id", req.education_group_id, &mut v),
        activity_id: reference("activity_id", req.activity_id, &mut v),
        room_id: reference("room_id", req.room_id, &mut v),
        weekday,
    };
    let page = page("class schedules", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    Ok((filter, finish(v, page)?))
}

/// A class schedule being written: the stored values (or blanks), the masked request
/// fields applied on top, and which paths the request set.
#[derive(Debug)]
pub struct Draft {
    /// The values to write.
    pub values: ClassScheduleValues,
    /// The paths the request set.
    pub paths: Vec<&'static str>,
}

impl Draft {
    /// Whether the request set `path`.
    pub fn sets(&self, path: &str) -> bool {
        self.paths.contains(&path)
    }
}

fn blank_values() -> ClassScheduleValues {
    ClassScheduleValues {
        group_id: None,
        activity_id: None,
        room_id: None,
        weekday: 0,
        timeframe_id: None,
        start_time: NaiveTime::MIN,
        end_time: NaiveTime::MIN,
        description: None,
    }
}

/// Applies `paths` of `c` to `values`, collecting violations. `merged`: `values` are the
/// final values (not blanks for validating the fields alone), so the rule "a group, an
/// activity or both" applies.
pub fn draft(
    mut values: ClassScheduleValues,
    c: &pb::ClassSchedule,
    paths: Vec<&'static str>,
    merged: bool,
    v: &mut FieldViolations,
) -> Draft {
    for path in &paths {
        match *path {
            "education_group_id" => {
                values.group_id = reference("class_schedule.education_group_id", c.education_group_id, v);
            }
            "activity_id" => values.activity_id = reference("class_schedule.activity_id", c.activity_id, v),
            "room_id" => values.room_id = Some(required_id("class_schedule.room_id", c.room_id, v)),
            "weekday" => values.weekday = weekday("class_schedule.weekday", c.weekday, v).map_or(0, i16::from),
            "timeframe_id" => {
                values.timeframe_id = Some(required_id("class_schedule.timeframe_id", c.timeframe_id, v));
            }
            "description" => {
                let d = c.description.trim();
                if d.chars().count() > MAX_DESCRIPTION {
                    v.add("class_schedule.description", format!("must be at most {MAX_DESCRIPTION} characters"));
                }
                values.description = (!d.is_empty()).then(|| d.to_owned());
            }
            _ => {}
        }
    }
    let ids_named = v.iter().any(|(f, _)| f.ends_with(".education_group_id") || f.ends_with(".activity_id"));
    if merged && !ids_named && values.group_id.is_none() && values.activity_id.is_none() {
        for f in ["class_schedule.education_group_id", "class_schedule.activity_id"] {
            v.add(f, "set education_group_id, activity_id or both");
        }
    }
    Draft { values, paths }
}

/// `CreateClassSchedule`: every field set.
pub fn create_class_schedule(req: pb::CreateClassScheduleRequest) -> Result<Draft> {
    let c = required("class_schedule", req.class_schedule)?;
    let mut v = FieldViolations::default();
    let d = draft(blank_values(), &c, CLASS_SCHEDULE_FIELDS.to_vec(), true, &mut v);
    v.into_result()?;
    Ok(d)
}

/// `UpdateClassSchedule`: the fields alone are checked here (bad input is
/// `InvalidArgument` before any look-up); `classes::update` applies them to the stored row.
pub fn update_class_schedule(req: pb::UpdateClassScheduleRequest) -> Result<Update<pb::ClassSchedule>> {
    let c = required("class_schedule", req.class_schedule)?;
    let mut v = FieldViolations::default();
    let id = required_id("class_schedule.id", c.id, &mut v);
    let paths = collect(mask_paths(req.update_mask.as_ref(), CLASS_SCHEDULE_FIELDS), &mut v).unwrap_or_default();
    draft(blank_values(), &c, paths.clone(), false, &mut v);
    v.into_result()?;
    Ok(Update { id, message: c, paths })
}

#[cfg(test)]
mod tests {
    use phoenix_common::validate::fields_of;

    use super::*;

    #[test]
    fn times_need_two_digit_minutes() {
        let mut v = FieldViolations::default();
        assert_eq!(time("t", "08:05", &mut v), NaiveTime::from_hms_opt(8, 5, 0));
        assert!(v.clone().into_result().is_ok());
        assert_eq!(time("t", "8:5", &mut v), None);
        assert!(v.into_result().is_err());
    }

    #[test]
    fn room_windows_name_every_bad_field() {
        let req = pb::CheckRoomConflictRequest {
            room_id: 0,
            weekday: 8,
            start_time: "10:00".into(),
            end_time: "09:00".into(),
        };
        assert_eq!(fields_of(check_room_conflict(&req)), ["room_id", "weekday", "end_time"]);
    }

    #[test]
    fn class_schedules_need_a_group_or_an_activity() {
        let c = pb::ClassSchedule { room_id: 1, weekday: 1, timeframe_id: 2, ..Default::default() };
        let req = pb::CreateClassScheduleRequest { class_schedule: Some(c) };
        assert_eq!(
            fields_of(create_class_schedule(req)),
            ["class_schedule.education_group_id", "class_schedule.activity_id"]
        );
    }
}
