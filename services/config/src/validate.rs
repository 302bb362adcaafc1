//! Request → typed command, collecting every field violation.

use std::collections::HashSet;

use phoenix_common::{Error, FieldViolations, Result};

use crate::registry::{self, SettingDef};

/// A validated value for a registry key.
#[derive(Debug)]
pub(crate) struct SettingWrite {
    pub def: &'static SettingDef,
    pub value: String,
}

/// The registry entry of `key`; unknown keys are `InvalidArgument` naming `field`.
pub(crate) fn known_key(field: &str, key: &str, v: &mut FieldViolations) -> Option<&'static SettingDef> {
    let def = registry::lookup(key.trim());
    if def.is_none() {
        let known: Vec<_> = registry::SETTINGS.iter().map(|d| d.key).collect();
        v.add(field, format!("unknown setting {key:?}; known keys: {}", known.join(", ")));
    }
    def
}

/// One key/value write; `prefix` is `""` or `settings[3].` for imports.
pub(crate) fn setting_write(prefix: &str, key: &str, value: &str, v: &mut FieldViolations) -> Option<SettingWrite> {
    let def = known_key(&format!("{prefix}key"), key, v)?;
    if def.locked {
        v.add(format!("{prefix}key"), format!("setting {:?} is a locked system setting", def.key));
        return None;
    }
    match def.normalize(value) {
        Ok(value) => Some(SettingWrite { def, value }),
        Err(why) => {
            v.add(format!("{prefix}value"), format!("{}: {why}", def.key));
            None
        }
    }
}

/// An import: non-empty, each key once, every item valid.
pub(crate) fn import(items: &[(String, String)]) -> Result<Vec<SettingWrite>> {
    let mut v = FieldViolations::default();
    if items.is_empty() {
        v.add("settings", "must contain at least one setting");
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, (key, value)) in items.iter().enumerate() {
        let prefix = format!("settings[{i}].");
        if !seen.insert(key.trim()) {
            v.add(format!("{prefix}key"), format!("setting {key:?} appears more than once"));
            continue;
        }
        if let Some(w) = setting_write(&prefix, key, value, &mut v) {
            out.push(w);
        }
    }
    v.into_result()?;
    Ok(out)
}

/// A feature-flag key: `[a-z0-9_.]{1,100}` (the table's CHECK).
pub(crate) fn flag_key(field: &str, key: &str) -> Result<String> {
    let mut v = FieldViolations::default();
    let key = collect_flag_key(field, key, &mut v);
    v.into_result()?;
    key.ok_or_else(|| Error::invalid(field, "invalid key"))
}

/// [`flag_key`], adding the violation to `v` instead of returning it.
pub(crate) fn collect_flag_key(field: &str, key: &str, v: &mut FieldViolations) -> Option<String> {
    let ok = (1..=100).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if ok {
        Some(key.to_owned())
    } else {
        v.add(field, format!("must match [a-z0-9_.]{{1,100}}, got {key:?}"));
        None
    }
}

/// Most roles a flag may name (the table's CHECK).
pub(crate) const MAX_FLAG_ROLES: usize = 50;

/// A rollout percentage: unset or 0–100; violations name `field`.
pub(crate) fn rollout_percentage(field: &str, value: Option<i32>, v: &mut FieldViolations) -> Option<i32> {
    match value {
        Some(p) if !(0..=100).contains(&p) => {
            v.add(field, format!("must be 0..=100 (percent of subjects), got {p}"));
            None
        }
        other => other,
    }
}

/// Role names of a flag, trimmed: each non-empty and at most once, at most
/// [`MAX_FLAG_ROLES`]. Whether they exist is checked against `auth.roles` by the caller
/// ([`unknown_roles`]).
pub(crate) fn flag_roles(field: &str, roles: &[String], v: &mut FieldViolations) -> Vec<String> {
    if roles.len() > MAX_FLAG_ROLES {
        v.add(field, format!("at most {MAX_FLAG_ROLES} roles, got {}", roles.len()));
    }
    let mut out: Vec<String> = Vec::with_capacity(roles.len());
    for (i, raw) in roles.iter().enumerate() {
        let name = raw.trim();
        if name.is_empty() {
            v.add(format!("{field}[{i}]"), "must not be empty");
        } else if out.iter().any(|r| r == name) {
            v.add(format!("{field}[{i}]"), format!("role {name:?} appears more than once"));
        } else {
            out.push(name.to_owned());
        }
    }
    out
}

/// Adds a violation for every name of `roles` that is not in `existing`.
pub(crate) fn unknown_roles(field: &str, roles: &[String], existing: &[String], v: &mut FieldViolations) {
    for (i, name) in roles.iter().enumerate() {
        if !existing.contains(name) {
            v.add(format!("{field}[{i}]"), format!("unknown role {name:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_reports_every_bad_item_by_index() {
        let items = vec![
            ("privacy.default_visit_retention_days".to_owned(), "40".to_owned()),
            ("session.end_time".to_owned(), "17:30".to_owned()),
            ("nope".to_owned(), "1".to_owned()),
            ("system.time_zone".to_owned(), "UTC".to_owned()),
            ("session.end_time".to_owned(), "17:00".to_owned()),
        ];
        let Err(Error::InvalidArgument(v)) = import(&items) else { panic!("expected InvalidArgument") };
        let fields: Vec<_> = v.iter().map(|(f, _)| f.to_owned()).collect();
        assert_eq!(fields, ["settings[0].value", "settings[2].key", "settings[3].key", "settings[4].key"]);
    }

    #[test]
    fn flag_rules() {
        let mut v = FieldViolations::default();
        assert_eq!(rollout_percentage("p", Some(0), &mut v), Some(0));
        assert_eq!(rollout_percentage("p", Some(100), &mut v), Some(100));
        assert_eq!(rollout_percentage("p", None, &mut v), None);
        assert!(v.iter().next().is_none());
        rollout_percentage("p", Some(101), &mut v);
        rollout_percentage("p", Some(-1), &mut v);
        let roles = flag_roles("r", &[" staff ".into(), "".into(), "staff".into()], &mut v);
        assert_eq!(roles, ["staff"]);
        unknown_roles("r", &["staff".into(), "wizard".into()], &["staff".into()], &mut v);
        let fields: Vec<_> = v.iter().map(|(f, _)| f.to_owned()).collect();
        assert_eq!(fields, ["p", "p", "r[1]", "r[2]", "r[1]"]);
    }

    #[test]
    fn flag_keys() {
        assert!(flag_key("key", "new_board.v2").is_ok());
        assert!(flag_key("key", "Bad Key").is_err());
        assert!(flag_key("key", "").is_err());
    }
}
