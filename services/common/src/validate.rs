//! Request checks every service shares: ids, required and optional text, dates, update
//! masks and the masked [`Update`], page requests. Each check records a violation on the
//! request field it read into a [`FieldViolations`], so one `InvalidArgument` names every
//! bad field at once (house style: `docs/house-style.md`).

use chrono::NaiveDate;
use prost_types::FieldMask;

use crate::error::{Error, FieldViolations, Result};
use crate::page::PageRequest;

/// A masked update of one resource (`Update*` RPCs): the addressed id, the request's
/// resource message and the validated mask paths. A domain applies it to the stored row
/// with its own `apply_*` in `validate.rs`.
#[derive(Debug)]
pub struct Update<M> {
    /// The addressed resource.
    pub id: i64,
    /// The request's resource message.
    pub message: M,
    /// Validated mask paths.
    pub paths: Vec<&'static str>,
}

/// An [`Update`] of the resource `message` with id `id` (reported on `id_field`) under
/// `mask`, whose paths must be among `updatable`.
pub fn update<M>(
    id_field: &str,
    id: i64,
    message: M,
    mask: Option<&FieldMask>,
    updatable: &[&'static str],
) -> Result<Update<M>> {
    let mut v = FieldViolations::default();
    required_id(id_field, id, &mut v);
    let paths = collect(mask_paths(mask, updatable), &mut v);
    v.into_result()?;
    Ok(Update { id, message, paths: paths.unwrap_or_default() })
}

/// A required resource message of a request (`room` of `CreateRoomRequest`, …).
pub fn required<M>(field: &str, message: Option<M>) -> Result<M> {
    message.ok_or_else(|| Error::invalid(field, "is required"))
}

/// An id addressing a resource (`Get*`, `Delete*`, …): it must be positive.
pub fn id(field: &str, id: i64) -> Result<i64> {
    let mut v = FieldViolations::default();
    required_id(field, id, &mut v);
    v.into_result()?;
    Ok(id)
}

/// The page request of a `List*` RPC, its violations recorded in `v`.
pub fn page(
    collection: &str,
    filters: &str,
    page_size: i32,
    token: &str,
    v: &mut FieldViolations,
) -> Option<PageRequest> {
    collect(PageRequest::parse(collection, filters, page_size, token), v)
}

/// The validated value, or every violation recorded on the way. `value` is `None` only
/// when a violation was recorded, so the fallback error is never seen by a caller.
pub fn finish<T>(v: FieldViolations, value: Option<T>) -> Result<T> {
    v.into_result()?;
    value.ok_or_else(|| Error::invalid("request", "invalid"))
}

/// Parses a `YYYY-MM-DD` date, recording a violation on `field` when it does not parse.
pub fn parse_date(field: &str, value: &str, violations: &mut FieldViolations) -> Option<NaiveDate> {
    match NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d") {
        Ok(d) if value.trim().len() == 10 => Some(d),
        _ => {
            violations.add(field, format!("must be a date YYYY-MM-DD, got {value:?}"));
            None
        }
    }
}

/// Trims optional free text; blank becomes `None` (so "" clears a nullable column).
pub fn optional_text(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Trims a required text field, recording a violation on `field` when it is blank.
pub fn required_text(field: &str, value: &str, violations: &mut FieldViolations) -> String {
    let v = value.trim();
    if v.is_empty() {
        violations.add(field, "is required and must not be blank");
    }
    v.to_owned()
}

/// Checks an optional id reference: when set it must be positive.
pub fn optional_id(field: &str, value: Option<i64>, violations: &mut FieldViolations) -> Option<i64> {
    if let Some(id) = value
        && id <= 0
    {
        violations.add(field, format!("must be a positive id, got {id}"));
    }
    value
}

/// Checks a required id: it must be positive.
pub fn required_id(field: &str, value: i64, violations: &mut FieldViolations) -> i64 {
    if value <= 0 {
        violations.add(field, format!("is required: a positive id, got {value}"));
    }
    value
}

/// The paths of an update mask, checked against the resource's `updatable` fields. `*`
/// means every updatable field (full replacement). An empty mask is rejected: an update
/// must say what it changes (AIP-134 allows either; explicit is safer for partial clients).
pub fn mask_paths(mask: Option<&FieldMask>, updatable: &[&'static str]) -> Result<Vec<&'static str>> {
    let paths: Vec<&str> = mask.map(|m| m.paths.iter().map(|p| p.trim()).collect()).unwrap_or_default();
    if paths.is_empty() {
        return Err(Error::invalid(
            "update_mask",
            format!("list the fields to change (one or more of: {}; or `*`)", updatable.join(", ")),
        ));
    }
    if paths == ["*"] {
        return Ok(updatable.to_vec());
    }
    let mut violations = FieldViolations::default();
    let mut out = Vec::new();
    for p in paths {
        match updatable.iter().find(|u| **u == p) {
            Some(u) if !out.contains(u) => out.push(*u),
            Some(_) => {}
            None => violations
                .add("update_mask", format!("unknown or read-only field {p:?}; updatable: {}", updatable.join(", "))),
        }
    }
    violations.into_result()?;
    Ok(out)
}

/// Moves the violations of a failed validation step into `v`, so one response lists all of
/// them; `None` when the step failed.
pub fn collect<T>(result: Result<T>, v: &mut FieldViolations) -> Option<T> {
    match result {
        Ok(t) => Some(t),
        Err(Error::InvalidArgument(inner)) => {
            for (field, description) in inner.iter() {
                v.add(field, description);
            }
            None
        }
        Err(other) => {
            v.add("request", other.to_string());
            None
        }
    }
}

/// What [`fields_of`] reads the violated request fields from.
pub trait ViolatedFields {
    /// The request fields an `InvalidArgument` names, in order; panics on anything else.
    fn violated_fields(self) -> Vec<String>;
}

impl ViolatedFields for FieldViolations {
    fn violated_fields(self) -> Vec<String> {
        self.iter().map(|(f, _)| f.to_owned()).collect()
    }
}

impl ViolatedFields for Error {
    fn violated_fields(self) -> Vec<String> {
        match self {
            Error::InvalidArgument(v) => v.violated_fields(),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
}

impl<T: std::fmt::Debug> ViolatedFields for Result<T> {
    fn violated_fields(self) -> Vec<String> {
        match self {
            Err(e) => e.violated_fields(),
            Ok(v) => panic!("expected InvalidArgument, got Ok({v:?})"),
        }
    }
}

/// The one test helper of every crate's `validate` tests: the request fields a validation
/// failure names (`fields_of(validate::create_room(req))`), panicking when it did not fail
/// with `InvalidArgument`.
pub fn fields_of(failed: impl ViolatedFields) -> Vec<String> {
    failed.violated_fields()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_must_be_iso() {
        let mut v = FieldViolations::default();
        assert_eq!(parse_date("d", "2026-02-28", &mut v), NaiveDate::from_ymd_opt(2026, 2, 28));
        assert!(v.into_result().is_ok());
        for bad in ["2026-02-30", "28.02.2026", "2026-2-8", ""] {
            let mut v = FieldViolations::default();
            assert_eq!(parse_date("d", bad, &mut v), None, "{bad}");
            assert!(v.into_result().is_err(), "{bad}");
        }
    }

    #[test]
    fn masks_name_known_fields_or_star() {
        let m = |p: &[&str]| FieldMask { paths: p.iter().map(|s| s.to_string()).collect() };
        assert_eq!(mask_paths(Some(&m(&["name", "name"])), &["name", "floor"]).unwrap(), ["name"]);
        assert_eq!(mask_paths(Some(&m(&["*"])), &["name", "floor"]).unwrap(), ["name", "floor"]);
        assert!(mask_paths(None, &["name"]).is_err());
        assert!(mask_paths(Some(&m(&["id"])), &["name"]).is_err());
    }

    #[test]
    fn blank_optional_text_is_none() {
        assert_eq!(optional_text(Some("  ".into())), None);
        assert_eq!(optional_text(Some(" a ".into())), Some("a".into()));
    }

    #[test]
    fn updates_need_an_id_and_a_mask() {
        let m = FieldMask { paths: vec!["name".into()] };
        let u = update("room.id", 3, (), Some(&m), &["name"]).expect("valid");
        assert_eq!((u.id, u.paths), (3, vec!["name"]));
        let Err(Error::InvalidArgument(v)) = update("room.id", 0, (), None, &["name"]) else { panic!("accepted") };
        let fields: Vec<_> = v.iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["room.id", "update_mask"]);
    }
}
