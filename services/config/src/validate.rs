//! Requests → typed commands, collecting every field violation; pure, no I/O (the role
//! names a flag write names are looked up by the handler and passed in).

use std::collections::HashSet;

use phoenix_common::jobs::Job;
use phoenix_common::page::PageRequest;
use phoenix_common::{Error, FieldViolations, Result};
use phoenix_proto::config::v1 as pb;

use crate::registry::{self, SettingDef};

/// Update-mask paths of `UpdateFeatureFlag`.
const FLAG_PATHS: [&str; 4] = ["enabled", "description", "rollout_percentage", "roles"];

/// A validated value for a registry key.
#[derive(Debug)]
pub(crate) struct SettingWrite {
    pub def: &'static SettingDef,
    pub value: String,
}

/// A validated new feature flag (`CreateFeatureFlag`).
#[derive(Debug)]
pub(crate) struct NewFlag {
    pub key: String,
    pub enabled: bool,
    pub description: Option<String>,
    pub rollout_percentage: Option<i32>,
    pub roles: Vec<String>,
}

/// A validated partial change of a feature flag (`UpdateFeatureFlag`); `None` = keep.
#[derive(Debug)]
pub(crate) struct FlagUpdate {
    pub key: String,
    pub enabled: Option<bool>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// `Some(None)` removes the rule.
    pub rollout_percentage: Option<Option<i32>>,
    /// `Some(vec![])` removes the rule.
    pub roles: Option<Vec<String>>,
}

/// The setting a `GetSetting` / `ResetSetting` addresses: blank → `InvalidArgument`,
/// unknown → `NotFound`.
pub(crate) fn addressed_setting(key: &str) -> Result<&'static SettingDef> {
    if key.trim().is_empty() {
        return Err(Error::invalid("key", "must not be empty"));
    }
    registry::lookup(key.trim()).ok_or_else(|| Error::not_found("setting", key))
}

/// `ListSettings`: the category filter (trimmed, lower-case; empty = all) and the page.
pub(crate) fn list_settings(req: &pb::ListSettingsRequest) -> Result<(String, PageRequest)> {
    let category = req.category.trim().to_ascii_lowercase();
    let page = PageRequest::parse("settings", &category, req.page_size, &req.page_token)?;
    Ok((category, page))
}

/// `UpdateSetting`: a known, unlocked key (a request field, so unknown is
/// `InvalidArgument`) and a valid value for it.
pub(crate) fn update_setting(req: &pb::UpdateSettingRequest) -> Result<SettingWrite> {
    let def = addressed_setting(&req.key).map_err(|e| match e {
        Error::NotFound { .. } => {
            let mut v = FieldViolations::default();
            known_key("key", &req.key, &mut v);
            Error::InvalidArgument(v)
        }
        other => other,
    })?;
    if def.locked {
        return Err(Error::precondition(
            "SETTING_LOCKED",
            format!("{} is a locked system setting; it is set at deployment", def.key),
        ));
    }
    let mut v = FieldViolations::default();
    let write = setting_write("", &req.key, &req.value, &mut v);
    phoenix_common::validate::finish(v, write)
}

/// `ResetSetting`: a known setting that is not locked.
pub(crate) fn reset_setting(req: &pb::ResetSettingRequest) -> Result<&'static SettingDef> {
    let def = addressed_setting(&req.key)?;
    if def.locked {
        return Err(Error::precondition("SETTING_LOCKED", format!("{} is a locked system setting", def.key)));
    }
    Ok(def)
}

/// `ImportSettings`: see [`import`].
pub(crate) fn import_settings(req: pb::ImportSettingsRequest) -> Result<Vec<SettingWrite>> {
    let items: Vec<(String, String)> = req.settings.into_iter().map(|s| (s.key, s.value)).collect();
    import(&items)
}

/// `ListFeatureFlags`: the page (no filters).
/// `ListJobRuns`: a known job name (or none) and the page.
pub(crate) fn list_job_runs(req: &pb::ListJobRunsRequest) -> Result<(Option<Job>, PageRequest)> {
    let mut v = FieldViolations::default();
    let name = req.job.trim();
    let job = if name.is_empty() {
        None
    } else {
        let job = Job::from_name(name);
        if job.is_none() {
            let known: Vec<_> = Job::ALL.iter().map(|j| j.name()).collect();
            v.add("job", format!("unknown job {name:?}; the jobs are: {}", known.join(", ")));
        }
        job
    };
    let page = phoenix_common::validate::page("job_runs", name, req.page_size, &req.page_token, &mut v);
    Ok((job, phoenix_common::validate::finish(v, page)?))
}

pub(crate) fn list_feature_flags(req: &pb::ListFeatureFlagsRequest) -> Result<PageRequest> {
    PageRequest::parse("feature_flags", "", req.page_size, &req.page_token)
}

/// The role names (trimmed, non-blank) a flag write names: the handler looks them up in
/// `auth.roles` and passes the existing ones to [`create_feature_flag`] /
/// [`update_feature_flag`].
pub(crate) fn named_roles(flag: Option<&pb::FeatureFlag>) -> Vec<String> {
    let roles = flag.map(|f| f.roles.as_slice()).unwrap_or_default();
    roles.iter().map(|r| r.trim()).filter(|r| !r.is_empty()).map(str::to_owned).collect()
}

/// `CreateFeatureFlag`; `existing_roles`: which of [`named_roles`] exist.
pub(crate) fn create_feature_flag(req: pb::CreateFeatureFlagRequest, existing_roles: &[String]) -> Result<NewFlag> {
    let flag = phoenix_common::validate::required("feature_flag", req.feature_flag)?;
    let mut v = FieldViolations::default();
    let key = collect_flag_key("feature_flag.key", &flag.key, &mut v);
    let (rollout_percentage, roles) = flag_rule(&flag, existing_roles, &mut v);
    let key = phoenix_common::validate::finish(v, key)?;
    Ok(NewFlag { key, enabled: flag.enabled, description: description(&flag), rollout_percentage, roles })
}

/// `UpdateFeatureFlag`: the addressed key, the mask (empty = every field) and the rule;
/// `existing_roles`: which of [`named_roles`] exist.
pub(crate) fn update_feature_flag(req: pb::UpdateFeatureFlagRequest, existing_roles: &[String]) -> Result<FlagUpdate> {
    let flag = phoenix_common::validate::required("feature_flag", req.feature_flag)?;
    let key = flag_key("feature_flag.key", &flag.key)?;
    let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
    let mut v = FieldViolations::default();
    for p in &paths {
        if !FLAG_PATHS.contains(&p.as_str()) {
            v.add("update_mask", format!("unknown path {p:?}; allowed: {}", FLAG_PATHS.join(", ")));
        }
    }
    let wants = |path: &str| paths.is_empty() || paths.iter().any(|p| p == path);
    let (rollout_percentage, roles) = flag_rule(&flag, existing_roles, &mut v);
    v.into_result()?;
    Ok(FlagUpdate {
        enabled: wants("enabled").then_some(flag.enabled),
        description: wants("description").then(|| description(&flag)),
        rollout_percentage: wants("rollout_percentage").then_some(rollout_percentage),
        roles: wants("roles").then_some(roles),
        key,
    })
}

/// `EvaluateFeatureFlag`: the flag key and the optional subject account.
pub(crate) fn evaluate_feature_flag(req: &pb::EvaluateFeatureFlagRequest) -> Result<(String, Option<i64>)> {
    let mut v = FieldViolations::default();
    let key = collect_flag_key("key", &req.key, &mut v);
    if req.subject_account_id.is_some_and(|id| id <= 0) {
        v.add("subject_account_id", "must be a positive account id");
    }
    Ok((phoenix_common::validate::finish(v, key)?, req.subject_account_id))
}

fn description(flag: &pb::FeatureFlag) -> Option<String> {
    Some(flag.description.trim()).filter(|d| !d.is_empty()).map(str::to_owned)
}

/// The percentage and role names of a flag write, role names checked against
/// `existing_roles`.
fn flag_rule(flag: &pb::FeatureFlag, existing_roles: &[String], v: &mut FieldViolations) -> (Option<i32>, Vec<String>) {
    let rollout_percentage = rollout_percentage("feature_flag.rollout_percentage", flag.rollout_percentage, v);
    let roles = flag_roles("feature_flag.roles", &flag.roles, v);
    unknown_roles("feature_flag.roles", &roles, existing_roles, v);
    (rollout_percentage, roles)
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
