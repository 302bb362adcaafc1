//! Long because it is the frozen v1 contract in one file: topics, scan decoding, signatures,
//! keys, tags and results, so a change to it shows in one diff.
//!
//! `phoenix-reader-protocol`: the frozen contract between RFID readers and the gateway
//! (v1; docs/reader-pipeline.md), in one place so the gateway, the `active` service, the reader
//! simulator and the tests all speak exactly the same bytes.
//!
//! | item | what |
//! |---|---|
//! | [`topics`] | `{p}/readers/{device}/scan|result|status`, subscription filters |
//! | [`decode_scan`] | a Scan payload → [`Scan`], or why it is malformed |
//! | [`sign`] / [`verify_signature`] | HMAC-SHA256 over the four signed lines, constant-time check |
//! | [`derive_device_key`] | device key = hex(HMAC-SHA256(server secret, `device_id:key_version`)) |
//! | [`normalize_tag`] | card UID normalisation (trim, drop `:`/`-`/spaces, upper-case, 8–64 hex) |
//! | [`ScanResult`] | the Result JSON, field order and absent fields exactly as the contract says |

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Largest Scan payload the contract allows (UTF-8 JSON, at most 4 KiB).
pub const MAX_SCAN_BYTES: usize = 4096;

/// Longest `scan_id` (characters).
pub const MAX_SCAN_ID_CHARS: usize = 64;

/// Longest raw `tag` accepted before normalisation (a normalised tag has at most 64 hex digits;
/// the slack allows separators such as `04:A1:B2:…`).
pub const MAX_RAW_TAG_CHARS: usize = 256;

/// Whether `id` is a valid reader device id: 1–64 characters of `[A-Za-z0-9_.-]`.
pub fn is_valid_device_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Topic names and subscription filters under a prefix (`PHOENIX_MQTT_PREFIX`).
pub mod topics {
    /// The kind of a message the gateway receives.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Inbound {
        /// `{p}/readers/{device}/scan`
        Scan,
        /// `{p}/readers/{device}/status`
        Status,
    }

    /// `{p}/readers/{device}/scan`
    pub fn scan(prefix: &str, device: &str) -> String {
        format!("{prefix}/readers/{device}/scan")
    }

    /// `{p}/readers/{device}/result`
    pub fn result(prefix: &str, device: &str) -> String {
        format!("{prefix}/readers/{device}/result")
    }

    /// `{p}/readers/{device}/status`
    pub fn status(prefix: &str, device: &str) -> String {
        format!("{prefix}/readers/{device}/status")
    }

    /// Subscription filter for every reader's scans, optionally as a shared subscription
    /// (`$share/{group}/…`) so several gateway replicas split the load.
    pub fn scan_filter(prefix: &str, shared_group: Option<&str>) -> String {
        share(shared_group, format!("{prefix}/readers/+/scan"))
    }

    /// Subscription filter for every reader's status messages.
    pub fn status_filter(prefix: &str, shared_group: Option<&str>) -> String {
        share(shared_group, format!("{prefix}/readers/+/status"))
    }

    fn share(group: Option<&str>, filter: String) -> String {
        match group {
            Some(g) => format!("$share/{g}/{filter}"),
            None => filter,
        }
    }

    /// Splits an inbound topic into its kind and the device segment (not yet validated: see
    /// [`crate::is_valid_device_id`]). `None` for anything else.
    pub fn parse<'a>(prefix: &str, topic: &'a str) -> Option<(Inbound, &'a str)> {
        let rest = topic.strip_prefix(prefix)?.strip_prefix("/readers/")?;
        let (device, kind) = rest.rsplit_once('/')?;
        if device.contains('/') {
            return None;
        }
        match kind {
            "scan" => Some((Inbound::Scan, device)),
            "status" => Some((Inbound::Status, device)),
            _ => None,
        }
    }
}

/// A decoded Scan (reader → gateway). The strings are kept exactly as sent: the signature
/// covers them byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// Idempotency key, unique per device, 1–64 characters.
    pub scan_id: String,
    /// Card UID as the reader sent it (normalised by the server).
    pub tag: String,
    /// RFC 3339 device time, as sent.
    pub scanned_at: String,
    /// Lowercase hex HMAC-SHA256; `None` when missing or not a string (a forged scan, not a
    /// malformed one; docs/reader-pipeline.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

impl Scan {
    /// `scanned_at` as a UTC instant (decoding guarantees it parses).
    pub fn scanned_at_utc(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.scanned_at).ok().map(|t| t.to_utc())
    }

    /// The Scan as the JSON payload a reader publishes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why a Scan payload was refused as `malformed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Larger than [`MAX_SCAN_BYTES`].
    TooLarge(usize),
    /// Not UTF-8 JSON.
    NotJson,
    /// JSON, but not an object.
    NotAnObject,
    /// A required field is absent.
    Missing(&'static str),
    /// A field has the wrong type or an unusable value.
    Invalid(&'static str, &'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooLarge(n) => write!(f, "payload of {n} bytes exceeds {MAX_SCAN_BYTES}"),
            DecodeError::NotJson => f.write_str("payload is not UTF-8 JSON"),
            DecodeError::NotAnObject => f.write_str("payload is not a JSON object"),
            DecodeError::Missing(field) => write!(f, "field `{field}` is missing"),
            DecodeError::Invalid(field, why) => write!(f, "field `{field}` {why}"),
        }
    }
}

/// A malformed Scan: why, and its `scan_id` when one could be recovered (echoed in the Result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// What is wrong.
    pub error: DecodeError,
    /// The scan id, when the payload had a usable one.
    pub scan_id: Option<String>,
}

/// Decodes and checks a Scan payload: size, JSON object, `scan_id` (1–64 chars), `tag`
/// (non-empty string), `scanned_at` (RFC 3339). Unknown fields are ignored (the contract
/// grows additively). A missing or non-string `sig` is not malformed: it fails verification.
pub fn decode_scan(payload: &[u8]) -> Result<Scan, Malformed> {
    let malformed = |error, scan_id| Malformed { error, scan_id };
    if payload.len() > MAX_SCAN_BYTES {
        return Err(malformed(DecodeError::TooLarge(payload.len()), None));
    }
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|_| malformed(DecodeError::NotJson, None))?;
    let serde_json::Value::Object(map) = value else {
        return Err(malformed(DecodeError::NotAnObject, None));
    };
    let text = |field: &'static str| -> Result<Option<&str>, DecodeError> {
        match map.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(DecodeError::Invalid(field, "must be a string")),
        }
    };
    let scan_id = text("scan_id").map_err(|e| malformed(e, None))?;
    let scan_id = match scan_id {
        None => return Err(malformed(DecodeError::Missing("scan_id"), None)),
        Some(s) if s.is_empty() || s.chars().count() > MAX_SCAN_ID_CHARS => {
            return Err(malformed(DecodeError::Invalid("scan_id", "must have 1 to 64 characters"), None));
        }
        Some(s) => s.to_owned(),
    };
    let echo = Some(scan_id.clone());
    let tag = match text("tag").map_err(|e| malformed(e, echo.clone()))? {
        None => return Err(malformed(DecodeError::Missing("tag"), echo)),
        Some(t) if t.trim().is_empty() || t.chars().count() > MAX_RAW_TAG_CHARS => {
            return Err(malformed(DecodeError::Invalid("tag", "must have 1 to 256 characters"), echo));
        }
        Some(t) => t.to_owned(),
    };
    let scanned_at = match text("scanned_at").map_err(|e| malformed(e, echo.clone()))? {
        None => return Err(malformed(DecodeError::Missing("scanned_at"), echo)),
        Some(t) if chrono::DateTime::parse_from_rfc3339(t).is_err() => {
            return Err(malformed(DecodeError::Invalid("scanned_at", "must be an RFC 3339 timestamp"), echo));
        }
        Some(t) => t.to_owned(),
    };
    let sig = text("sig").ok().flatten().map(str::to_owned);
    Ok(Scan { scan_id, tag, scanned_at, sig })
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (long keys are hashed), so this cannot fail.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// The device key of `device_id` at `key_version`: lowercase hex of
/// HMAC-SHA256(server secret, `device_id ‖ ":" ‖ key_version`). Nothing about it is stored;
/// rotation increments the version, so the old key stops verifying.
pub fn derive_device_key(server_secret: &[u8], device_id: &str, key_version: i32) -> String {
    let mut m = mac(server_secret);
    m.update(device_id.as_bytes());
    m.update(b":");
    m.update(key_version.to_string().as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// The signed text: `device_id`, `scan_id`, `tag`, `scanned_at` joined by `\n`, no trailing newline.
pub fn signature_input(device_id: &str, scan_id: &str, tag: &str, scanned_at: &str) -> String {
    format!("{device_id}\n{scan_id}\n{tag}\n{scanned_at}")
}

/// `sig` for a scan: lowercase hex HMAC-SHA256 keyed with the device key string.
pub fn sign(device_key: &str, device_id: &str, scan_id: &str, tag: &str, scanned_at: &str) -> String {
    let mut m = mac(device_key.as_bytes());
    m.update(signature_input(device_id, scan_id, tag, scanned_at).as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Whether `scan` carries a valid signature by `device_key` for `device_id`. The comparison
/// is constant-time (hmac's `verify_slice`); a missing, non-hex or upper-case `sig` fails.
pub fn verify_signature(device_key: &str, device_id: &str, scan: &Scan) -> bool {
    let Some(sig) = scan.sig.as_deref() else { return false };
    if sig.len() != 64 || sig.bytes().any(|b| b.is_ascii_uppercase()) {
        return false;
    }
    let Ok(expected) = hex::decode(sig) else { return false };
    let mut m = mac(device_key.as_bytes());
    m.update(signature_input(device_id, &scan.scan_id, &scan.tag, &scan.scanned_at).as_bytes());
    m.verify_slice(&expected).is_ok()
}

/// Normalises a card UID: trim, drop `:`, `-` and whitespace, upper-case; `None` unless the
/// result is 8–64 hex digits (the `users.rfid_cards.id` format).
pub fn normalize_tag(raw: &str) -> Option<String> {
    let tag: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ':' | '-') && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    ((8..=64).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_hexdigit())).then_some(tag)
}

/// What a scan did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A visit (room reader) or the day's attendance (entrance reader) was opened.
    CheckedIn,
    /// A visit or the day's attendance was closed.
    CheckedOut,
    /// The open visit elsewhere was closed and one opened here.
    Transferred,
    /// Nothing was changed; `code` says why.
    Rejected,
}

impl Outcome {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::CheckedIn => "checked_in",
            Outcome::CheckedOut => "checked_out",
            Outcome::Transferred => "transferred",
            Outcome::Rejected => "rejected",
        }
    }

    /// Parses the wire string.
    pub fn parse(s: &str) -> Option<Self> {
        [Outcome::CheckedIn, Outcome::CheckedOut, Outcome::Transferred, Outcome::Rejected]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// Machine code of a Result: `ok`, or why it was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Applied.
    Ok,
    /// No card with this UID.
    UnknownTag,
    /// The card is deactivated.
    TagInactive,
    /// The card belongs to someone who is not a pupil.
    NotAStudent,
    /// The reader's room has no running session (or the reader is bound to no room).
    NoActiveSession,
    /// Room capacity or the activity's participant limit is reached.
    RoomFull,
    /// Wrong, missing or foreign signature.
    BadSignature,
    /// No reader with this device id.
    UnknownDevice,
    /// The reader is not `active`.
    DeviceInactive,
    /// Not JSON, missing fields, oversized.
    Malformed,
    /// `scanned_at` outside the accepted window.
    StaleScan,
    /// A newer scan of the same pupil was already applied.
    Superseded,
    /// Entrance reader: the pupil may not leave yet.
    PickupNotAllowed,
    /// Too many messages from this reader.
    RateLimited,
    /// A server fault.
    Internal,
}

impl Code {
    /// Every code, for exhaustive tests.
    pub const ALL: [Code; 15] = [
        Code::Ok,
        Code::UnknownTag,
        Code::TagInactive,
        Code::NotAStudent,
        Code::NoActiveSession,
        Code::RoomFull,
        Code::BadSignature,
        Code::UnknownDevice,
        Code::DeviceInactive,
        Code::Malformed,
        Code::StaleScan,
        Code::Superseded,
        Code::PickupNotAllowed,
        Code::RateLimited,
        Code::Internal,
    ];

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::UnknownTag => "unknown_tag",
            Code::TagInactive => "tag_inactive",
            Code::NotAStudent => "not_a_student",
            Code::NoActiveSession => "no_active_session",
            Code::RoomFull => "room_full",
            Code::BadSignature => "bad_signature",
            Code::UnknownDevice => "unknown_device",
            Code::DeviceInactive => "device_inactive",
            Code::Malformed => "malformed",
            Code::StaleScan => "stale_scan",
            Code::Superseded => "superseded",
            Code::PickupNotAllowed => "pickup_not_allowed",
            Code::RateLimited => "rate_limited",
            Code::Internal => "internal",
        }
    }

    /// Parses the wire string.
    pub fn parse(s: &str) -> Option<Self> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Short text for the reader's display (German, the school's language) for a rejection.
    pub fn display_message(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::UnknownTag => "Karte unbekannt",
            Code::TagInactive => "Karte gesperrt",
            Code::NotAStudent => "Keine Schülerkarte",
            Code::NoActiveSession => "Raum nicht geöffnet",
            Code::RoomFull => "Raum ist voll",
            Code::BadSignature => "Leser nicht berechtigt",
            Code::UnknownDevice => "Leser unbekannt",
            Code::DeviceInactive => "Leser deaktiviert",
            Code::Malformed => "Ungültige Nachricht",
            Code::StaleScan => "Scan zu alt",
            Code::Superseded => "Bereits aktualisiert",
            Code::PickupNotAllowed => "Abholung noch nicht erlaubt",
            Code::RateLimited => "Zu viele Scans",
            Code::Internal => "Fehler, bitte erneut",
        }
    }
}

/// The pupil in a Result: id and display name only (no more personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultStudent {
    /// `users.students.id`.
    pub id: i64,
    /// First name + last initial, e.g. `Emma M.`.
    pub display_name: String,
}

/// The room in a Result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRoom {
    /// `facilities.rooms.id`.
    pub id: i64,
    /// Room name.
    pub name: String,
}

/// The Result (gateway → reader). Serialises with the contract's field order; `student` and
/// `room` are left out when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResult {
    /// Echo of the scan's id (empty when a malformed scan had none).
    pub scan_id: String,
    /// What happened.
    pub outcome: Outcome,
    /// `ok` or the rejection reason.
    pub code: Code,
    /// Short human text for the display.
    pub message: String,
    /// The pupil, when the tag resolved to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student: Option<ResultStudent>,
    /// The room, when one is involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<ResultRoom>,
    /// True when this `scan_id` was already processed and this is the stored result again.
    pub duplicate: bool,
}

impl ScanResult {
    /// A rejection with the code's display message and no pupil or room.
    pub fn rejected(scan_id: impl Into<String>, code: Code) -> Self {
        Self {
            scan_id: scan_id.into(),
            outcome: Outcome::Rejected,
            code,
            message: code.display_message().to_owned(),
            student: None,
            room: None,
            duplicate: false,
        }
    }

    /// The JSON payload published on the result topic.
    pub fn to_json(&self) -> String {
        // Serialising plain strings, integers and bools cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The name a reader shows: first name + last initial (`Emma M.`), nothing more.
pub fn display_name(first_name: &str, last_name: &str) -> String {
    let first = first_name.trim();
    match last_name.trim().chars().next() {
        Some(initial) => format!("{first} {}.", initial.to_uppercase()),
        None => first.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        for ok in ["reader-01", "a", "A.b_c-9", &"x".repeat(64)] {
            assert!(is_valid_device_id(ok), "{ok}");
        }
        for bad in ["", "a/b", "a+b", "a#", "ä", "a b", &"x".repeat(65)] {
            assert!(!is_valid_device_id(bad), "{bad}");
        }
    }

    #[test]
    fn topics_round_trip() {
        assert_eq!(topics::scan("phoenix", "reader-01"), "phoenix/readers/reader-01/scan");
        assert_eq!(topics::result("school/a", "r"), "school/a/readers/r/result");
        assert_eq!(topics::scan_filter("phoenix", None), "phoenix/readers/+/scan");
        assert_eq!(topics::status_filter("phoenix", Some("gw")), "$share/gw/phoenix/readers/+/status");
        assert_eq!(topics::parse("phoenix", "phoenix/readers/r-1/scan"), Some((topics::Inbound::Scan, "r-1")));
        assert_eq!(topics::parse("school/a", "school/a/readers/r/status"), Some((topics::Inbound::Status, "r")));
        assert_eq!(topics::parse("phoenix", "phoenix/readers/r-1/result"), None);
        assert_eq!(topics::parse("phoenix", "phoenix/readers/a/b/scan"), None);
        assert_eq!(topics::parse("phoenix", "other/readers/r/scan"), None);
        // The device segment is returned for validation by the caller.
        assert_eq!(topics::parse("phoenix", "phoenix/readers/a+b/scan"), Some((topics::Inbound::Scan, "a+b")));
    }

    #[test]
    fn tag_normalisation() {
        assert_eq!(normalize_tag("04A1B2C3D4E5F6").as_deref(), Some("04A1B2C3D4E5F6"));
        assert_eq!(normalize_tag(" 04:a1:b2:c3 ").as_deref(), Some("04A1B2C3"));
        assert_eq!(normalize_tag("04-a1-b2-c3-d4").as_deref(), Some("04A1B2C3D4"));
        assert_eq!(normalize_tag("04 a1 B2 c3").as_deref(), Some("04A1B2C3"));
        assert_eq!(normalize_tag(&"ab".repeat(32)).as_deref(), Some("AB".repeat(32).as_str()));
        assert_eq!(normalize_tag("04A1B2C"), None, "7 digits is too short");
        assert_eq!(normalize_tag(&"a".repeat(65)), None, "65 digits is too long");
        assert_eq!(normalize_tag("04A1B2G3"), None, "not hex");
        assert_eq!(normalize_tag("04A1B2C3;"), None);
        assert_eq!(normalize_tag("   "), None);
    }

    #[test]
    fn device_keys_are_deterministic_per_version() {
        let k1 = derive_device_key(b"server-secret", "reader-01", 1);
        assert_eq!(k1.len(), 64);
        assert!(k1.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(k1, derive_device_key(b"server-secret", "reader-01", 1));
        assert_ne!(k1, derive_device_key(b"server-secret", "reader-01", 2));
        assert_ne!(k1, derive_device_key(b"server-secret", "reader-02", 1));
        assert_ne!(k1, derive_device_key(b"other-secret", "reader-01", 1));
        // "reader-1" + ":" + "1" must differ from "reader-11" + ":" … — the separator matters.
        assert_ne!(derive_device_key(b"s", "r1", 11), derive_device_key(b"s", "r11", 1));
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut m = mac(b"Jefe");
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(signature_input("d", "s", "t", "2026-01-01T08:00:00Z"), "d\ns\nt\n2026-01-01T08:00:00Z");
        // Known answers computed with Python's hmac module (what a reader's firmware does).
        let key = derive_device_key(b"server-secret", "reader-01", 1);
        assert_eq!(key, "eb6f229255aaa44ab3d3e6b4791185f27b91ed9299853c4392a3b9f4bd3bae1b");
        assert_eq!(
            sign(&key, "reader-01", "s-1", "04:a1:b2:c3", "2026-11-25T07:45:00+01:00"),
            "e5d5e020c7a17a65c8a4ed20bb809117c8c3e0dca3207c6cc3b9d1907403815f"
        );
    }

    fn signed_scan(key: &str, device: &str) -> Scan {
        let (scan_id, tag, at) = ("s-1", "04:a1:b2:c3", "2026-11-25T07:45:00+01:00");
        Scan {
            scan_id: scan_id.into(),
            tag: tag.into(),
            scanned_at: at.into(),
            sig: Some(sign(key, device, scan_id, tag, at)),
        }
    }

    #[test]
    fn verification_accepts_the_key_and_nothing_else() {
        let key = derive_device_key(b"secret", "reader-01", 1);
        let scan = signed_scan(&key, "reader-01");
        assert!(verify_signature(&key, "reader-01", &scan));
        // Another device's key, another device id, a rotated key.
        assert!(!verify_signature(&derive_device_key(b"secret", "reader-02", 1), "reader-01", &scan));
        assert!(!verify_signature(&key, "reader-02", &scan));
        assert!(!verify_signature(&derive_device_key(b"secret", "reader-01", 2), "reader-01", &scan));
        // Any signed field changed.
        for tamper in [
            |s: &mut Scan| s.scan_id.push('x'),
            |s: &mut Scan| s.tag = "04A1B2C3".into(),
            |s: &mut Scan| s.scanned_at = "2026-11-25T06:45:00Z".into(),
        ] {
            let mut s = scan.clone();
            tamper(&mut s);
            assert!(!verify_signature(&key, "reader-01", &s));
        }
        // Missing, upper-case, short, non-hex.
        let sig = scan.sig.clone().expect("sig");
        for bad in [None, Some(sig.to_uppercase()), Some(sig[..62].to_owned()), Some("zz".repeat(32))] {
            let s = Scan { sig: bad, ..scan.clone() };
            assert!(!verify_signature(&key, "reader-01", &s));
        }
    }

    #[test]
    fn decode_accepts_a_valid_scan_and_ignores_extra_fields() {
        let payload =
            br#"{"scan_id":"s-1","tag":"04A1B2C3","scanned_at":"2026-11-25T07:45:00Z","sig":"ab","fw":"1.2"}"#;
        let scan = decode_scan(payload).expect("valid");
        assert_eq!(scan.scan_id, "s-1");
        assert_eq!(scan.sig.as_deref(), Some("ab"));
        assert_eq!(scan.scanned_at_utc().map(|t| t.to_rfc3339()), Some("2026-11-25T07:45:00+00:00".into()));
        // A missing signature is a forged scan, not a malformed one.
        let unsigned = decode_scan(br#"{"scan_id":"s","tag":"04A1B2C3","scanned_at":"2026-11-25T07:45:00Z"}"#);
        assert_eq!(unsigned.expect("decodes").sig, None);
    }

    #[test]
    fn decode_names_what_is_malformed_and_recovers_the_scan_id() {
        let err = |p: &[u8]| decode_scan(p).unwrap_err();
        assert_eq!(err(&[b' '; MAX_SCAN_BYTES + 1]).error, DecodeError::TooLarge(MAX_SCAN_BYTES + 1));
        assert_eq!(err(b"\xff\xfe").error, DecodeError::NotJson);
        assert_eq!(err(b"{\"scan_id\":").error, DecodeError::NotJson);
        assert_eq!(err(b"[1,2]").error, DecodeError::NotAnObject);
        assert_eq!(err(b"{}").error, DecodeError::Missing("scan_id"));
        assert_eq!(err(br#"{"scan_id":7}"#).error, DecodeError::Invalid("scan_id", "must be a string"));
        let long = format!(r#"{{"scan_id":"{}"}}"#, "x".repeat(65));
        assert_eq!(err(long.as_bytes()).scan_id, None);
        let m = err(br#"{"scan_id":"s-9","scanned_at":"2026-11-25T07:45:00Z"}"#);
        assert_eq!((m.error, m.scan_id.as_deref()), (DecodeError::Missing("tag"), Some("s-9")));
        let m = err(br#"{"scan_id":"s-9","tag":"04A1B2C3","scanned_at":"yesterday"}"#);
        assert_eq!(m.error, DecodeError::Invalid("scanned_at", "must be an RFC 3339 timestamp"));
        assert_eq!(m.scan_id.as_deref(), Some("s-9"));
    }

    #[test]
    fn result_json_has_the_contract_shape() {
        let full = ScanResult {
            scan_id: "s-1".into(),
            outcome: Outcome::Transferred,
            code: Code::Ok,
            message: "Gewechselt: Raum 102".into(),
            student: Some(ResultStudent { id: 7, display_name: "Emma M.".into() }),
            room: Some(ResultRoom { id: 3, name: "Raum 102".into() }),
            duplicate: false,
        };
        assert_eq!(
            full.to_json(),
            r#"{"scan_id":"s-1","outcome":"transferred","code":"ok","message":"Gewechselt: Raum 102","student":{"id":7,"display_name":"Emma M."},"room":{"id":3,"name":"Raum 102"},"duplicate":false}"#
        );
        let rejected = ScanResult { duplicate: true, ..ScanResult::rejected("s-2", Code::RoomFull) };
        assert_eq!(
            rejected.to_json(),
            r#"{"scan_id":"s-2","outcome":"rejected","code":"room_full","message":"Raum ist voll","duplicate":true}"#
        );
        let back: ScanResult = serde_json::from_str(&full.to_json()).expect("round trip");
        assert_eq!(back, full);
    }

    #[test]
    fn codes_and_outcomes_use_the_contract_strings() {
        for code in Code::ALL {
            let json = serde_json::to_string(&code).expect("serialise");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(Code::parse(code.as_str()), Some(code));
        }
        assert_eq!(Code::parse("nope"), None);
        assert_eq!(Outcome::parse("checked_out"), Some(Outcome::CheckedOut));
        assert_eq!(serde_json::to_string(&Outcome::CheckedIn).expect("serialise"), "\"checked_in\"");
    }

    /// Fuzz-style: random and mutated payloads never panic, and whatever decodes satisfies
    /// the field rules.
    #[test]
    fn decoding_never_panics_on_garbage() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid = br#"{"scan_id":"s-1","tag":"04A1B2C3","scanned_at":"2026-11-25T07:45:00Z","sig":"ab"}"#;
        for i in 0..50_000 {
            let payload: Vec<u8> = if i % 2 == 0 {
                (0..next() % 200).map(|_| next() as u8).collect()
            } else {
                let mut p = valid.to_vec();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % p.len();
                    match next() % 3 {
                        0 => p[at] = next() as u8,
                        1 => {
                            p.remove(at);
                        }
                        _ => p.insert(at, next() as u8),
                    }
                }
                p
            };
            if let Ok(scan) = decode_scan(&payload) {
                assert!((1..=MAX_SCAN_ID_CHARS).contains(&scan.scan_id.chars().count()));
                assert!(!scan.tag.trim().is_empty());
                assert!(scan.scanned_at_utc().is_some());
                let _ = normalize_tag(&scan.tag);
                let _ = verify_signature("key", "dev", &scan);
            }
        }
    }

    #[test]
    fn display_names_are_first_name_and_last_initial() {
        assert_eq!(display_name("Emma", "Müller"), "Emma M.");
        assert_eq!(display_name(" Anna Lena ", "östermann"), "Anna Lena Ö.");
        assert_eq!(display_name("Ben", " "), "Ben");
    }
}
