//! The tonic handlers of `phoenix.config.v1.ConfigService`.

use diesel_async::AsyncConnection;
use pb::config_service_server::ConfigService;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::caller::Caller;
use phoenix_common::db::DbPool;
use phoenix_common::page::KeyPage;
use phoenix_common::{Error, FieldViolations};
use phoenix_proto::config::v1 as pb;
use tonic::{Request, Response, Status};

use crate::{convert, registry, repo, validate};

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
];

/// The service state.
#[derive(Clone)]
pub struct ConfigServiceImpl {
    pool: DbPool,
}

impl std::fmt::Debug for ConfigServiceImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigServiceImpl").finish_non_exhaustive()
    }
}

impl ConfigServiceImpl {
    /// A service on `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
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
        let key = validate::flag_key("feature_flag.key", &flag.key)?;
        let description = Some(flag.description.trim()).filter(|d| !d.is_empty());
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = conn
            .transaction::<_, Error, _>(async |conn| {
                let row = repo::insert_flag(conn, &key, flag.enabled, description, caller.account_id)
                    .await?
                    .ok_or_else(|| Error::AlreadyExists(format!("feature flag {key:?} already exists")))?;
                repo::notify_change(conn, &format!("flag:{key}")).await?;
                Ok(row)
            })
            .await?;
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
            if p != "enabled" && p != "description" {
                v.add("update_mask", format!("unknown path {p:?}; allowed: enabled, description"));
            }
        }
        v.into_result()?;
        let all = paths.is_empty();
        let enabled = (all || paths.iter().any(|p| p == "enabled")).then_some(flag.enabled);
        let description = Some(flag.description.trim()).filter(|d| !d.is_empty());
        let description = (all || paths.iter().any(|p| p == "description")).then_some(description);
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = conn
            .transaction::<_, Error, _>(async |conn| {
                let row = repo::update_flag(conn, &key, enabled, description, caller.account_id)
                    .await?
                    .ok_or_else(|| Error::not_found("feature flag", &key))?;
                repo::notify_change(conn, &format!("flag:{key}")).await?;
                Ok(row)
            })
            .await?;
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
        Ok(Response::new(pb::DeleteFeatureFlagResponse {}))
    }
}
