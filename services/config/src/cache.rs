//! The cached settings/flags reader every service can share.
//!
//! Invalidation across replicas uses PostgreSQL `LISTEN/NOTIFY`: every writing RPC sends
//! `pg_notify(phoenix_config_changed, …)` inside its transaction, so the notice goes out only
//! on commit. Each cache holds one dedicated (non-pooled) connection that LISTENs and reloads
//! the whole snapshot on any notice (the tables are tiny). The snapshot is also reloaded after
//! every (re)connect and every [`SAFETY_RELOAD`] as a backstop for notices missed while
//! disconnected. A write through this process's config service also reloads at once
//! ([`ConfigCache::refresh`]), so a caller reads its own write from this replica.
//!
//! One cache per process: `phoenix`'s `ServiceContext` starts it on first use and hands
//! clones to every domain (the config service, the retention purge).

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use futures::StreamExt;
use phoenix_common::db::DbPool;
use phoenix_common::settings::{LiveSettings, SettingsSource};
use tokio::sync::watch;

use crate::flags::{self, Evaluation, FlagRule, Subject};
use crate::{registry, repo};

/// Backstop reload interval (notices are lost while the listen connection is down).
pub const SAFETY_RELOAD: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Snapshot {
    settings: HashMap<String, String>,
    flags: HashMap<String, FlagRule>,
}

#[derive(Debug)]
struct Shared {
    snapshot: RwLock<Snapshot>,
    /// Bumped after every reload; tests and callers can wait for freshness.
    version: watch::Sender<u64>,
    /// Serialises reloads, so a slow reload that read older rows never overwrites the
    /// snapshot of a later one.
    reloading: tokio::sync::Mutex<()>,
}

/// A cheap-to-clone handle on the process's config snapshot.
#[derive(Clone)]
pub struct ConfigCache {
    shared: Arc<Shared>,
    pool: DbPool,
}

impl std::fmt::Debug for ConfigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigCache").field("shared", &self.shared).finish_non_exhaustive()
    }
}

impl ConfigCache {
    /// Loads the snapshot and starts the listener task; the task stops when the last
    /// handle is dropped. Call once per process and clone the handle.
    pub async fn start(pool: DbPool) -> Self {
        let (version, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            snapshot: RwLock::new(Snapshot::default()),
            version,
            reloading: tokio::sync::Mutex::new(()),
        });
        if let Err(e) = reload(&pool, &shared).await {
            tracing::warn!(error = %e, "config cache: initial load failed; defaults apply until the next reload");
        }
        tokio::spawn(listen(pool.clone(), Arc::downgrade(&shared)));
        Self { shared, pool }
    }

    /// The value of `key` (stored, else the registry default); `None` for an unknown key.
    pub fn get(&self, key: &str) -> Option<String> {
        let def = registry::lookup(key)?;
        let stored = self.shared.snapshot.read().ok().and_then(|s| s.settings.get(key).cloned());
        Some(stored.unwrap_or_else(|| def.default.to_owned()))
    }

    /// An integer setting; falls back to the default when the stored text does not parse.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        let def = registry::lookup(key)?;
        self.get(key).and_then(|v| v.parse().ok()).or_else(|| def.default.parse().ok())
    }

    /// Whether feature flag `key` is on for `subject` (rules in [`crate::flags`]); an
    /// unknown flag is off.
    pub fn is_enabled(&self, key: &str, subject: &Subject) -> bool {
        self.evaluate(key, subject).is_some_and(|e| e.enabled)
    }

    /// The evaluation of flag `key` for `subject`; `None` for an unknown flag.
    pub fn evaluate(&self, key: &str, subject: &Subject) -> Option<Evaluation> {
        let guard = self.shared.snapshot.read().ok()?;
        guard.flags.get(key).map(|rule| flags::evaluate(key, rule, subject))
    }

    /// The cached rule of flag `key`.
    pub fn flag_rule(&self, key: &str) -> Option<FlagRule> {
        self.shared.snapshot.read().ok().and_then(|s| s.flags.get(key).cloned())
    }

    /// Reloads the snapshot now (after a write through this process, or before a job that
    /// must see the latest values); the error is the database's.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        reload(&self.pool, &self.shared).await
    }

    /// Whether `self` and `other` are handles on the same snapshot (one cache per process).
    pub fn same_as(&self, other: &ConfigCache) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// This cache as the stored-settings source of [`LiveSettings`], the reader every domain
    /// uses.
    pub fn live_settings(&self, config: &phoenix_common::config::Config) -> LiveSettings {
        LiveSettings::new(Arc::new(self.clone()), config)
    }

    /// A receiver that changes after every reload.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.version.subscribe()
    }
}

async fn reload(pool: &DbPool, shared: &Shared) -> anyhow::Result<()> {
    let _serial = shared.reloading.lock().await;
    let mut conn = phoenix_common::db::conn(pool).await?;
    let settings = repo::all_settings(&mut conn).await?;
    let flags = repo::all_flags(&mut conn).await?;
    let snapshot = Snapshot {
        settings: settings.into_iter().map(|s| (s.key, s.value)).collect(),
        flags: flags.into_iter().map(|f| (f.key.clone(), f.rule())).collect(),
    };
    if let Ok(mut guard) = shared.snapshot.write() {
        *guard = snapshot;
    }
    shared.version.send_modify(|v| *v += 1);
    Ok(())
}

async fn listen(pool: DbPool, shared: Weak<Shared>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let Some(strong) = shared.upgrade() else { return };
        drop(strong);
        match listen_once(&pool, &shared).await {
            Ok(()) => return, // every handle dropped
            Err(e) => {
                tracing::warn!(error = %e, "config cache: listen connection lost; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Listens until the connection fails (`Err`) or every handle is gone (`Ok`).
async fn listen_once(pool: &DbPool, shared: &Weak<Shared>) -> anyhow::Result<()> {
    use diesel_async::RunQueryDsl;
    let mut conn = phoenix_common::db::listen_connection(pool).await?;
    diesel::sql_query(format!("LISTEN {}", repo::CHANGE_CHANNEL)).execute(&mut conn).await?;
    // Reload after LISTEN so that no change between the last load and now is missed.
    let reload_now = async |shared: &Weak<Shared>| -> anyhow::Result<bool> {
        match shared.upgrade() {
            Some(s) => reload(pool, &s).await.map(|()| true),
            None => Ok(false),
        }
    };
    if !reload_now(shared).await? {
        return Ok(());
    }
    let mut notices = std::pin::pin!(conn.notifications_stream());
    let mut safety = tokio::time::interval(SAFETY_RELOAD);
    safety.tick().await;
    loop {
        tokio::select! {
            notice = notices.next() => match notice {
                Some(Ok(n)) => tracing::debug!(payload = %n.payload, "config changed"),
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("notification stream ended"),
            },
            _ = safety.tick() => {}
        }
        if !reload_now(shared).await? {
            return Ok(());
        }
    }
}

impl SettingsSource for ConfigCache {
    fn stored(&self, key: &str) -> Option<String> {
        self.shared.snapshot.read().ok().and_then(|s| s.settings.get(key).cloned())
    }

    fn refresh(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + '_>> {
        Box::pin(ConfigCache::refresh(self))
    }
}
