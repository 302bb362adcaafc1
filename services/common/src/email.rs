//! Email addresses as Phoenix stores them: trimmed and lower-case (the
//! `ck_*_email_normalised` constraints), with a minimal shape check.

/// Normalises `email` (trim, lower-case) and checks its shape: at most 254 characters, no
/// whitespace, one `@` with a non-empty local part and a dotted domain. `None` if invalid.
pub fn normalize(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    valid.then_some(email)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalize("  Admin@School.DE ").as_deref(), Some("admin@school.de"));
        for bad in ["", "admin", "a@b", "a b@c.de", "@c.de", "a@.de", "a@@c.de"] {
            assert!(normalize(bad).is_none(), "{bad}");
        }
    }
}
