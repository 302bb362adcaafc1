//! List paging (api.md "Method design"): `page_size` default 50, max 500, and opaque keyset
//! page tokens. A token wraps the sort key of the last row of the previous page, so pages
//! stay stable while rows are inserted or deleted (no offsets).

use crate::{Error, Result};

/// Page size when the request leaves `page_size` at 0.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Largest page a caller may ask for.
pub const MAX_PAGE_SIZE: i64 = 500;

const TOKEN_PREFIX: &str = "pk1:";

/// A validated `page_size` + `page_token` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows per page, 1..=500.
    pub size: i64,
    /// The sort key of the last row already returned (`None` on the first page).
    pub after: Option<String>,
}

impl PageRequest {
    /// Validates the raw request fields; violations name `page_size` / `page_token`.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self> {
        let size = match i64::from(page_size) {
            0 => DEFAULT_PAGE_SIZE,
            n if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            n => return Err(Error::invalid("page_size", format!("must be 1..={MAX_PAGE_SIZE} (0 = 50), got {n}"))),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bytes = hex::decode(page_token)
                .map_err(|_| Error::invalid("page_token", "not a token returned by this list; start without one"))?;
            let text = String::from_utf8(bytes)
                .ok()
                .and_then(|t| t.strip_prefix(TOKEN_PREFIX).map(str::to_owned))
                .ok_or_else(|| Error::invalid("page_token", "not a token returned by this list; start without one"))?;
            Some(text)
        };
        Ok(Self { size, after })
    }

    /// The `after` key as a numeric id (lists ordered by `id`).
    pub fn after_id(&self) -> Result<Option<i64>> {
        self.after
            .as_deref()
            .map(|a| a.parse::<i64>().map_err(|_| Error::invalid("page_token", "token does not belong to this list")))
            .transpose()
    }

    /// How many rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }

    /// Trims `rows` (fetched with [`Self::fetch_limit`]) to the page and returns the next
    /// token (empty at the end), built from the last row's key.
    pub fn finish<T>(&self, rows: &mut Vec<T>, key: impl Fn(&T) -> String) -> String {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if rows.len() > size {
            rows.truncate(size);
            rows.last().map(|r| encode_token(&key(r))).unwrap_or_default()
        } else {
            String::new()
        }
    }
}

/// The opaque token for a sort key.
pub fn encode_token(key: &str) -> String {
    hex::encode(format!("{TOKEN_PREFIX}{key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(PageRequest::parse(0, "").unwrap().size, 50);
        assert_eq!(PageRequest::parse(500, "").unwrap().size, 500);
        assert!(PageRequest::parse(501, "").is_err());
        assert!(PageRequest::parse(-1, "").is_err());
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_rejected() {
        let p = PageRequest::parse(2, &encode_token("42")).unwrap();
        assert_eq!(p.after_id().unwrap(), Some(42));
        assert!(PageRequest::parse(2, "zz").is_err());
        assert!(PageRequest::parse(2, &hex::encode("other")).is_err());
    }

    #[test]
    fn finish_emits_a_token_only_when_more_rows_follow() {
        let p = PageRequest::parse(2, "").unwrap();
        let mut rows = vec![1, 2, 3];
        assert_eq!(p.finish(&mut rows, |r| r.to_string()), encode_token("2"));
        assert_eq!(rows, [1, 2]);
        let mut rows = vec![1, 2];
        assert_eq!(p.finish(&mut rows, |r| r.to_string()), "");
    }
}
