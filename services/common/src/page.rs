//! Pagination: `page_size` (default 50, at most 500) and opaque
//! keyset page tokens, never offsets. A token carries the last id of the previous page and
//! a fingerprint of the filters, so it cannot be replayed against other filters.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, FieldViolations, Result};

/// Page size when the caller sends 0.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Largest page.
pub const MAX_PAGE_SIZE: i64 = 500;

/// The one page request of every `List*` RPC, bound at parse time to one listing
/// (`collection` plus its canonical `filters`, e.g. the `Debug` of a filter struct), so
/// producing the next token needs no filters again. Keys are ids ([`PageRequest::after_id`])
/// or text (settings and flags sort by key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to return.
    pub size: i64,
    /// Sort key of the previous page's last row; `None` for the first page.
    pub after: Option<String>,
    listing: String,
}

impl PageRequest {
    /// Validates `page_size` and `page_token` for `collection` under `filters`.
    pub fn parse(collection: &str, filters: &str, page_size: i32, page_token: &str) -> Result<Self> {
        let listing = format!("{collection}\u{0}{filters}");
        let mut v = FieldViolations::default();
        let size = crate::validate::collect(parse_size(page_size), &mut v);
        let after = if page_token.is_empty() {
            Some(None)
        } else {
            crate::validate::collect(decode_token(page_token, &listing).map(Some), &mut v)
        };
        v.into_result()?;
        match (size, after) {
            (Some(size), Some(after)) => Ok(Self { size, after, listing }),
            _ => Err(Error::invalid("page_token", "invalid")),
        }
    }

    /// The previous page's last key as an id (for id-ordered listings).
    pub fn after_id(&self) -> Result<Option<i64>> {
        self.after.as_deref().map(|k| k.parse::<i64>().map_err(|_| bad_token())).transpose()
    }

    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }

    /// Cuts `rows` (fetched with [`PageRequest::fetch_limit`]) to the page and returns them
    /// with the next page's token, empty when this is the last page.
    pub fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, String) {
        if rows.len() as i64 <= self.size {
            return (rows, String::new());
        }
        rows.truncate(self.size as usize);
        let token = rows.last().map(|r| encode_token(&key(r), &self.listing)).unwrap_or_default();
        (rows, token)
    }
}

fn parse_size(page_size: i32) -> Result<i64> {
    match i64::from(page_size) {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        n => Err(Error::invalid("page_size", format!("must be 0 (default 50) to {MAX_PAGE_SIZE}, got {n}"))),
    }
}

fn bad_token() -> Error {
    Error::invalid("page_token", "is not a token from this list with these filters; start again without it")
}

fn encode_token(key: &str, filters: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{}:{key}", fingerprint_of(filters)))
}

/// The key a token carries, if it was made for these `filters`.
fn decode_token(token: &str, filters: &str) -> Result<String> {
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad_token())?;
    let text = String::from_utf8(raw).map_err(|_| bad_token())?;
    // The fingerprint comes first: keys may themselves contain ':'.
    let (fingerprint, key) = text.strip_prefix("v1:").and_then(|t| t.split_once(':')).ok_or_else(bad_token)?;
    if fingerprint != fingerprint_of(filters) || key.is_empty() {
        return Err(bad_token());
    }
    Ok(key.to_owned())
}

fn fingerprint_of(filters: &str) -> String {
    // FNV-1a: stable across processes and releases (unlike std's hasher), and the token is
    // not a secret, so a cryptographic hash buys nothing.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in filters.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_requests_are_bound_to_their_listing() {
        let first = PageRequest::parse("rooms", "filter A", 1, "").expect("first");
        let (rows, token) = first.finish(vec![7_i64, 8], |r| r.to_string());
        assert_eq!(rows, [7]);
        let next = PageRequest::parse("rooms", "filter A", 1, &token).expect("next");
        assert_eq!(next.after_id().expect("id"), Some(7));
        assert!(PageRequest::parse("rooms", "filter B", 1, &token).is_err(), "other filters");
        assert!(PageRequest::parse("groups", "filter A", 1, &token).is_err(), "other collection");
    }

    #[test]
    fn sizes_default_and_are_capped() {
        assert_eq!(PageRequest::parse("c", "", 0, "").expect("ok").size, 50);
        assert_eq!(PageRequest::parse("c", "", 500, "").expect("ok").size, 500);
        assert!(PageRequest::parse("c", "", 501, "").is_err());
        assert!(PageRequest::parse("c", "", -1, "").is_err());
    }

    #[test]
    fn keys_with_colons_round_trip_and_the_last_page_has_no_token() {
        let first = PageRequest::parse("flags", "", 1, "").expect("first");
        let (_, token) = first.finish(vec!["a:b.c".to_owned(), "d".to_owned()], |k| k.clone());
        assert_eq!(PageRequest::parse("flags", "", 1, &token).expect("next").after.as_deref(), Some("a:b.c"));
        let (rows, token) = first.finish(vec!["x".to_owned()], |k| k.clone());
        assert_eq!((rows.len(), token.as_str()), (1, ""), "no row follows the last page");
    }

    #[test]
    fn a_bad_size_and_a_bad_token_are_reported_together() {
        let Err(Error::InvalidArgument(v)) = PageRequest::parse("c", "", -1, "garbage!") else { panic!("accepted") };
        let fields: Vec<_> = v.iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["page_size", "page_token"]);
    }
}
