//! Pagination (api.md "Method design"): `page_size` (default 50, at most 500) and opaque
//! keyset page tokens, never offsets. A token carries the last id of the previous page and
//! a fingerprint of the filters, so it cannot be replayed against other filters.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

/// Page size when the caller sends 0.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Largest page.
pub const MAX_PAGE_SIZE: i64 = 500;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to return.
    pub size: i64,
    /// Return rows with an id greater than this.
    pub after: Option<i64>,
}

impl Page {
    /// Validates `page_size` and `page_token`; `filters` fingerprints the request's filters.
    pub fn parse(page_size: i32, page_token: &str, filters: &str) -> Result<Self> {
        let size = parse_size(page_size)?;
        if page_token.is_empty() {
            return Ok(Self { size, after: None });
        }
        let key = decode_token(page_token, filters)?;
        Ok(Self { size, after: Some(key.parse().map_err(|_| bad_token())?) })
    }

    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }

    /// Trims `rows` (fetched with [`Page::fetch_limit`]) to the page and returns the next
    /// page's token, empty when no row follows.
    pub fn finish<T>(&self, rows: &mut Vec<T>, id: impl Fn(&T) -> i64, filters: &str) -> String {
        if rows.len() as i64 <= self.size {
            return String::new();
        }
        rows.truncate(self.size as usize);
        rows.last().map(|r| encode_token(&id(r).to_string(), filters)).unwrap_or_default()
    }

    /// The token of the page after one whose last row has `last_id`, or empty when the page
    /// was not full (no further rows).
    pub fn next_token(&self, rows_returned: usize, last_id: Option<i64>, filters: &str) -> String {
        match last_id {
            Some(id) if rows_returned as i64 >= self.size => encode_token(&id.to_string(), filters),
            _ => String::new(),
        }
    }
}

/// A validated page request over rows ordered by a text key (settings, feature flags):
/// the same token format as [`Page`], with the last key instead of the last id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// Rows to return.
    pub size: i64,
    /// Return rows whose key sorts after this one.
    pub after: Option<String>,
}

impl KeyPage {
    /// Validates `page_size` and `page_token`; `filters` fingerprints the request's filters.
    pub fn parse(page_size: i32, page_token: &str, filters: &str) -> Result<Self> {
        let size = parse_size(page_size)?;
        let after = if page_token.is_empty() { None } else { Some(decode_token(page_token, filters)?) };
        Ok(Self { size, after })
    }

    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }

    /// Trims `rows` (fetched with [`KeyPage::fetch_limit`]) to the page and returns the next
    /// page's token, empty when no row follows.
    pub fn finish<T>(&self, rows: &mut Vec<T>, key: impl Fn(&T) -> String, filters: &str) -> String {
        if rows.len() as i64 <= self.size {
            return String::new();
        }
        rows.truncate(self.size as usize);
        rows.last().map(|r| encode_token(&key(r), filters)).unwrap_or_default()
    }

    /// The token of the page after one whose last row has `last_key`, or empty when the
    /// page was not full.
    pub fn next_token(&self, rows_returned: usize, last_key: Option<&str>, filters: &str) -> String {
        match last_key {
            Some(key) if rows_returned as i64 >= self.size => encode_token(key, filters),
            _ => String::new(),
        }
    }
}

/// A page request bound at parse time to one listing (`collection` plus its canonical
/// `filters`, e.g. the `Debug` of a filter struct), so producing the next token needs no
/// filters again. Same token format and size rules as [`Page`] and [`KeyPage`].
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
        let size = parse_size(page_size)?;
        let after = if page_token.is_empty() { None } else { Some(decode_token(page_token, &listing)?) };
        Ok(Self { size, after, listing })
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
    fn key_pages_round_trip_keys_with_colons_and_reject_other_filters() {
        let first = KeyPage::parse(2, "", "flags").expect("first page");
        let token = first.next_token(2, Some("a:b.c"), "flags");
        assert_eq!(KeyPage::parse(2, &token, "flags").expect("next").after.as_deref(), Some("a:b.c"));
        assert!(KeyPage::parse(2, &token, "other filters").is_err());
        assert_eq!(first.next_token(1, Some("x"), "flags"), "", "a short page is the last");
    }

    #[test]
    fn finish_trims_the_extra_row_and_ends_without_a_token() {
        let page = Page::parse(2, "", "f").expect("page");
        let mut rows = vec![1_i64, 2, 3];
        let token = page.finish(&mut rows, |r| *r, "f");
        assert_eq!(rows, [1, 2]);
        assert_eq!(Page::parse(2, &token, "f").expect("next").after, Some(2));
        let mut last = vec![3_i64];
        assert_eq!(page.finish(&mut last, |r| *r, "f"), "", "no row follows the last page");
    }

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
        assert_eq!(Page::parse(0, "", "").expect("ok").size, 50);
        assert_eq!(Page::parse(500, "", "").expect("ok").size, 500);
        assert!(Page::parse(501, "", "").is_err());
        assert!(Page::parse(-1, "", "").is_err());
    }

    #[test]
    fn tokens_round_trip_only_with_the_same_filters() {
        let page = Page::parse(2, "", "active=true").expect("ok");
        assert_eq!(page.next_token(1, Some(9), "active=true"), "", "a short page is the last");
        let token = page.next_token(2, Some(9), "active=true");
        assert_eq!(Page::parse(2, &token, "active=true").expect("ok").after, Some(9));
        assert!(Page::parse(2, &token, "active=false").is_err());
        assert!(Page::parse(2, "garbage!", "").is_err());
    }
}
