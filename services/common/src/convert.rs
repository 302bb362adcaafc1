//! Small proto ⇄ domain helpers every service needs: timestamps, `YYYY-MM-DD` dates,
//! `FieldMask` paths, trimmed optional text, database constraint names, `LIKE` patterns.

use chrono::{DateTime, NaiveDate, Utc};
use prost_types::{FieldMask, Timestamp};

use crate::error::{Error, FieldViolations, Result};

/// A `google.protobuf.Timestamp` for a database time.
pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

/// A calendar date as `YYYY-MM-DD`.
pub fn format_date(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
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

/// The constraint a database error names, if it is a constraint violation.
pub fn violated_constraint(err: &diesel::result::Error) -> Option<&str> {
    match err {
        diesel::result::Error::DatabaseError(_, info) => info.constraint_name(),
        _ => None,
    }
}

/// A `LIKE`/`ILIKE` pattern matching `value` anywhere (`%`, `_` and `\` in it are literal).
pub fn like_contains(value: &str) -> String {
    format!("%{}%", like_escape(value))
}

/// A `LIKE`/`ILIKE` pattern matching values that start with `value`.
pub fn like_prefix(value: &str) -> String {
    format!("{}%", like_escape(value))
}

/// A `LIKE`/`ILIKE` pattern matching exactly `value` (`ILIKE` = case-insensitive equality).
pub fn like_exact(value: &str) -> String {
    like_escape(value)
}

fn like_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
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
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("50%_a\\"), "%50\\%\\_a\\\\%");
        assert_eq!(like_prefix("Mü"), "Mü%");
        assert_eq!(like_exact("a%"), "a\\%");
    }

    #[test]
    fn blank_optional_text_is_none() {
        assert_eq!(optional_text(Some("  ".into())), None);
        assert_eq!(optional_text(Some(" a ".into())), Some("a".into()));
    }
}
