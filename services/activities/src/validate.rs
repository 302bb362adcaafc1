//! Request → typed command, collecting field violations.

use phoenix_common::FieldViolations;

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
}
