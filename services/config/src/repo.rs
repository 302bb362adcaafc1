//! Diesel queries on `config.settings` and `config.feature_flags` (and the read-only role
//! look-ups in `auth` the flag rules need).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::auth::{account_roles, accounts, roles};
use phoenix_db::schema::config::{feature_flags, job_runs, settings};

use phoenix_common::Result;

use crate::flags::FlagRule;
use crate::validate::{FlagUpdate, NewFlag, SettingWrite};

/// NOTIFY channel every config change is announced on (payload: `setting:<key>` / `flag:<key>`).
pub const CHANGE_CHANNEL: &str = "phoenix_config_changed";

/// A stored setting value.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = settings)]
pub struct StoredSetting {
    /// Registry key.
    pub key: String,
    /// Canonical value.
    pub value: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A feature flag row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = feature_flags)]
pub struct FlagRow {
    /// Key.
    pub key: String,
    /// On/off.
    pub enabled: bool,
    /// Description.
    pub description: Option<String>,
    /// Last changer.
    pub updated_by: Option<i64>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Share of subjects (0–100); `None` = no percentage rule.
    pub rollout_percentage: Option<i32>,
    /// Role names; empty = no role rule.
    pub roles: Vec<String>,
}

impl FlagRow {
    /// The evaluation rule of this flag.
    pub fn rule(&self) -> FlagRule {
        FlagRule {
            enabled: self.enabled,
            // The CHECK keeps it within 0..=100; clamp rather than trust blindly.
            rollout_percentage: self.rollout_percentage.map(|p| u8::try_from(p.clamp(0, 100)).unwrap_or(100)),
            roles: self.roles.clone(),
        }
    }
}

/// Every stored setting.
pub async fn all_settings(conn: &mut AsyncPgConnection) -> Result<Vec<StoredSetting>> {
    Ok(settings::table.select(StoredSetting::as_select()).load(conn).await?)
}

/// Stored values of `keys`.
pub async fn settings_by_keys(conn: &mut AsyncPgConnection, keys: &[&str]) -> Result<Vec<StoredSetting>> {
    Ok(settings::table.filter(settings::key.eq_any(keys)).select(StoredSetting::as_select()).load(conn).await?)
}

/// Inserts or replaces the stored value of a validated write.
pub async fn upsert_setting(conn: &mut AsyncPgConnection, write: &SettingWrite) -> Result<StoredSetting> {
    let (key, value, category) = (write.def.key, write.value.as_str(), write.def.category());
    Ok(diesel::insert_into(settings::table)
        .values((
            settings::key.eq(key),
            settings::value.eq(value),
            settings::category.eq(category),
            settings::description.eq(write.def.description),
            settings::requires_restart.eq(write.def.requires_restart),
        ))
        .on_conflict(settings::key)
        .do_update()
        .set((settings::value.eq(value), settings::category.eq(category)))
        .returning(StoredSetting::as_returning())
        .get_result(conn)
        .await?)
}

/// Deletes the stored value of `key`; returns whether there was one.
pub async fn delete_setting(conn: &mut AsyncPgConnection, key: &str) -> Result<bool> {
    Ok(diesel::delete(settings::table.filter(settings::key.eq(key))).execute(conn).await? > 0)
}

/// Every flag (the cache's snapshot).
pub async fn all_flags(conn: &mut AsyncPgConnection) -> Result<Vec<FlagRow>> {
    Ok(feature_flags::table.select(FlagRow::as_select()).order(feature_flags::key).load(conn).await?)
}

/// One flag.
pub async fn find_flag(conn: &mut AsyncPgConnection, key: &str) -> Result<Option<FlagRow>> {
    Ok(feature_flags::table.find(key).select(FlagRow::as_select()).first(conn).await.optional()?)
}

/// A page of flags after `after` (keyset on the key).
pub async fn list_flags(conn: &mut AsyncPgConnection, after: Option<&str>, limit: i64) -> Result<Vec<FlagRow>> {
    let mut q = feature_flags::table.select(FlagRow::as_select()).order(feature_flags::key).limit(limit).into_boxed();
    if let Some(after) = after {
        q = q.filter(feature_flags::key.gt(after.to_owned()));
    }
    Ok(q.load(conn).await?)
}

/// Number of flags.
pub async fn count_flags(conn: &mut AsyncPgConnection) -> Result<i64> {
    Ok(feature_flags::table.count().get_result(conn).await?)
}

/// Inserts a flag; `None` when the key is taken.
pub async fn insert_flag(
    conn: &mut AsyncPgConnection,
    flag: &NewFlag,
    updated_by: Option<i64>,
) -> Result<Option<FlagRow>> {
    Ok(diesel::insert_into(feature_flags::table)
        .values((
            feature_flags::key.eq(&flag.key),
            feature_flags::enabled.eq(flag.enabled),
            feature_flags::description.eq(flag.description.as_deref()),
            feature_flags::rollout_percentage.eq(flag.rollout_percentage),
            feature_flags::roles.eq(&flag.roles),
            feature_flags::updated_by.eq(updated_by),
        ))
        .on_conflict_do_nothing()
        .returning(FlagRow::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// Changes a flag; `None` when it does not exist.
pub async fn update_flag(
    conn: &mut AsyncPgConnection,
    change: &FlagUpdate,
    updated_by: Option<i64>,
) -> Result<Option<FlagRow>> {
    let key = change.key.as_str();
    let Some(current) =
        feature_flags::table.find(key).select(FlagRow::as_select()).for_update().first(conn).await.optional()?
    else {
        return Ok(None);
    };
    let description = match &change.description {
        Some(d) => d.as_deref(),
        None => current.description.as_deref(),
    };
    Ok(diesel::update(feature_flags::table.find(key))
        .set((
            feature_flags::enabled.eq(change.enabled.unwrap_or(current.enabled)),
            feature_flags::description.eq(description),
            feature_flags::rollout_percentage.eq(change.rollout_percentage.unwrap_or(current.rollout_percentage)),
            feature_flags::roles.eq(change.roles.as_ref().unwrap_or(&current.roles)),
            feature_flags::updated_by.eq(updated_by),
        ))
        .returning(FlagRow::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// Deletes a flag; returns whether it existed.
pub async fn delete_flag(conn: &mut AsyncPgConnection, key: &str) -> Result<bool> {
    Ok(diesel::delete(feature_flags::table.find(key)).execute(conn).await? > 0)
}

/// Which of `names` are existing roles (`auth.roles`, read-only cross-schema); no query
/// for no names.
pub async fn existing_roles(conn: &mut AsyncPgConnection, names: &[String]) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    Ok(roles::table.filter(roles::name.eq_any(names)).select(roles::name).load(conn).await?)
}

/// Role names of account `account_id`; `None` when there is no such account.
pub async fn account_role_names(conn: &mut AsyncPgConnection, account_id: i64) -> Result<Option<Vec<String>>> {
    let exists: bool = diesel::select(diesel::dsl::exists(accounts::table.find(account_id).select(accounts::id)))
        .get_result(conn)
        .await?;
    if !exists {
        return Ok(None);
    }
    let names = account_roles::table
        .inner_join(roles::table)
        .filter(account_roles::account_id.eq(account_id))
        .select(roles::name)
        .order(roles::name)
        .load(conn)
        .await?;
    Ok(Some(names))
}

/// Announces a change to every replica's cache; delivered only if the transaction commits.
pub async fn notify_change(conn: &mut AsyncPgConnection, what: &str) -> Result<()> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<diesel::sql_types::Text, _>(CHANGE_CHANNEL)
        .bind::<diesel::sql_types::Text, _>(what)
        .execute(conn)
        .await?;
    Ok(())
}

/// A row of `config.job_runs`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = job_runs, check_for_backend(diesel::pg::Pg))]
pub struct JobRunRow {
    pub id: i64,
    pub job: String,
    pub trigger: String,
    pub dry_run: bool,
    pub outcome: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub acted_for: DateTime<Utc>,
    pub counts: serde_json::Value,
    pub error: Option<String>,
}

/// Runs of `job` (every job when `None`), newest first, ids below `before`; and the total.
pub async fn list_job_runs(
    conn: &mut AsyncPgConnection,
    job: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<JobRunRow>, i64)> {
    let filtered = || {
        let mut q = job_runs::table.into_boxed();
        if let Some(job) = job {
            q = q.filter(job_runs::job.eq(job.to_owned()));
        }
        q
    };
    let mut q = filtered().select(JobRunRow::as_select()).order(job_runs::id.desc()).limit(limit);
    if let Some(b) = before {
        q = q.filter(job_runs::id.lt(b));
    }
    let rows = q.load(conn).await?;
    let total = filtered().count().get_result(conn).await?;
    Ok((rows, total))
}
