//! The MQTT scan decoder and everything the gateway does with a decoded scan before any
//! database work must never panic, whatever bytes arrive on `{p}/readers/{device}/scan`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_reader_protocol::{MAX_SCAN_BYTES, MAX_SCAN_ID_CHARS, decode_scan, normalize_tag, verify_signature};

fuzz_target!(|data: &[u8]| {
    if let Ok(scan) = decode_scan(data) {
        // What decoding promises: the bounds of the contract hold.
        assert!(data.len() <= MAX_SCAN_BYTES);
        assert!(!scan.scan_id.is_empty() && scan.scan_id.chars().count() <= MAX_SCAN_ID_CHARS);
        assert!(scan.scanned_at_utc().is_some(), "a decoded scan's time parses");
        let _ = normalize_tag(&scan.tag);
        let _ = verify_signature("fuzz-key", "reader-01", &scan);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = normalize_tag(text);
        let _ = phoenix_reader_protocol::topics::parse("phoenix", text);
    }
});
