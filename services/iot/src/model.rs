//! The iot domain's value types and their database strings (`text` + CHECK columns).

use std::time::Duration;

/// A reader is online when seen within this window.
pub const ONLINE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// `iot.devices.device_type` of readers registered through the API.
pub const TYPE_RFID_READER: &str = "rfid_reader";
/// `iot.devices.device_type` of the seeded web device.
pub const TYPE_VIRTUAL: &str = "virtual";

macro_rules! db_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The database string.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the database string.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

db_enum!(
    /// Administrative state (`iot.devices.status`).
    DeviceStatus {
        /// Scans are processed.
        Active => "active",
        /// Scans are refused.
        Inactive => "inactive",
        /// Being serviced; scans are refused.
        Maintenance => "maintenance",
        /// Out of service; scans are refused.
        Offline => "offline",
    }
);

db_enum!(
    /// What a reader does with a scan (`iot.devices.kind`).
    DeviceKind {
        /// Room door: toggles visits.
        Room => "room",
        /// School entrance: daily arrival and departure.
        Entrance => "entrance",
    }
);

db_enum!(
    /// Device-log events (`iot.device_logs.event`).
    LogEvent {
        /// Registered.
        Registered => "registered",
        /// Key rotated.
        KeyRotated => "key_rotated",
        /// Administrative status changed.
        StatusChanged => "status_changed",
        /// Came online.
        Online => "online",
        /// Went offline.
        Offline => "offline",
        /// A scan with a wrong, missing or foreign signature.
        BadSignature => "bad_signature",
        /// An undecodable scan.
        Malformed => "malformed",
        /// A scan outside the accepted age window.
        StaleScan => "stale_scan",
        /// Throttled.
        RateLimited => "rate_limited",
        /// A session was started from the reader.
        SessionStarted => "session_started",
        /// A session was ended from the reader.
        SessionEnded => "session_ended",
        /// A scan from a reader that is not active.
        DeviceInactive => "device_inactive",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for s in DeviceStatus::ALL {
            assert_eq!(DeviceStatus::parse(s.as_str()), Some(*s));
        }
        for k in DeviceKind::ALL {
            assert_eq!(DeviceKind::parse(k.as_str()), Some(*k));
        }
        for e in LogEvent::ALL {
            assert_eq!(LogEvent::parse(e.as_str()), Some(*e));
        }
        assert_eq!(DeviceStatus::parse("broken"), None);
    }
}
