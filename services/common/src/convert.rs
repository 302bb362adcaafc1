//! Small row → proto helpers every service needs: `YYYY-MM-DD` dates, database constraint
//! names, `LIKE` patterns. Timestamps are [`crate::time::to_timestamp`]; request checks are
//! [`crate::validate`].

use chrono::NaiveDate;

/// A calendar date as `YYYY-MM-DD`.
pub fn format_date(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
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
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("50%_a\\"), "%50\\%\\_a\\\\%");
        assert_eq!(like_prefix("Mü"), "Mü%");
        assert_eq!(like_exact("a%"), "a\\%");
    }
}
