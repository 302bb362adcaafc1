//! Keyset pagination for every `List*` RPC (api.md "Method design", AIP-158).
//!
//! A page token is opaque to clients: URL-safe base64 of `v1.<fingerprint>.<last key>`,
//! where the fingerprint is a hash of the collection name and the request's filters. A token
//! replayed with other filters (or for another collection) is rejected instead of silently
//! returning a page of a different result set. Keys are the sort key of the last row
//! returned (an id, or a tag for RFID cards), never an offset, so concurrent inserts do not
//! shift pages.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, FieldViolations, Result};

/// Page size when the request leaves `page_size` at 0.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Largest accepted `page_size`; more is `InvalidArgument`, not silently capped.
pub const MAX_PAGE_SIZE: i64 = 500;

const TOKEN_VERSION: &str = "v1";

/// A validated page request: how many rows, and after which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to return (1..=500).
    pub size: i64,
    /// Sort key of the last row of the previous page; `None` for the first page.
    pub after: Option<String>,
    fingerprint: String,
}

impl PageRequest {
    /// Validates `page_size` and `page_token` for a list of `collection` under `filters`.
    ///
    /// `filters` must describe every filter of the request canonically (e.g. the `Debug`
    /// output of a filter struct), so a token only continues the listing it came from.
    pub fn parse(collection: &str, filters: &str, page_size: i32, page_token: &str) -> Result<Self> {
        let mut violations = FieldViolations::default();
        let size = match i64::from(page_size) {
            0 => DEFAULT_PAGE_SIZE,
            n if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            n => {
                violations.add(
                    "page_size",
                    format!("must be 0 (default {DEFAULT_PAGE_SIZE}) or 1..={MAX_PAGE_SIZE}, got {n}"),
                );
                DEFAULT_PAGE_SIZE
            }
        };
        let fingerprint = fingerprint(collection, filters);
        let after = if page_token.is_empty() {
            None
        } else {
            match decode(page_token) {
                Some((fp, key)) if fp == fingerprint => Some(key),
                Some(_) => {
                    violations.add("page_token", "was issued for a different listing; repeat the filters of the first request or start without a token");
                    None
                }
                None => {
                    violations.add("page_token", "is not a token this service issued; pass next_page_token unchanged");
                    None
                }
            }
        };
        violations.into_result()?;
        Ok(Self { size, after, fingerprint })
    }

    /// The previous page's last key as an id (for id-ordered listings).
    pub fn after_id(&self) -> Result<Option<i64>> {
        match &self.after {
            None => Ok(None),
            Some(key) => key.parse::<i64>().map(Some).map_err(|_| {
                Error::invalid("page_token", "is not a token this service issued; pass next_page_token unchanged")
            }),
        }
    }

    /// How many rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }

    /// Cuts `rows` (fetched with [`Self::fetch_limit`]) to the page and returns the token of
    /// the next page, empty when this is the last one.
    pub fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, String) {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if rows.len() <= size {
            return (rows, String::new());
        }
        rows.truncate(size);
        let token = rows.last().map(|last| encode(&self.fingerprint, &key(last))).unwrap_or_default();
        (rows, token)
    }
}

fn fingerprint(collection: &str, filters: &str) -> String {
    let mut h = Sha256::new();
    h.update(collection.as_bytes());
    h.update([0]);
    h.update(filters.as_bytes());
    hex::encode(&h.finalize()[..8])
}

fn encode(fingerprint: &str, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_VERSION}.{fingerprint}.{key}"))
}

fn decode(token: &str) -> Option<(String, String)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let mut parts = raw.splitn(3, '.');
    let (version, fp, key) = (parts.next()?, parts.next()?, parts.next()?);
    (version == TOKEN_VERSION && !key.is_empty()).then(|| (fp.to_owned(), key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: Error) -> Vec<String> {
        match err {
            Error::InvalidArgument(v) => v.iter().map(|(f, _)| f.to_owned()).collect(),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_bounds_of_page_size() {
        assert_eq!(PageRequest::parse("rooms", "", 0, "").unwrap().size, 50);
        assert_eq!(PageRequest::parse("rooms", "", 1, "").unwrap().size, 1);
        assert_eq!(PageRequest::parse("rooms", "", 500, "").unwrap().size, 500);
        assert_eq!(field_of(PageRequest::parse("rooms", "", 501, "").unwrap_err()), ["page_size"]);
        assert_eq!(field_of(PageRequest::parse("rooms", "", -1, "").unwrap_err()), ["page_size"]);
    }

    #[test]
    fn a_token_continues_only_its_own_listing() {
        let first = PageRequest::parse("rooms", "building=1", 2, "").unwrap();
        let (rows, token) = first.finish(vec![1_i64, 2, 3], |r| r.to_string());
        assert_eq!(rows, [1, 2]);
        assert!(!token.is_empty());
        let next = PageRequest::parse("rooms", "building=1", 2, &token).unwrap();
        assert_eq!(next.after_id().unwrap(), Some(2));
        assert_eq!(field_of(PageRequest::parse("rooms", "building=2", 2, &token).unwrap_err()), ["page_token"]);
        assert_eq!(field_of(PageRequest::parse("groups", "building=1", 2, &token).unwrap_err()), ["page_token"]);
    }

    #[test]
    fn last_page_has_no_token() {
        let p = PageRequest::parse("rooms", "", 3, "").unwrap();
        let (rows, token) = p.finish(vec![1, 2, 3], |r: &i32| r.to_string());
        assert_eq!(rows.len(), 3);
        assert!(token.is_empty());
    }

    #[test]
    fn garbage_tokens_are_invalid_arguments() {
        for t in ["x", "!!!", &URL_SAFE_NO_PAD.encode("v0.abc.1"), &URL_SAFE_NO_PAD.encode("v1.abc.")] {
            assert_eq!(field_of(PageRequest::parse("rooms", "", 0, t).unwrap_err()), ["page_token"], "{t}");
        }
    }

    #[test]
    fn string_keys_round_trip() {
        let p = PageRequest::parse("cards", "", 1, "").unwrap();
        let (_, token) = p.finish(vec!["04AABB11".to_owned(), "04AABB12".to_owned()], Clone::clone);
        let next = PageRequest::parse("cards", "", 1, &token).unwrap();
        assert_eq!(next.after.as_deref(), Some("04AABB11"));
        assert!(next.after_id().is_err(), "a tag is not an id");
    }
}
