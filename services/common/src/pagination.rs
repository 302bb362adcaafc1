//! List pagination (api.md "Method design"): `page_size` default 50, max 500, and opaque
//! keyset page tokens (never offsets): a token names the last row of the previous page.

use crate::{Error, Result};

/// Page size when the request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Largest accepted page size.
pub const MAX_PAGE_SIZE: i64 = 500;

/// The page size of a request: 0 → [`DEFAULT_PAGE_SIZE`]; negative or above
/// [`MAX_PAGE_SIZE`] → `InvalidArgument` on `page_size`.
pub fn page_size(requested: i32) -> Result<i64> {
    match i64::from(requested) {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        n => Err(Error::invalid("page_size", format!("must be 0 (default 50) to {MAX_PAGE_SIZE}, got {n}"))),
    }
}

const TOKEN_PREFIX: &str = "k1:";

/// An opaque token for "continue after the row with key `last_key`".
pub fn encode_token(last_key: i64) -> String {
    hex_encode(format!("{TOKEN_PREFIX}{last_key}").as_bytes())
}

/// The key a page token continues after; `None` for the first page (empty token). A token
/// that was not produced by [`encode_token`] is `InvalidArgument` on `page_token`.
pub fn decode_token(token: &str) -> Result<Option<i64>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid("page_token", "is not a token returned by this list; omit it for the first page");
    let bytes = hex_decode(token).ok_or_else(bad)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    text.strip_prefix(TOKEN_PREFIX).and_then(|k| k.parse().ok()).map(Some).ok_or_else(bad)
}

/// Given one row more than the page size was fetched, trims the extra row and returns the
/// token for the next page (empty when this is the last page).
pub fn finish_page<T>(rows: &mut Vec<T>, size: i64, key: impl Fn(&T) -> i64) -> String {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if rows.len() > size {
        rows.truncate(size);
        rows.last().map(|r| encode_token(key(r))).unwrap_or_default()
    } else {
        String::new()
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0).expect("default"), 50);
        assert_eq!(page_size(1).expect("one"), 1);
        assert_eq!(page_size(500).expect("max"), 500);
        for bad in [-1, 501, i32::MAX] {
            let Err(Error::InvalidArgument(v)) = page_size(bad) else { panic!("{bad} accepted") };
            assert_eq!(v.iter().next().map(|(f, _)| f), Some("page_size"));
        }
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_token("").expect("first page"), None);
        assert_eq!(decode_token(&encode_token(42)).expect("valid"), Some(42));
        assert_eq!(decode_token(&encode_token(-7)).expect("valid"), Some(-7));
        for bad in ["42", "zz", "6b313a", "6b313a78", "abc"] {
            assert!(decode_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finish_page_trims_the_probe_row() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(finish_page(&mut rows, 2, |r| *r), encode_token(2));
        assert_eq!(rows, [1, 2]);
        let mut rows = vec![1, 2];
        assert_eq!(finish_page(&mut rows, 2, |r| *r), "");
    }
}
