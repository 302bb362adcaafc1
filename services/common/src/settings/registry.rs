//! The ONE authoritative list of setting keys Phoenix reads, with type, range and default
//! (only keys something reads live here).
//! A stored `config.settings` row overrides the default; a key not listed here cannot be
//! stored.

use chrono::NaiveTime;

/// The type of a setting's value, with its constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number within `min..=max`.
    Integer {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// `true` / `false`.
    Boolean,
    /// Local wall-clock time, canonical `HH:MM`.
    TimeOfDay,
    /// IANA time-zone name.
    TimeZone,
}

/// One registry entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingDef {
    /// Dotted key; the first segment is the category.
    pub key: &'static str,
    /// Type and range.
    pub kind: Kind,
    /// Default in canonical form.
    pub default: &'static str,
    /// What it controls and who reads it.
    pub description: &'static str,
    /// `system` settings cannot be changed through the API.
    pub locked: bool,
    /// Takes effect only after a restart.
    pub requires_restart: bool,
}

impl SettingDef {
    /// The category: the key's first segment.
    pub fn category(&self) -> &'static str {
        self.key.split('.').next().unwrap_or(self.key)
    }

    /// Parses `raw` against the type and range; returns the canonical text or what is wrong.
    pub fn normalize(&self, raw: &str) -> Result<String, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        match self.kind {
            Kind::Integer { min, max } => match raw.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
                Ok(n) => Err(format!("must be {min}..={max}, got {n}")),
                Err(_) => Err(format!("must be a whole number {min}..={max}, got {raw:?}")),
            },
            Kind::Boolean => match raw.to_ascii_lowercase().as_str() {
                "true" => Ok("true".into()),
                "false" => Ok("false".into()),
                _ => Err(format!("must be true or false, got {raw:?}")),
            },
            // Minutes must have two digits: chrono alone would read "17:5" as 17:05.
            Kind::TimeOfDay => Some(raw)
                .filter(|r| r.split_once(':').is_some_and(|(_, m)| m.len() == 2))
                .and_then(|r| NaiveTime::parse_from_str(r, "%H:%M").ok())
                .map(|t| t.format("%H:%M").to_string())
                .ok_or(())
                .map_err(|_| format!("must be a time HH:MM (24 h), got {raw:?}")),
            Kind::TimeZone => raw
                .parse::<chrono_tz::Tz>()
                .map(|tz| tz.name().to_owned())
                .map_err(|_| format!("must be an IANA time zone such as Europe/Berlin, got {raw:?}")),
        }
    }
}

/// Every setting Phoenix reads (the scan, session and checkout settings, the presence
/// board's alert thresholds, and the retention default the retention purge reads). The
/// purge's time of day is `PHOENIX_CLEANUP_TIME` (README.md, configuration), deliberately not a setting
/// too: one source, no second knob that silently loses.
pub const SETTINGS: &[SettingDef] = &[
    SettingDef {
        key: "attendance.daily_checkout_time",
        kind: Kind::TimeOfDay,
        default: "15:00",
        description: "From this local time an entrance scan may check a pupil out for the day even when a pickup rule applies",
        locked: false,
        requires_restart: false,
    },
    SettingDef {
        key: "presence.alert_not_arrived_by",
        kind: Kind::TimeOfDay,
        default: "09:00",
        description: "A pupil expected today (pickup or class schedule) who has not arrived by this local time is a not-arrived alert on the presence board",
        locked: false,
        requires_restart: false,
    },
    SettingDef {
        key: "presence.alert_pickup_grace_minutes",
        kind: Kind::Integer { min: 0, max: 240 },
        default: "15",
        description: "A pupil still present this many minutes after today's pickup time is a past-pickup alert on the presence board",
        locked: false,
        requires_restart: false,
    },
    SettingDef {
        key: "presence.alert_transit_minutes",
        kind: Kind::Integer { min: 1, max: 480 },
        default: "15",
        description: "A pupil in transit (arrived, in no room) for longer than this many minutes is an alert on the presence board",
        locked: false,
        requires_restart: false,
    },
    SettingDef {
        key: "privacy.default_visit_retention_days",
        kind: Kind::Integer { min: 1, max: 31 },
        default: "30",
        description: "Visit retention in days for students without an accepted privacy consent (read by the retention purge)",
        locked: false,
        requires_restart: false,
    },
    SettingDef {
        key: "scan.max_age_minutes",
        kind: Kind::Integer { min: 1, max: 10_080 },
        default: "1440",
        description: "Scans older than this many minutes are rejected as stale (replayed offline buffers within it are accepted)",
        locked: false,
        requires_restart: false,
    },
    SettingDef {
        key: "session.end_time",
        kind: Kind::TimeOfDay,
        default: "18:00",
        description: "Local time at which running room sessions end every day",
        locked: false,
        requires_restart: false,
    },
    SettingDef {
        key: "session.timeout_minutes",
        kind: Kind::Integer { min: 1, max: 480 },
        default: "30",
        description: "A session with no scan for this long and an offline reader is ended as abandoned",
        locked: false,
        requires_restart: false,
    },
    SettingDef {
        key: "system.time_zone",
        kind: Kind::TimeZone,
        default: "Europe/Berlin",
        description: "Time zone of the business day; changing it would shift every stored school date",
        locked: true,
        requires_restart: true,
    },
];

/// The definition of `key`, if Phoenix knows it.
pub fn lookup(key: &str) -> Option<&'static SettingDef> {
    SETTINGS.iter().find(|d| d.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_sorted_unique_and_defaults_are_valid() {
        for pair in SETTINGS.windows(2) {
            assert!(pair[0].key < pair[1].key, "{} !< {}", pair[0].key, pair[1].key);
        }
        for def in SETTINGS {
            assert_eq!(def.normalize(def.default).as_deref(), Ok(def.default), "{}", def.key);
            assert_eq!(def.locked, def.category() == "system", "{}", def.key);
        }
    }

    #[test]
    fn values_are_checked_and_canonicalised() {
        let days = lookup("privacy.default_visit_retention_days").unwrap();
        assert_eq!(days.normalize(" 7 ").as_deref(), Ok("7"));
        assert!(days.normalize("0").unwrap_err().contains("1..=31"));
        assert!(days.normalize("32").is_err());
        assert!(days.normalize("ten").is_err());
        let end = lookup("session.end_time").unwrap();
        assert_eq!(end.normalize("8:05").as_deref(), Ok("08:05"));
        assert!(end.normalize("25:00").is_err());
        assert!(end.normalize("17:5").is_err());
        assert_eq!(lookup("system.time_zone").unwrap().normalize("Europe/Berlin").as_deref(), Ok("Europe/Berlin"));
        assert!(lookup("system.time_zone").unwrap().normalize("Mars/Base").is_err());
        let b = SettingDef { kind: Kind::Boolean, ..*days };
        assert_eq!(b.normalize("TRUE").as_deref(), Ok("true"));
    }
}
