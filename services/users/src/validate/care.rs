//! Privacy consents and pickup schedules, exceptions and notes.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use phoenix_common::validate::{
    Update, finish, optional_text, parse_date, required, required_id, required_text, update,
};
use phoenix_common::{FieldViolations, Result};
use phoenix_proto::users::v1 as pb;

use crate::repo::care::{ConsentFields, ConsentRow, ExceptionFields, NoteFields, ScheduleRow};

/// Updatable fields of a pickup exception.
pub const EXCEPTION_FIELDS: &[&str] = &["exception_date", "pickup_time", "reason"];
/// Updatable fields of a pickup note.
pub const NOTE_FIELDS: &[&str] = &["note_date", "content"];

/// Days before expiry from which a consent needs renewal.
pub const RENEWAL_WINDOW_DAYS: i64 = 30;

/// What the caller asks to store for a consent.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentInput {
    /// The student.
    pub student_id: i64,
    /// Trimmed policy version.
    pub policy_version: String,
    /// Accepted.
    pub accepted: bool,
    /// Validity in days.
    pub duration_days: Option<i32>,
    /// 1–31.
    pub data_retention_days: i32,
    /// A JSON object.
    pub details: Option<serde_json::Value>,
}

/// UpsertPrivacyConsent → input.
pub fn upsert_consent(req: pb::UpsertPrivacyConsentRequest) -> Result<ConsentInput> {
    let c = required("consent", req.consent)?;
    let mut v = FieldViolations::default();
    let student_id = required_id("consent.student_id", c.student_id, &mut v);
    let policy_version = required_text("consent.policy_version", &c.policy_version, &mut v);
    if !(1..=31).contains(&c.data_retention_days) {
        v.add("consent.data_retention_days", format!("must be 1–31 days, got {}", c.data_retention_days));
    }
    if let Some(d) = c.duration_days
        && d <= 0
    {
        v.add("consent.duration_days", format!("must be more than 0 days (leave unset for no expiry), got {d}"));
    }
    let details = match optional_text(c.details_json) {
        None => None,
        Some(raw) => match serde_json::from_str::<serde_json::Value>(&raw) {
            Ok(value @ serde_json::Value::Object(_)) => Some(value),
            _ => {
                v.add("consent.details_json", "must be a JSON object");
                None
            }
        },
    };
    v.into_result()?;
    Ok(ConsentInput {
        student_id,
        policy_version,
        accepted: c.accepted,
        duration_days: c.duration_days,
        data_retention_days: c.data_retention_days,
        details,
    })
}

/// Whether a consent needs renewal at `now`: not accepted, or expiring within 30 days.
pub fn renewal_required(accepted: bool, expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    !accepted || expires_at.is_some_and(|e| e - now < Duration::days(RENEWAL_WINDOW_DAYS))
}

/// The row to store for `input`, given the stored consent of that version: accepting keeps
/// the first acceptance time (or stamps `now`), withdrawing clears it; expiry follows from
/// acceptance + duration.
pub fn consent_fields(input: &ConsentInput, stored: Option<&ConsentRow>, now: DateTime<Utc>) -> ConsentFields {
    let accepted_at = if input.accepted { stored.and_then(|s| s.accepted_at).or(Some(now)) } else { None };
    let expires_at = match (accepted_at, input.duration_days) {
        (Some(a), Some(d)) => Some(a + Duration::days(i64::from(d))),
        _ => None,
    };
    ConsentFields {
        student_id: input.student_id,
        policy_version: input.policy_version.clone(),
        accepted: input.accepted,
        accepted_at,
        expires_at,
        duration_days: input.duration_days,
        renewal_required: renewal_required(input.accepted, expires_at, now),
        data_retention_days: input.data_retention_days,
        details: input.details.clone(),
    }
}

/// Parses `HH:MM`, recording a violation on `field`.
pub fn parse_time(field: &str, raw: &str, v: &mut FieldViolations) -> Option<NaiveTime> {
    let t = raw.trim();
    match NaiveTime::parse_from_str(t, "%H:%M") {
        Ok(time) if t.len() == 5 => Some(time),
        _ => {
            v.add(field, format!("must be a time HH:MM, got {raw:?}"));
            None
        }
    }
}

/// Formats a time as `HH:MM`.
pub fn format_time(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

fn max_len(field: &str, value: &Option<String>, max: usize, v: &mut FieldViolations) {
    if let Some(s) = value
        && s.chars().count() > max
    {
        v.add(field, format!("must be at most {max} characters, got {}", s.chars().count()));
    }
}

/// SetPickupSchedule → (student, entries): at least one, weekdays 1–5 without repeats.
pub fn set_schedule(req: pb::SetPickupScheduleRequest) -> Result<(i64, Vec<ScheduleRow>)> {
    let mut v = FieldViolations::default();
    let student_id = required_id("student_id", req.student_id, &mut v);
    if req.schedules.is_empty() {
        v.add("schedules", "must list at least one weekday");
    }
    let mut out: Vec<ScheduleRow> = Vec::new();
    let mut seen: Vec<i32> = Vec::new();
    for (i, e) in req.schedules.iter().enumerate() {
        let field = |f: &str| format!("schedules[{i}].{f}");
        if !(1..=5).contains(&e.weekday) {
            v.add(field("weekday"), format!("must be 1 (Monday) to 5 (Friday), got {}", e.weekday));
        } else if seen.contains(&e.weekday) {
            v.add(field("weekday"), format!("weekday {} is listed twice", e.weekday));
        }
        seen.push(e.weekday);
        let time = parse_time(&field("pickup_time"), &e.pickup_time, &mut v);
        let notes = optional_text(e.notes.clone());
        max_len(&field("notes"), &notes, 500, &mut v);
        if let (Some(t), Ok(weekday)) = (time, i16::try_from(e.weekday)) {
            out.push(ScheduleRow { weekday, pickup_time: t, notes });
        }
    }
    v.into_result()?;
    Ok((student_id, out))
}

fn set_exception(e: &pb::PickupException, paths: &[&str], f: &mut ExceptionFields, v: &mut FieldViolations) {
    for path in paths {
        match *path {
            "exception_date" => {
                if let Some(d) = parse_date("exception.exception_date", &e.exception_date, v) {
                    f.exception_date = d;
                }
            }
            "pickup_time" => {
                f.pickup_time =
                    optional_text(e.pickup_time.clone()).and_then(|t| parse_time("exception.pickup_time", &t, v))
            }
            "reason" => {
                f.reason = optional_text(e.reason.clone());
                max_len("exception.reason", &f.reason, 255, v);
            }
            _ => {}
        }
    }
}

/// CreatePickupException → (student, fields).
pub fn create_exception(req: pb::CreatePickupExceptionRequest) -> Result<(i64, ExceptionFields)> {
    let e = required("exception", req.exception)?;
    let mut v = FieldViolations::default();
    let student_id = required_id("exception.student_id", e.student_id, &mut v);
    let date = parse_date("exception.exception_date", &e.exception_date, &mut v);
    let mut f = ExceptionFields { exception_date: date.unwrap_or_default(), pickup_time: None, reason: None };
    set_exception(&e, &["pickup_time", "reason"], &mut f, &mut v);
    finish(v, date.map(|_| (student_id, f)))
}

/// UpdatePickupException → id + mask.
pub fn update_exception(req: pb::UpdatePickupExceptionRequest) -> Result<Update<pb::PickupException>> {
    let e = required("exception", req.exception)?;
    update("exception.id", e.id, e, req.update_mask.as_ref(), EXCEPTION_FIELDS)
}

/// The stored fields with the masked changes of `u` applied.
pub fn apply_exception(u: &Update<pb::PickupException>, mut f: ExceptionFields) -> Result<ExceptionFields> {
    let mut v = FieldViolations::default();
    set_exception(&u.message, &u.paths, &mut f, &mut v);
    v.into_result()?;
    Ok(f)
}

fn set_note(n: &pb::PickupNote, paths: &[&str], f: &mut NoteFields, v: &mut FieldViolations) {
    for path in paths {
        match *path {
            "note_date" => {
                if let Some(d) = parse_date("note.note_date", &n.note_date, v) {
                    f.note_date = d;
                }
            }
            "content" => {
                f.content = required_text("note.content", &n.content, v);
                max_len("note.content", &Some(f.content.clone()), 500, v);
            }
            _ => {}
        }
    }
}

/// CreatePickupNote → (student, fields).
pub fn create_note(req: pb::CreatePickupNoteRequest) -> Result<(i64, NoteFields)> {
    let n = required("note", req.note)?;
    let mut v = FieldViolations::default();
    let student_id = required_id("note.student_id", n.student_id, &mut v);
    let date = parse_date("note.note_date", &n.note_date, &mut v);
    let mut f = NoteFields { note_date: date.unwrap_or_default(), content: String::new() };
    set_note(&n, &["content"], &mut f, &mut v);
    finish(v, date.map(|_| (student_id, f)))
}

/// UpdatePickupNote → id + mask.
pub fn update_note(req: pb::UpdatePickupNoteRequest) -> Result<Update<pb::PickupNote>> {
    let n = required("note", req.note)?;
    update("note.id", n.id, n, req.update_mask.as_ref(), NOTE_FIELDS)
}

/// The stored fields with the masked changes of `u` applied.
pub fn apply_note(u: &Update<pb::PickupNote>, mut f: NoteFields) -> Result<NoteFields> {
    let mut v = FieldViolations::default();
    set_note(&u.message, &u.paths, &mut f, &mut v);
    v.into_result()?;
    Ok(f)
}

#[cfg(test)]
mod tests {

    use phoenix_common::validate::fields_of;

    use super::*;

    fn consent(retention: i32, duration: Option<i32>) -> pb::UpsertPrivacyConsentRequest {
        pb::UpsertPrivacyConsentRequest {
            consent: Some(pb::PrivacyConsent {
                student_id: 1,
                policy_version: "2.0".into(),
                accepted: true,
                duration_days: duration,
                data_retention_days: retention,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn retention_is_1_to_31_days_and_duration_positive() {
        assert!(upsert_consent(consent(1, None)).is_ok());
        assert!(upsert_consent(consent(31, Some(365))).is_ok());
        assert_eq!(fields_of(upsert_consent(consent(0, None)).unwrap_err()), ["consent.data_retention_days"]);
        assert_eq!(fields_of(upsert_consent(consent(32, None)).unwrap_err()), ["consent.data_retention_days"]);
        assert_eq!(fields_of(upsert_consent(consent(30, Some(0))).unwrap_err()), ["consent.duration_days"]);
    }

    #[test]
    fn acceptance_is_stamped_once_and_drives_expiry_and_renewal() {
        let now = Utc::now();
        let input = upsert_consent(consent(30, Some(365))).unwrap();
        let f = consent_fields(&input, None, now);
        assert_eq!(f.accepted_at, Some(now));
        assert_eq!(f.expires_at, Some(now + Duration::days(365)));
        assert!(!f.renewal_required);
        let short = upsert_consent(consent(30, Some(10))).unwrap();
        assert!(consent_fields(&short, None, now).renewal_required, "expires within 30 days");
        let withdrawn = ConsentInput { accepted: false, ..input };
        let f = consent_fields(&withdrawn, None, now);
        assert_eq!((f.accepted_at, f.expires_at, f.renewal_required), (None, None, true));
    }

    #[test]
    fn pickup_schedules_are_weekdays_with_times() {
        let entry = |weekday, time: &str| pb::PickupScheduleEntry { weekday, pickup_time: time.into(), notes: None };
        let (_, rows) = set_schedule(pb::SetPickupScheduleRequest {
            student_id: 1,
            schedules: vec![entry(1, "15:30"), entry(5, "13:00")],
        })
        .unwrap();
        assert_eq!(rows.len(), 2);
        let err = set_schedule(pb::SetPickupScheduleRequest {
            student_id: 1,
            schedules: vec![entry(6, "15:30"), entry(2, "3pm"), entry(2, "15:00")],
        })
        .unwrap_err();
        assert_eq!(fields_of(err), ["schedules[0].weekday", "schedules[1].pickup_time", "schedules[2].weekday"]);
        let err = set_schedule(pb::SetPickupScheduleRequest { student_id: 0, schedules: vec![] }).unwrap_err();
        assert_eq!(fields_of(err), ["student_id", "schedules"]);
    }

    #[test]
    fn notes_and_reasons_have_length_limits() {
        let err = create_note(pb::CreatePickupNoteRequest {
            note: Some(pb::PickupNote {
                student_id: 1,
                note_date: "2026-03-01".into(),
                content: "x".repeat(501),
                ..Default::default()
            }),
        })
        .unwrap_err();
        assert_eq!(fields_of(err), ["note.content"]);
        let err = create_exception(pb::CreatePickupExceptionRequest {
            exception: Some(pb::PickupException {
                student_id: 1,
                exception_date: "01.03.2026".into(),
                reason: Some("y".repeat(256)),
                pickup_time: Some("25:00".into()),
                ..Default::default()
            }),
        })
        .unwrap_err();
        assert_eq!(fields_of(err), ["exception.exception_date", "exception.pickup_time", "exception.reason"]);
    }
}
