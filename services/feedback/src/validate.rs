//! Request → typed command, collecting every field violation.

use chrono::{NaiveDate, NaiveTime, Timelike};
use phoenix_common::page::PageRequest;
use phoenix_common::validate::{finish, id, parse_date, required, required_id};
use phoenix_common::{Error, FieldViolations, Result};
use phoenix_proto::feedback::v1 as pb;

use crate::convert::{TIME_FORMAT, Value};
use crate::repo::{EntryFilter, NewEntry};

/// Most entries one batch may carry.
pub(crate) const MAX_BATCH: usize = 500;
/// Longest comment, in characters (the table's CHECK).
pub(crate) const MAX_COMMENT_CHARS: usize = 2000;

/// A strict `HH:MM:SS` time of day (no leap second).
pub(crate) fn time(field: &str, raw: &str, v: &mut FieldViolations) -> Option<NaiveTime> {
    let raw = raw.trim();
    let parsed = (raw.len() == 8)
        .then(|| NaiveTime::parse_from_str(raw, TIME_FORMAT).ok())
        .flatten()
        .filter(|t| t.nanosecond() < 1_000_000_000);
    if parsed.is_none() {
        v.add(field, format!("must be a time of day HH:MM:SS, got {raw:?}"));
    }
    parsed
}

/// One entry; `prefix` is `entry.` or `entries[3].`. An empty day is `today`.
pub(crate) fn entry(
    prefix: &str,
    e: &pb::FeedbackEntry,
    today: NaiveDate,
    v: &mut FieldViolations,
) -> Option<NewEntry> {
    let student_id = required_id(&format!("{prefix}student_id"), e.student_id, v);
    let value = Value::try_from(e.value).map_err(|why| v.add(format!("{prefix}value"), why)).ok();
    let day = if e.day.trim().is_empty() { Some(today) } else { parse_date(&format!("{prefix}day"), &e.day, v) };
    let time = if e.time.trim().is_empty() {
        v.add(format!("{prefix}time"), "is required (HH:MM:SS)");
        None
    } else {
        time(&format!("{prefix}time"), &e.time, v)
    };
    if e.device_id < 0 {
        v.add(format!("{prefix}device_id"), format!("must be a positive id or 0 for none, got {}", e.device_id));
    }
    Some(NewEntry {
        student_id,
        value: value?.as_str(),
        day: day?,
        time: time?,
        is_mensa_feedback: e.is_mensa_feedback,
        device_id: (e.device_id > 0).then_some(e.device_id),
    })
}

/// CreateFeedbackEntry → the entry to insert; an empty day is `today`.
pub(crate) fn create_entry(req: pb::CreateFeedbackEntryRequest, today: NaiveDate) -> Result<NewEntry> {
    let e = required("entry", req.entry)?;
    let mut v = FieldViolations::default();
    let new = entry("entry.", &e, today, &mut v);
    finish(v, new)
}

/// A batch: 1 to [`MAX_BATCH`] entries, every item valid; each bad item is named by index.
pub(crate) fn batch(items: &[pb::FeedbackEntry], today: NaiveDate) -> Result<Vec<NewEntry>> {
    let mut v = FieldViolations::default();
    if items.is_empty() {
        v.add("entries", "must contain at least one entry");
    } else if items.len() > MAX_BATCH {
        v.add("entries", format!("must contain at most {MAX_BATCH} entries, got {}", items.len()));
        return Err(Error::InvalidArgument(v));
    }
    let out: Vec<_> =
        items.iter().enumerate().filter_map(|(i, e)| entry(&format!("entries[{i}]."), e, today, &mut v)).collect();
    v.into_result()?;
    Ok(out)
}

/// ListFeedbackEntries → filter + page.
pub(crate) fn list_entries(req: pb::ListFeedbackEntriesRequest) -> Result<(EntryFilter, PageRequest)> {
    let filter = filter(&req)?;
    let page = PageRequest::parse("feedback entries", &format!("{filter:?}"), req.page_size, &req.page_token)?;
    Ok((filter, page))
}

/// The filters of a list request.
fn filter(req: &pb::ListFeedbackEntriesRequest) -> Result<EntryFilter> {
    let mut v = FieldViolations::default();
    let student_id = match req.student_id {
        0 => None,
        s => Some(required_id("student_id", s, &mut v)),
    };
    let optional_day = |field: &str, raw: &str, v: &mut FieldViolations| {
        if raw.trim().is_empty() { None } else { parse_date(field, raw, v) }
    };
    let on = optional_day("day", &req.day, &mut v);
    let mut from = optional_day("start_day", &req.start_day, &mut v);
    let mut to = optional_day("end_day", &req.end_day, &mut v);
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        v.add("end_day", format!("must not be before start_day ({f}), got {t}"));
    }
    let has_range = !req.start_day.trim().is_empty() || !req.end_day.trim().is_empty();
    if !req.day.trim().is_empty() && has_range {
        v.add("day", "give either day or a start_day/end_day range, not both");
    }
    v.into_result()?;
    if on.is_some() {
        (from, to) = (on, on);
    }
    Ok(EntryFilter { student_id, from, to, is_mensa_feedback: req.is_mensa_feedback })
}

/// CreateFeedbackComment → (entry, trimmed body).
pub(crate) fn create_comment(req: pb::CreateFeedbackCommentRequest) -> Result<(i64, String)> {
    let mut v = FieldViolations::default();
    let entry_id = required_id("entry_id", req.entry_id, &mut v);
    let body = match &req.comment {
        None => {
            v.add("comment", "is required");
            None
        }
        Some(c) => comment_body("comment.body", &c.body, &mut v),
    };
    let body = finish(v, body)?;
    Ok((entry_id, body))
}

/// ListFeedbackComments → (entry, page).
pub(crate) fn list_comments(req: pb::ListFeedbackCommentsRequest) -> Result<(i64, PageRequest)> {
    let entry_id = id("entry_id", req.entry_id)?;
    let page = PageRequest::parse("feedback comments", &format!("entry={entry_id}"), req.page_size, &req.page_token)?;
    Ok((entry_id, page))
}

/// A comment body: trimmed, 1 to [`MAX_COMMENT_CHARS`] characters.
fn comment_body(field: &str, raw: &str, v: &mut FieldViolations) -> Option<String> {
    let body = raw.trim();
    let chars = body.chars().count();
    if chars == 0 {
        v.add(field, "must not be empty");
        return None;
    }
    if chars > MAX_COMMENT_CHARS {
        v.add(field, format!("must be at most {MAX_COMMENT_CHARS} characters, got {chars}"));
        return None;
    }
    Some(body.to_owned())
}

#[cfg(test)]
mod tests {
    use phoenix_common::validate::fields_of;

    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 29).expect("date")
    }

    fn good() -> pb::FeedbackEntry {
        pb::FeedbackEntry {
            student_id: 7,
            value: pb::FeedbackValue::Positive as i32,
            time: "12:30:00".into(),
            ..Default::default()
        }
    }

    #[test]
    fn days_and_times_are_strict() {
        let mut v = FieldViolations::default();
        assert_eq!(parse_date("d", "2024-02-29", &mut v), NaiveDate::from_ymd_opt(2024, 2, 29));
        assert_eq!(time("t", "23:59:59", &mut v), NaiveTime::from_hms_opt(23, 59, 59));
        assert!(v.clone().into_result().is_ok());
        for bad in ["2023-02-29", "2026-1-05", "05.01.2026", ""] {
            assert_eq!(parse_date("d", bad, &mut v), None, "{bad}");
        }
        for bad in ["24:00:00", "12:30", "7:30:00", "12:30:60", "noon"] {
            assert_eq!(time("t", bad, &mut v), None, "{bad}");
        }
    }

    #[test]
    fn an_entry_defaults_its_day_to_today() {
        let mut v = FieldViolations::default();
        let e = entry("entry.", &good(), today(), &mut v).expect("valid");
        assert!(v.into_result().is_ok());
        assert_eq!((e.day, e.value, e.device_id), (today(), "positive", None));
    }

    #[test]
    fn a_batch_names_every_bad_item_by_index() {
        let mut items = vec![good(); 4];
        items[1].value = 0;
        items[3].student_id = 0;
        items[3].day = "2026-02-30".into();
        assert_eq!(fields_of(batch(&items, today())), ["entries[1].value", "entries[3].student_id", "entries[3].day"]);
        assert_eq!(fields_of(batch(&[], today())), ["entries"]);
        assert_eq!(fields_of(batch(&vec![good(); MAX_BATCH + 1], today())), ["entries"]);
        assert_eq!(batch(&items[..1], today()).expect("valid").len(), 1);
    }

    #[test]
    fn list_filters() {
        let req = |day: &str, start: &str, end: &str| pb::ListFeedbackEntriesRequest {
            day: day.into(),
            start_day: start.into(),
            end_day: end.into(),
            ..Default::default()
        };
        let f = filter(&req("2026-03-02", "", "")).expect("day");
        assert_eq!((f.from, f.to), (NaiveDate::from_ymd_opt(2026, 3, 2), NaiveDate::from_ymd_opt(2026, 3, 2)));
        assert!(filter(&req("", "2026-03-02", "2026-03-02")).is_ok());
        assert_eq!(fields_of(filter(&req("", "2026-03-02", "2026-03-01"))), ["end_day"]);
        assert_eq!(fields_of(filter(&req("2026-03-02", "2026-03-01", ""))), ["day"]);
        assert_eq!(fields_of(filter(&req("x", "", ""))), ["day"]);
    }

    #[test]
    fn comment_bodies() {
        let mut v = FieldViolations::default();
        assert_eq!(comment_body("b", "  ok ", &mut v).as_deref(), Some("ok"));
        assert!(comment_body("b", &"ä".repeat(2000), &mut v).is_some());
        assert!(v.clone().into_result().is_ok());
        assert_eq!(comment_body("b", "   ", &mut v), None);
        assert_eq!(comment_body("b", &"ä".repeat(2001), &mut v), None);
        assert_eq!(v.iter().count(), 2);
    }
}
