//! The tonic handlers of `phoenix.config.v1.ConfigService`.

use diesel_async::AsyncConnection;
use pb::config_service_server::ConfigService;
use phoenix_common::authz::{self, AuthContext, MethodTable, Principal, Requirement};
use phoenix_common::caller::Caller;
use phoenix_common::db::DbPool;
use phoenix_common::page::KeyPage;
use phoenix_common::{Error, FieldViolations};
use phoenix_proto::config::v1 as pb;
use tonic::{Request, Response, Status};

use crate::flags::Subject;
use crate::retention::{self, RetentionOptions, RunOutcome, Trigger};
use crate::{ConfigCache, convert, registry, repo, validate};

/// The permission each RPC needs (checked by the shared auth layer; strings from the seed).
pub const METHODS: MethodTable = &[
    ("/phoenix.config.v1.ConfigService/GetSetting", Requirement::Permission("config:read")),
    ("/phoenix.config.v1.ConfigService/ListSettings", Requirement::Permission("config:read")),
    ("/phoenix.config.v1.ConfigService/UpdateSetting", Requirement::Permission("config:update")),
    ("/phoenix.config.v1.ConfigService/ResetSetting", Requirement::Permission("config:manage")),
    ("/phoenix.config.v1.ConfigService/ImportSettings", Requirement::Permission("config:manage")),
    ("/phoenix.config.v1.ConfigService/GetFeatureFlag", Requirement::Permission("config:read")),
    ("/phoenix.config.v1.ConfigService/ListFeatureFlags", Requirement::Permission("config:read")),
    ("/phoenix.config.v1.ConfigService/CreateFeatureFlag", Requirement::Permission("config:manage")),
    ("/phoenix.config.v1.ConfigService/UpdateFeatureFlag", Requirement::Permission("config:update")),
    ("/phoenix.config.v1.ConfigService/DeleteFeatureFlag", Requirement::Permission("config:manage")),
    // Any caller for itself; evaluating for another account checks config:read in the handler.
    ("/phoenix.config.v1.ConfigService/EvaluateFeatureFlag", Requirement::Authenticated),
    ("/phoenix.config.v1.ConfigService/RunRetentionCleanup", Requirement::Permission("config:manage")),
];

/// Update-mask paths of `UpdateFeatureFlag`.
const FLAG_PATHS: [&str; 4] = ["enabled", "description", "rollout_percentage", "roles"];

/// The service state.
#[derive(Clone)]
pub struct ConfigServiceImpl {
    pool: DbPool,
    cache: ConfigCache,
    retention: RetentionOptions,
}

impl std::fmt::Debug for ConfigServiceImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigServiceImpl").finish_non_exhaustive()
    }
}

impl ConfigServiceImpl {
    /// A service on `pool`, reading flags and the retention default through the process's
    /// shared `cache`.
    pub fn new(pool: DbPool, cache: ConfigCache, retention: RetentionOptions) -> Self {
        Self { pool, cache, retention }
    }

    /// After a committed write: this replica sees it at once (others through NOTIFY).
    async fn refresh_cache(&self) {
        if let Err(e) = self.cache.refresh().await {
            tracing::warn!(error = %e, "config cache: reload after a write failed; the notice will bring it");
        }
    }
}

/// A validated flag rule of a create or update request.
struct FlagRuleInput {
    rollout_percentage: Option<i32>,
    roles: Vec<String>,
}

/// Validates percentage and role names (the latter against `auth.roles`).
async fn flag_rule_input(
    conn: &mut diesel_async::AsyncPgConnection,
    flag: &pb::FeatureFlag,
    v: &mut FieldViolations,
) -> Result<FlagRuleInput, Error> {
    let rollout_percentage =
        validate::rollout_percentage("feature_flag.rollout_percentage", flag.rollout_percentage, v);
    let roles = validate::flag_roles("feature_flag.roles", &flag.roles, v);
    if !roles.is_empty() {
        let existing = repo::existing_roles(conn, &roles).await?;
        validate::unknown_roles("feature_flag.roles", &roles, &existing, v);
    }
    Ok(FlagRuleInput { rollout_percentage, roles })
}

type Reply<T> = Result<Response<T>, Status>;

fn lookup_addressed(key: &str) -> Result<&'static registry::SettingDef, Error> {
    if key.trim().is_empty() {
        return Err(Error::invalid("key", "must not be empty"));
    }
    registry::lookup(key.trim()).ok_or_else(|| Error::not_found("setting", key))
}

#[tonic::async_trait]
impl ConfigService for ConfigServiceImpl {
    async fn get_setting(&self, request: Request<pb::GetSettingRequest>) -> Reply<pb::GetSettingResponse> {
        let def = lookup_addressed(&request.get_ref().key)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let stored = repo::settings_by_keys(&mut conn, &[def.key]).await.map_err(Error::from)?;
        Ok(Response::new(pb::GetSettingResponse { setting: Some(convert::setting(def, stored.first())) }))
    }

    async fn list_settings(&self, request: Request<pb::ListSettingsRequest>) -> Reply<pb::ListSettingsResponse> {
        let req = request.into_inner();
        let category = req.category.trim().to_ascii_lowercase();
        let page = KeyPage::parse(req.page_size, &req.page_token, &category)?;
        let matching: Vec<_> =
            registry::SETTINGS.iter().filter(|d| category.is_empty() || d.category() == category).collect();
        let total_size = i32::try_from(matching.len()).unwrap_or(i32::MAX);
        // The registry is sorted by key, so the key is the keyset cursor.
        let mut defs: Vec<_> = matching
            .into_iter()
            .filter(|d| page.after.as_deref().is_none_or(|a| d.key > a))
            .take(usize::try_from(page.fetch_limit()).unwrap_or(usize::MAX))
            .collect();
        let next_page_token = page.finish(&mut defs, |d| d.key.to_owned(), &category);
        let keys: Vec<&str> = defs.iter().map(|d| d.key).collect();
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let stored = repo::settings_by_keys(&mut conn, &keys).await.map_err(Error::from)?;
        let settings = defs.iter().map(|d| convert::setting(d, stored.iter().find(|s| s.key == d.key))).collect();
        Ok(Response::new(pb::ListSettingsResponse { settings, next_page_token, total_size }))
    }

    async fn update_setting(&self, request: Request<pb::UpdateSettingRequest>) -> Reply<pb::UpdateSettingResponse> {
        let req = request.into_inner();
        let def = lookup_addressed(&req.key).map_err(|e| match e {
            // The key of a write is a request field: unknown → InvalidArgument naming it.
            Error::NotFound { .. } => {
                let mut v = FieldViolations::default();
                validate::known_key("key", &req.key, &mut v);
                Error::InvalidArgument(v)
            }
            other => other,
        })?;
        if def.locked {
            return Err(Error::precondition(
                "SETTING_LOCKED",
                format!("{} is a locked system setting; it is set at deployment", def.key),
            )
            .into());
        }
        let mut v = FieldViolations::default();
        let write = validate::setting_write("", &req.key, &req.value, &mut v);
        v.into_result()?;
        let write = write.ok_or_else(|| Error::invalid("value", "invalid value"))?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let stored = conn
            .transaction::<_, Error, _>(async |conn| {
                let row = repo::upsert_setting(
                    conn,
                    write.def.key,
                    &write.value,
                    write.def.category(),
                    write.def.description,
                    write.def.requires_restart,
                )
                .await?;
                repo::notify_change(conn, &format!("setting:{}", write.def.key)).await?;
                Ok(row)
            })
            .await?;
        drop(conn);
        self.refresh_cache().await;
        Ok(Response::new(pb::UpdateSettingResponse { setting: Some(convert::setting(def, Some(&stored))) }))
    }

    async fn reset_setting(&self, request: Request<pb::ResetSettingRequest>) -> Reply<pb::ResetSettingResponse> {
        let def = lookup_addressed(&request.get_ref().key)?;
        if def.locked {
            return Err(Error::precondition("SETTING_LOCKED", format!("{} is a locked system setting", def.key)).into());
        }
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        conn.transaction::<_, Error, _>(async |conn| {
            if repo::delete_setting(conn, def.key).await? {
                repo::notify_change(conn, &format!("setting:{}", def.key)).await?;
            }
            Ok(())
        })
        .await?;
        drop(conn);
        self.refresh_cache().await;
        Ok(Response::new(pb::ResetSettingResponse { setting: Some(convert::setting(def, None)) }))
    }

    async fn import_settings(&self, request: Request<pb::ImportSettingsRequest>) -> Reply<pb::ImportSettingsResponse> {
        let items: Vec<(String, String)> =
            request.into_inner().settings.into_iter().map(|s| (s.key, s.value)).collect();
        let writes = validate::import(&items)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let settings = conn
            .transaction::<_, Error, _>(async |conn| {
                let mut out = Vec::with_capacity(writes.len());
                for w in &writes {
                    let row = repo::upsert_setting(
                        conn,
                        w.def.key,
                        &w.value,
                        w.def.category(),
                        w.def.description,
                        w.def.requires_restart,
                    )
                    .await?;
                    out.push(convert::setting(w.def, Some(&row)));
                }
                repo::notify_change(conn, "settings:import").await?;
                Ok(out)
            })
            .await?;
        drop(conn);
        self.refresh_cache().await;
        Ok(Response::new(pb::ImportSettingsResponse { settings }))
    }

    async fn get_feature_flag(&self, request: Request<pb::GetFeatureFlagRequest>) -> Reply<pb::GetFeatureFlagResponse> {
        let key = validate::flag_key("key", &request.get_ref().key)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = repo::find_flag(&mut conn, &key)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::not_found("feature flag", &key))?;
        Ok(Response::new(pb::GetFeatureFlagResponse { feature_flag: Some(convert::flag(row)) }))
    }

    async fn list_feature_flags(
        &self,
        request: Request<pb::ListFeatureFlagsRequest>,
    ) -> Reply<pb::ListFeatureFlagsResponse> {
        let req = request.into_inner();
        let page = KeyPage::parse(req.page_size, &req.page_token, "flags")?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let mut rows =
            repo::list_flags(&mut conn, page.after.as_deref(), page.fetch_limit()).await.map_err(Error::from)?;
        let total = repo::count_flags(&mut conn).await.map_err(Error::from)?;
        let next_page_token = page.finish(&mut rows, |r| r.key.clone(), "flags");
        Ok(Response::new(pb::ListFeatureFlagsResponse {
            feature_flags: rows.into_iter().map(convert::flag).collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn create_feature_flag(
        &self,
        request: Request<pb::CreateFeatureFlagRequest>,
    ) -> Reply<pb::CreateFeatureFlagResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let flag = request.into_inner().feature_flag.ok_or_else(|| Error::invalid("feature_flag", "is required"))?;
        let mut v = FieldViolations::default();
        let key = validate::collect_flag_key("feature_flag.key", &flag.key, &mut v);
        let description = Some(flag.description.trim()).filter(|d| !d.is_empty());
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let rule = flag_rule_input(&mut conn, &flag, &mut v).await?;
        v.into_result()?;
        let key = key.ok_or_else(|| Error::invalid("feature_flag.key", "invalid key"))?;
        let write = repo::FlagWrite {
            enabled: flag.enabled,
            description,
            rollout_percentage: rule.rollout_percentage,
            roles: &rule.roles,
        };
        let row = conn
            .transaction::<_, Error, _>(async |conn| {
                let row = repo::insert_flag(conn, &key, &write, caller.account_id)
                    .await?
                    .ok_or_else(|| Error::AlreadyExists(format!("feature flag {key:?} already exists")))?;
                repo::notify_change(conn, &format!("flag:{key}")).await?;
                Ok(row)
            })
            .await?;
        drop(conn);
        self.refresh_cache().await;
        Ok(Response::new(pb::CreateFeatureFlagResponse { feature_flag: Some(convert::flag(row)) }))
    }

    async fn update_feature_flag(
        &self,
        request: Request<pb::UpdateFeatureFlagRequest>,
    ) -> Reply<pb::UpdateFeatureFlagResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let flag = req.feature_flag.ok_or_else(|| Error::invalid("feature_flag", "is required"))?;
        let key = validate::flag_key("feature_flag.key", &flag.key)?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        let mut v = FieldViolations::default();
        for p in &paths {
            if !FLAG_PATHS.contains(&p.as_str()) {
                v.add("update_mask", format!("unknown path {p:?}; allowed: {}", FLAG_PATHS.join(", ")));
            }
        }
        let wants = |path: &str| paths.is_empty() || paths.iter().any(|p| p == path);
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let rule = flag_rule_input(&mut conn, &flag, &mut v).await?;
        v.into_result()?;
        let description = Some(flag.description.trim()).filter(|d| !d.is_empty());
        let change = repo::FlagChange {
            enabled: wants("enabled").then_some(flag.enabled),
            description: wants("description").then_some(description),
            rollout_percentage: wants("rollout_percentage").then_some(rule.rollout_percentage),
            roles: wants("roles").then_some(rule.roles.as_slice()),
        };
        let row = conn
            .transaction::<_, Error, _>(async |conn| {
                let row = repo::update_flag(conn, &key, &change, caller.account_id)
                    .await?
                    .ok_or_else(|| Error::not_found("feature flag", &key))?;
                repo::notify_change(conn, &format!("flag:{key}")).await?;
                Ok(row)
            })
            .await?;
        drop(conn);
        self.refresh_cache().await;
        Ok(Response::new(pb::UpdateFeatureFlagResponse { feature_flag: Some(convert::flag(row)) }))
    }

    async fn delete_feature_flag(
        &self,
        request: Request<pb::DeleteFeatureFlagRequest>,
    ) -> Reply<pb::DeleteFeatureFlagResponse> {
        let key = validate::flag_key("key", &request.get_ref().key)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        conn.transaction::<_, Error, _>(async |conn| {
            if !repo::delete_flag(conn, &key).await? {
                return Err(Error::not_found("feature flag", &key));
            }
            repo::notify_change(conn, &format!("flag:{key}")).await?;
            Ok(())
        })
        .await?;
        drop(conn);
        self.refresh_cache().await;
        Ok(Response::new(pb::DeleteFeatureFlagResponse {}))
    }

    async fn evaluate_feature_flag(
        &self,
        request: Request<pb::EvaluateFeatureFlagRequest>,
    ) -> Reply<pb::EvaluateFeatureFlagResponse> {
        let ctx = AuthContext::of(&request)?.clone();
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let key = validate::collect_flag_key("key", &req.key, &mut v);
        if req.subject_account_id.is_some_and(|id| id <= 0) {
            v.add("subject_account_id", "must be a positive account id");
        }
        v.into_result()?;
        let key = key.ok_or_else(|| Error::invalid("key", "invalid key"))?;
        let own_account = match &ctx.principal {
            Principal::Account(id) => Some(*id),
            Principal::Service(_) => None,
        };
        let (subject, subject_account_id) = match req.subject_account_id {
            Some(id) if Some(id) != own_account => {
                if !authz::grants(&ctx.permissions, "config:read") {
                    return Err(Error::PermissionDenied(
                        "missing permission config:read (needed to evaluate a flag for another account)".into(),
                    )
                    .into());
                }
                let mut conn = self.pool.get().await.map_err(Error::from)?;
                let roles = repo::account_role_names(&mut conn, id)
                    .await
                    .map_err(Error::from)?
                    .ok_or_else(|| Error::invalid("subject_account_id", format!("no account {id}")))?;
                (Subject::account(id, roles), Some(id))
            }
            // The caller itself: the roles its token carries.
            _ => match &ctx.principal {
                Principal::Account(id) => (Subject::account(*id, ctx.roles.iter().cloned()), Some(*id)),
                Principal::Service(client) => (Subject::service(client), None),
            },
        };
        let eval = self.cache.evaluate(&key, &subject).ok_or_else(|| Error::not_found("feature flag", &key))?;
        Ok(Response::new(pb::EvaluateFeatureFlagResponse {
            key,
            enabled: eval.enabled,
            reason: convert::reason(eval.reason) as i32,
            bucket: i32::try_from(eval.bucket).unwrap_or(0),
            subject_account_id,
        }))
    }

    async fn run_retention_cleanup(
        &self,
        request: Request<pb::RunRetentionCleanupRequest>,
    ) -> Reply<pb::RunRetentionCleanupResponse> {
        let account = match &AuthContext::of(&request)?.principal {
            Principal::Account(id) => Some(*id),
            Principal::Service(_) => None,
        };
        let dry_run = request.into_inner().dry_run;
        match retention::run(&self.pool, &self.cache, self.retention, Trigger::Rpc(account), dry_run).await? {
            RunOutcome::Done(report) => Ok(Response::new(convert::retention_report(&report))),
            RunOutcome::AlreadyRunning => Err(Error::precondition(
                "RETENTION_CLEANUP_RUNNING",
                "a retention purge is already running (another replica, the schedule or the CLI); try again after it",
            )
            .into()),
        }
    }
}
