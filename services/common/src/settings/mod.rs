//! School settings as the code they govern reads them: live, from the process's settings
//! cache, so a change through `phoenix.config.v1.ConfigService` takes effect on every replica
//! without a restart.
//!
//! [`registry`] is the one list of keys (type, range, default). A value is, in order: the
//! stored `config.settings` row; else the environment variable that gives the key its first
//! default (`PHOENIX_TIMEZONE`, `PHOENIX_DAILY_CHECKOUT_TIME`, `PHOENIX_SCAN_MAX_AGE`); else
//! the registry default. The config domain's cache ([`SettingsSource`], LISTEN/NOTIFY) feeds
//! the stored rows; every domain reads through [`LiveSettings`], whose typed getters are the
//! only readers of each key ([`READERS`]; a test fails for a key no code reads).

pub mod registry;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveTime;
use chrono_tz::Tz;

use crate::config::Config;
use crate::server::DomainContext;

/// The stored settings rows of the process (the config domain's cache implements it).
pub trait SettingsSource: Send + Sync + 'static {
    /// The stored value of `key`, `None` when no row is stored.
    fn stored(&self, key: &str) -> Option<String>;

    /// Reloads the stored rows now (before a job that must see the latest values).
    fn refresh(&self) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>> {
        Box::pin(async { Ok(()) })
    }
}

/// Keys of the registry, named once for their readers.
pub mod keys {
    /// From this local time an entrance scan may check a pupil out for the day.
    pub const DAILY_CHECKOUT_TIME: &str = "attendance.daily_checkout_time";
    /// Local time by which a pupil expected today should have arrived (presence alerts).
    pub const ALERT_NOT_ARRIVED_BY: &str = "presence.alert_not_arrived_by";
    /// Minutes after today's pickup time a pupil may still be present (presence alerts).
    pub const ALERT_PICKUP_GRACE_MINUTES: &str = "presence.alert_pickup_grace_minutes";
    /// Minutes a pupil may be in transit before an alert (presence alerts).
    pub const ALERT_TRANSIT_MINUTES: &str = "presence.alert_transit_minutes";
    /// Visit retention for pupils without a consent.
    pub const DEFAULT_RETENTION_DAYS: &str = "privacy.default_visit_retention_days";
    /// Scans older than this are stale.
    pub const SCAN_MAX_AGE_MINUTES: &str = "scan.max_age_minutes";
    /// Local time at which running sessions end.
    pub const SESSION_END_TIME: &str = "session.end_time";
    /// Idle minutes after which a session with an offline reader is abandoned.
    pub const SESSION_TIMEOUT_MINUTES: &str = "session.timeout_minutes";
    /// The school's time zone (locked: `PHOENIX_TIMEZONE`).
    pub const TIME_ZONE: &str = "system.time_zone";
}

/// Each key and the [`LiveSettings`] getter that reads it; the getter's callers are the code
/// the key governs. A test checks every registry key is here and every getter is called
/// outside this module.
pub const READERS: &[(&str, &str)] = &[
    (keys::DAILY_CHECKOUT_TIME, "daily_checkout_time"),
    (keys::ALERT_NOT_ARRIVED_BY, "alert_not_arrived_by"),
    (keys::ALERT_PICKUP_GRACE_MINUTES, "alert_pickup_grace"),
    (keys::ALERT_TRANSIT_MINUTES, "alert_transit_limit"),
    (keys::DEFAULT_RETENTION_DAYS, "default_retention_days"),
    (keys::SCAN_MAX_AGE_MINUTES, "scan_max_age"),
    (keys::SESSION_END_TIME, "session_end_time"),
    (keys::SESSION_TIMEOUT_MINUTES, "session_timeout"),
    (keys::TIME_ZONE, "time_zone"),
];

/// The effective default of every key for this process: the environment variable that gives
/// a key its first default, else the registry's.
pub fn defaults(config: &Config) -> HashMap<&'static str, String> {
    registry::SETTINGS
        .iter()
        .map(|def| {
            let env = match def.key {
                keys::TIME_ZONE => Some(config.timezone.name().to_owned()),
                keys::DAILY_CHECKOUT_TIME => Some(config.daily_checkout_time.format("%H:%M").to_string()),
                keys::SCAN_MAX_AGE_MINUTES => Some((config.scan_max_age.as_secs() / 60).clamp(1, 10_080).to_string()),
                _ => None,
            };
            (def.key, env.and_then(|v| def.normalize(&v).ok()).unwrap_or_else(|| def.default.to_owned()))
        })
        .collect()
}

/// A cheap-to-clone, live view of the school settings.
#[derive(Clone)]
pub struct LiveSettings {
    source: Option<Arc<dyn SettingsSource>>,
    defaults: Arc<HashMap<&'static str, String>>,
    zone: Tz,
}

impl std::fmt::Debug for LiveSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSettings").field("live", &self.source.is_some()).field("zone", &self.zone).finish()
    }
}

impl LiveSettings {
    /// Settings read from `source`, defaults from `config`.
    pub fn new(source: Arc<dyn SettingsSource>, config: &Config) -> Self {
        Self { source: Some(source), ..Self::defaults_only(config) }
    }

    /// Only the defaults (no cache: unit tests, one-shot CLI commands without a database).
    pub fn defaults_only(config: &Config) -> Self {
        Self { source: None, defaults: Arc::new(defaults(config)), zone: config.timezone }
    }

    /// The process's settings, as `phoenix` puts them into every domain's context; the
    /// defaults when it put none there.
    pub fn of(ctx: &DomainContext) -> Self {
        ctx.extensions.get::<Self>().cloned().unwrap_or_else(|| Self::defaults_only(&ctx.config))
    }

    /// Reloads the stored settings now, so a job run sees a change made a moment ago on
    /// another replica even if its notice was missed. The error is the database's.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        match &self.source {
            Some(source) => source.refresh().await,
            None => Ok(()),
        }
    }

    /// The effective default of `key` for this process.
    pub fn default_of(&self, key: &str) -> Option<&str> {
        self.defaults.get(key).map(String::as_str)
    }

    /// The value of `key`: stored (when it is valid for the key), else the default; `None` for
    /// a key the registry does not know.
    pub fn get(&self, key: &str) -> Option<String> {
        let def = registry::lookup(key)?;
        let stored = if def.locked { None } else { self.source.as_ref().and_then(|s| s.stored(key)) };
        stored
            .and_then(|v| def.normalize(&v).ok())
            .or_else(|| self.defaults.get(key).cloned())
            .or_else(|| Some(def.default.to_owned()))
    }

    fn time_of_day(&self, key: &str) -> NaiveTime {
        self.get(key).and_then(|v| NaiveTime::parse_from_str(&v, "%H:%M").ok()).unwrap_or(NaiveTime::MIN)
    }

    fn integer(&self, key: &str) -> i64 {
        self.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// The school's time zone, for every business date of every domain. Locked: the
    /// process's `PHOENIX_TIMEZONE` (changing it would shift every stored school date); code
    /// without a `LiveSettings` at hand reads the same zone through
    /// `phoenix_common::time::business_today` (set when the process builds its services).
    pub fn time_zone(&self) -> Tz {
        self.zone
    }

    /// Local time at which running sessions end every day (`session.end_time`).
    pub fn session_end_time(&self) -> NaiveTime {
        self.time_of_day(keys::SESSION_END_TIME)
    }

    /// How long a session may go without a scan, its reader offline, before it is abandoned
    /// (`session.timeout_minutes`).
    pub fn session_timeout(&self) -> chrono::Duration {
        chrono::Duration::minutes(self.integer(keys::SESSION_TIMEOUT_MINUTES))
    }

    /// Oldest scan accepted (`scan.max_age_minutes`).
    pub fn scan_max_age(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.integer(keys::SCAN_MAX_AGE_MINUTES)).unwrap_or(1).max(1) * 60)
    }

    /// From this local time an entrance scan may check a pupil out for the day
    /// (`attendance.daily_checkout_time`).
    pub fn daily_checkout_time(&self) -> NaiveTime {
        self.time_of_day(keys::DAILY_CHECKOUT_TIME)
    }

    /// By this local time a pupil expected today should have arrived
    /// (`presence.alert_not_arrived_by`).
    pub fn alert_not_arrived_by(&self) -> NaiveTime {
        self.time_of_day(keys::ALERT_NOT_ARRIVED_BY)
    }

    /// How long after today's pickup time a pupil may still be present before an alert
    /// (`presence.alert_pickup_grace_minutes`).
    pub fn alert_pickup_grace(&self) -> chrono::Duration {
        chrono::Duration::minutes(self.integer(keys::ALERT_PICKUP_GRACE_MINUTES))
    }

    /// How long a pupil may be in transit before an alert (`presence.alert_transit_minutes`).
    pub fn alert_transit_limit(&self) -> chrono::Duration {
        chrono::Duration::minutes(self.integer(keys::ALERT_TRANSIT_MINUTES))
    }

    /// Visit retention in days for pupils without an accepted consent
    /// (`privacy.default_visit_retention_days`).
    pub fn default_retention_days(&self) -> i64 {
        self.integer(keys::DEFAULT_RETENTION_DAYS)
    }
}

/// Fixed stored values, for tests of code that reads settings.
#[derive(Debug, Default)]
pub struct FixedSettings(pub std::sync::RwLock<HashMap<String, String>>);

impl FixedSettings {
    /// Stores `value` under `key`.
    pub fn set(&self, key: &str, value: &str) {
        if let Ok(mut m) = self.0.write() {
            m.insert(key.to_owned(), value.to_owned());
        }
    }
}

impl SettingsSource for FixedSettings {
    fn stored(&self, key: &str) -> Option<String> {
        self.0.read().ok().and_then(|m| m.get(key).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())).expect("config")
    }

    #[test]
    fn stored_beats_environment_beats_registry_and_bad_rows_fall_back() {
        let source = Arc::new(FixedSettings::default());
        let s = LiveSettings::new(source.clone(), &config(&[("PHOENIX_DAILY_CHECKOUT_TIME", "16:30")]));
        assert_eq!(s.daily_checkout_time(), NaiveTime::from_hms_opt(16, 30, 0).expect("time"));
        assert_eq!(s.session_end_time(), NaiveTime::from_hms_opt(18, 0, 0).expect("time"));
        source.set(keys::DAILY_CHECKOUT_TIME, "14:05");
        source.set(keys::SESSION_TIMEOUT_MINUTES, "45");
        assert_eq!(s.daily_checkout_time(), NaiveTime::from_hms_opt(14, 5, 0).expect("time"));
        assert_eq!(s.session_timeout(), chrono::Duration::minutes(45));
        source.set(keys::SESSION_TIMEOUT_MINUTES, "9999");
        assert_eq!(s.session_timeout(), chrono::Duration::minutes(30), "out of range → default");
        source.set(keys::TIME_ZONE, "UTC");
        assert_eq!(s.time_zone(), chrono_tz::Europe::Berlin, "locked: the stored row is ignored");
        assert_eq!(s.scan_max_age(), Duration::from_secs(24 * 3600));
    }

    #[test]
    fn every_key_has_a_reader_that_some_code_calls() {
        let keys: Vec<_> = registry::SETTINGS.iter().map(|d| d.key).collect();
        let read: Vec<_> = READERS.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, read, "READERS lists every registry key once, in registry order");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut sources = String::new();
        collect(&root, &mut sources);
        for (key, getter) in READERS {
            assert!(
                sources.contains(&format!(".{getter}()")),
                "setting {key}: no code outside phoenix_common::settings calls LiveSettings::{getter}"
            );
        }
    }

    /// The Rust sources of the services (not this module, not tests) concatenated.
    fn collect(dir: &std::path::Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() {
                if !matches!(name, "target" | "settings" | "tests") {
                    collect(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
}
