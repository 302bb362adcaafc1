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
    let ok = (1..=100).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if ok {
        Ok(key.to_owned())
    } else {
        Err(Error::invalid(field, format!("must match [a-z0-9_.]{{1,100}}, got {key:?}")))
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
    fn flag_keys() {
        assert!(flag_key("key", "new_board.v2").is_ok());
        assert!(flag_key("key", "Bad Key").is_err());
        assert!(flag_key("key", "").is_err());
    }
}
