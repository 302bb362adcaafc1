//! The dashboard, embedded at build time from `gateway/dashboard/dist/` (see build.rs):
//! `/` is `index.html`, every other file by its path. Content types follow the extension.
//! `index.html` and other unhashed files are revalidated on every load (`no-cache` with an
//! ETag), so a new deployment is never hidden behind a stale page; files whose names carry
//! a content hash (`assets/index-4f9a1c2b.js`) are cached for a year. Unknown paths are 404.

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tonic::body::Body;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Path below `dist/`, with `/` separators (`index.html`, `assets/app-1a2b3c4d.js`).
    pub path: &'static str,
    /// The file's bytes.
    pub bytes: &'static [u8],
    /// Its entity tag (a quoted content hash).
    pub etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));

/// The pages Phoenix's mail links to (`services/auth/src/outbox/templates.rs`
/// `Kind::path`): the dashboard opens them itself, so each is `index.html`.
pub const PAGES: [&str; 3] = ["/reset-password", "/invitation", "/guardian-invitation"];

/// The embedded file at `path` (`/` and the [`PAGES`] are `index.html`).
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = match path.trim_start_matches('/') {
        "" => "index.html",
        _ if PAGES.contains(&path) => "index.html",
        p => p,
    };
    FILES.iter().find(|a| a.path == path)
}

/// Answers a page or asset request.
pub fn respond<B>(request: &Request<B>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let Some(asset) = find(request.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let cache_control = if is_hashed(asset.path) { "public, max-age=31536000, immutable" } else { "no-cache" };
    let fresh = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag || t.trim() == "*"));
    let (status, body) = if fresh {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else if request.method() == Method::HEAD {
        (StatusCode::OK, Body::empty())
    } else {
        (StatusCode::OK, Body::new(http_body_util::Full::new(bytes::Bytes::from_static(asset.bytes))))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(asset.path)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    headers.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    if status == StatusCode::OK {
        headers.insert(header::CONTENT_LENGTH, asset.bytes.len().into());
    }
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::new(http_body_util::Full::new(bytes::Bytes::from_static(text.as_bytes()))));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// The content type of a file, by its extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

/// Whether a file name carries a content hash, as bundlers name their output
/// (`index-4f9a1c2b.js`, `app.3Bx_9kQz.css`): the last `-`/`.` segment of the stem is at
/// least 8 characters of `[A-Za-z0-9_]` with a digit and a letter. Such a file never
/// changes under its name, so it may be cached for good.
pub fn is_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((stem, _ext)) = name.rsplit_once('.') else { return false };
    let Some(segment) = stem.rsplit(['-', '.']).next().filter(|s| s.len() < stem.len()) else { return false };
    segment.len() >= 8
        && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && segment.bytes().any(|b| b.is_ascii_digit())
        && segment.bytes().any(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_embedded() {
        let index = find("/").expect("index.html is embedded");
        assert_eq!(index.path, "index.html");
        assert!(index.etag.starts_with('"') && index.etag.ends_with('"'));
        assert!(find("/index.html").is_some());
        assert!(find("/../Cargo.toml").is_none());
        assert!(find("/nope.js").is_none());
    }

    #[test]
    fn the_mails_pages_are_the_dashboard() {
        for page in PAGES {
            assert_eq!(find(page).map(|a| a.path), Some("index.html"), "{page}");
        }
        // Exact paths only: with a trailing slash the page's relative asset names would miss.
        assert!(find("/invitation/").is_none());
        assert!(find("/reset-password/x").is_none());
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("assets/app-1a2b3c4d.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("logo.svg"), "image/svg+xml");
        assert_eq!(content_type("f.woff2"), "font/woff2");
        assert_eq!(content_type("README"), "application/octet-stream");
    }

    #[test]
    fn hashed_names_are_recognised() {
        assert!(is_hashed("assets/index-4f9a1c2b.js"));
        assert!(is_hashed("assets/app.3Bx_9kQz.css"));
        assert!(is_hashed("assets/Board-CdE12345.js"));
        assert!(!is_hashed("index.html"));
        assert!(!is_hashed("favicon.ico"));
        assert!(!is_hashed("assets/dashboard-overview.js"), "words are not hashes");
        assert!(!is_hashed("assets/report-20260101.js"), "dates are not hashes");
        assert!(!is_hashed("4f9a1c2b4f9a.js"), "a bare name has no separate hash segment");
    }

    #[test]
    fn responses_revalidate_the_page_and_honour_etags() {
        let get = |path: &str, etag: Option<&str>| {
            let mut r = Request::get(path).body(()).expect("request");
            if let Some(tag) = etag {
                r.headers_mut().insert(header::IF_NONE_MATCH, HeaderValue::from_str(tag).expect("ascii"));
            }
            respond(&r)
        };
        let page = get("/", None);
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = page.headers()[header::ETAG].to_str().expect("ascii").to_owned();
        assert_eq!(get("/", Some(&etag)).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(get("/", Some("\"other\"")).status(), StatusCode::OK);
        assert_eq!(get("/missing.css", None).status(), StatusCode::NOT_FOUND);
        let post = respond(&Request::post("/").body(()).expect("request"));
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
