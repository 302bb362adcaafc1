//! `ConfigApi`, the tonic handlers of `phoenix.config.v1.ConfigService`.

use diesel_async::AsyncConnection;
use pb::config_service_server::ConfigService;
use phoenix_common::access::Caller;
use phoenix_common::authz::{self, AuthContext, MethodTable, Principal, Requirement};
use phoenix_common::db::{self, DbPool};
use phoenix_common::{Error, Reply};
use phoenix_proto::config::v1 as pb;
use tonic::{Request, Response};

use crate::flags::Subject;
use crate::retention::{self, RetentionOptions, RunOutcome, Trigger};
use phoenix_common::settings::LiveSettings;

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
    ("/phoenix.config.v1.ConfigService/ListJobRuns", Requirement::Permission("jobs:read")),
    ("/phoenix.config.v1.ConfigService/GetDatabaseStats", Requirement::Permission("config:manage")),
];

/// The service state.
#[derive(Clone)]
pub struct ConfigApi {
    pool: DbPool,
    cache: ConfigCache,
    settings: LiveSettings,
    retention: RetentionOptions,
}

impl std::fmt::Debug for ConfigApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigApi").finish_non_exhaustive()
    }
}

impl ConfigApi {
    /// A service on `pool`, reading flags through the process's shared `cache` and settings
    /// (their effective defaults, the retention default) through `settings`.
    pub fn new(pool: DbPool, cache: ConfigCache, settings: LiveSettings, retention: RetentionOptions) -> Self {
        Self { pool, cache, settings, retention }
    }

    /// After a committed write: this replica sees it at once (others through NOTIFY).
    async fn refresh_cache(&self) {
        if let Err(e) = self.cache.refresh().await {
            tracing::warn!(error = %e, "config cache: reload after a write failed; the notice will bring it");
        }
    }
}

#[tonic::async_trait]
impl ConfigService for ConfigApi {
    async fn get_setting(&self, request: Request<pb::GetSettingRequest>) -> Reply<pb::GetSettingResponse> {
        let def = validate::addressed_setting(&request.get_ref().key)?;
        let mut conn = db::conn(&self.pool).await?;
        let stored = repo::settings_by_keys(&mut conn, &[def.key]).await?;
        Ok(Response::new(pb::GetSettingResponse {
            setting: Some(convert::setting(def, &self.settings, stored.first())),
        }))
    }

    async fn list_settings(&self, request: Request<pb::ListSettingsRequest>) -> Reply<pb::ListSettingsResponse> {
        let (category, page) = validate::list_settings(request.get_ref())?;
        let matching: Vec<_> =
            registry::SETTINGS.iter().filter(|d| category.is_empty() || d.category() == category).collect();
        let total_size = i32::try_from(matching.len()).unwrap_or(i32::MAX);
        // The registry is sorted by key, so the key is the keyset cursor.
        let defs: Vec<_> = matching
            .into_iter()
            .filter(|d| page.after.as_deref().is_none_or(|a| d.key > a))
            .take(usize::try_from(page.fetch_limit()).unwrap_or(usize::MAX))
            .collect();
        let (defs, next_page_token) = page.finish(defs, |d| d.key.to_owned());
        let keys: Vec<&str> = defs.iter().map(|d| d.key).collect();
        let mut conn = db::conn(&self.pool).await?;
        let stored = repo::settings_by_keys(&mut conn, &keys).await?;
        let settings =
            defs.iter().map(|d| convert::setting(d, &self.settings, stored.iter().find(|s| s.key == d.key))).collect();
        Ok(Response::new(pb::ListSettingsResponse { settings, next_page_token, total_size }))
    }

    async fn update_setting(&self, request: Request<pb::UpdateSettingRequest>) -> Reply<pb::UpdateSettingResponse> {
        let write = validate::update_setting(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let stored = conn
            .transaction::<_, Error, _>(async |c| {
                let row = repo::upsert_setting(c, &write).await?;
                repo::notify_change(c, &format!("setting:{}", write.def.key)).await?;
                Ok(row)
            })
            .await?;
        drop(conn);
        self.refresh_cache().await;
        tracing::info!(setting = write.def.key, "setting updated");
        Ok(Response::new(pb::UpdateSettingResponse {
            setting: Some(convert::setting(write.def, &self.settings, Some(&stored))),
        }))
    }

    async fn reset_setting(&self, request: Request<pb::ResetSettingRequest>) -> Reply<pb::ResetSettingResponse> {
        let def = validate::reset_setting(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async |c| {
            if repo::delete_setting(c, def.key).await? {
                repo::notify_change(c, &format!("setting:{}", def.key)).await?;
            }
            Ok(())
        })
        .await?;
        drop(conn);
        self.refresh_cache().await;
        tracing::info!(setting = def.key, "setting reset");
        Ok(Response::new(pb::ResetSettingResponse { setting: Some(convert::setting(def, &self.settings, None)) }))
    }

    async fn import_settings(&self, request: Request<pb::ImportSettingsRequest>) -> Reply<pb::ImportSettingsResponse> {
        let writes = validate::import_settings(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let settings = conn
            .transaction::<_, Error, _>(async |c| {
                let mut out = Vec::with_capacity(writes.len());
                for w in &writes {
                    let row = repo::upsert_setting(c, w).await?;
                    out.push(convert::setting(w.def, &self.settings, Some(&row)));
                }
                repo::notify_change(c, "settings:import").await?;
                Ok(out)
            })
            .await?;
        drop(conn);
        self.refresh_cache().await;
        tracing::info!(settings = settings.len(), "settings imported");
        Ok(Response::new(pb::ImportSettingsResponse { settings }))
    }

    async fn get_feature_flag(&self, request: Request<pb::GetFeatureFlagRequest>) -> Reply<pb::GetFeatureFlagResponse> {
        let key = validate::flag_key("key", &request.get_ref().key)?;
        let mut conn = db::conn(&self.pool).await?;
        let row = repo::find_flag(&mut conn, &key).await?.ok_or_else(|| Error::not_found("feature flag", &key))?;
        Ok(Response::new(pb::GetFeatureFlagResponse { feature_flag: Some(convert::flag(row)) }))
    }

    async fn list_feature_flags(
        &self,
        request: Request<pb::ListFeatureFlagsRequest>,
    ) -> Reply<pb::ListFeatureFlagsResponse> {
        let page = validate::list_feature_flags(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let rows = repo::list_flags(&mut conn, page.after.as_deref(), page.fetch_limit()).await?;
        let total = repo::count_flags(&mut conn).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.key.clone());
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
        let mut conn = db::conn(&self.pool).await?;
        let existing =
            repo::existing_roles(&mut conn, &validate::named_roles(request.get_ref().feature_flag.as_ref())).await?;
        let new = validate::create_feature_flag(request.into_inner(), &existing)?;
        let row = conn
            .transaction::<_, Error, _>(async |c| {
                let row = repo::insert_flag(c, &new, caller.account_id)
                    .await?
                    .ok_or_else(|| Error::AlreadyExists(format!("feature flag {:?} already exists", new.key)))?;
                repo::notify_change(c, &format!("flag:{}", new.key)).await?;
                Ok(row)
            })
            .await?;
        drop(conn);
        self.refresh_cache().await;
        tracing::info!(flag = %row.key, "feature flag created");
        Ok(Response::new(pb::CreateFeatureFlagResponse { feature_flag: Some(convert::flag(row)) }))
    }

    async fn update_feature_flag(
        &self,
        request: Request<pb::UpdateFeatureFlagRequest>,
    ) -> Reply<pb::UpdateFeatureFlagResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let mut conn = db::conn(&self.pool).await?;
        let existing =
            repo::existing_roles(&mut conn, &validate::named_roles(request.get_ref().feature_flag.as_ref())).await?;
        let change = validate::update_feature_flag(request.into_inner(), &existing)?;
        let row = conn
            .transaction::<_, Error, _>(async |c| {
                let row = repo::update_flag(c, &change, caller.account_id)
                    .await?
                    .ok_or_else(|| Error::not_found("feature flag", &change.key))?;
                repo::notify_change(c, &format!("flag:{}", change.key)).await?;
                Ok(row)
            })
            .await?;
        drop(conn);
        self.refresh_cache().await;
        tracing::info!(flag = %row.key, "feature flag updated");
        Ok(Response::new(pb::UpdateFeatureFlagResponse { feature_flag: Some(convert::flag(row)) }))
    }

    async fn delete_feature_flag(
        &self,
        request: Request<pb::DeleteFeatureFlagRequest>,
    ) -> Reply<pb::DeleteFeatureFlagResponse> {
        let key = validate::flag_key("key", &request.get_ref().key)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async |c| {
            if !repo::delete_flag(c, &key).await? {
                return Err(Error::not_found("feature flag", &key));
            }
            repo::notify_change(c, &format!("flag:{key}")).await
        })
        .await?;
        drop(conn);
        self.refresh_cache().await;
        tracing::info!(flag = %key, "feature flag deleted");
        Ok(Response::new(pb::DeleteFeatureFlagResponse {}))
    }

    async fn evaluate_feature_flag(
        &self,
        request: Request<pb::EvaluateFeatureFlagRequest>,
    ) -> Reply<pb::EvaluateFeatureFlagResponse> {
        let ctx = AuthContext::of(&request)?.clone();
        let (key, subject_account) = validate::evaluate_feature_flag(request.get_ref())?;
        let own_account = match &ctx.principal {
            Principal::Account(id) => Some(*id),
            Principal::Service(_) => None,
        };
        let (subject, subject_account_id) = match subject_account {
            Some(id) if Some(id) != own_account => {
                if !authz::grants(&ctx.permissions, "config:read") {
                    return Err(Error::PermissionDenied(
                        "missing permission config:read (needed to evaluate a flag for another account)".into(),
                    )
                    .into());
                }
                let mut conn = db::conn(&self.pool).await?;
                let roles = repo::account_role_names(&mut conn, id)
                    .await?
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

    async fn list_job_runs(&self, request: Request<pb::ListJobRunsRequest>) -> Reply<pb::ListJobRunsResponse> {
        let (job, page) = validate::list_job_runs(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let (rows, total) =
            repo::list_job_runs(&mut conn, job.map(|j| j.name()), page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListJobRunsResponse {
            runs: rows.into_iter().map(convert::job_run).collect(),
            next_page_token,
            total_size: total,
        }))
    }

    async fn get_database_stats(
        &self,
        request: Request<pb::GetDatabaseStatsRequest>,
    ) -> Reply<pb::GetDatabaseStatsResponse> {
        let schema = crate::db_stats::detailed_schema(&request.get_ref().schema)?;
        let mut conn = db::conn(&self.pool).await?;
        let stats = crate::db_stats::collect(&mut conn, &schema).await?;
        Ok(Response::new(convert::database_stats(stats)))
    }

    async fn run_retention_cleanup(
        &self,
        request: Request<pb::RunRetentionCleanupRequest>,
    ) -> Reply<pb::RunRetentionCleanupResponse> {
        let account = match &AuthContext::of(&request)?.principal {
            Principal::Account(id) => Some(*id),
            Principal::Service(_) => None,
        };
        let dry_run = request.get_ref().dry_run;
        match retention::run(&self.pool, &self.settings, self.retention, Trigger::Rpc(account), dry_run).await? {
            RunOutcome::Done(report) => Ok(Response::new(convert::retention_report(&report))),
            RunOutcome::AlreadyRunning => Err(Error::precondition(
                "RETENTION_CLEANUP_RUNNING",
                "a retention purge is already running (another replica, the schedule or the CLI); try again after it",
            )
            .into()),
        }
    }
}
