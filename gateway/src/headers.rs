//! Security headers on every response of the gateway, and `no-store` on anything that did
//! not choose its own caching (API answers, errors): nothing a staff member saw is left in
//! a shared browser cache.

use http::{HeaderValue, Response, header};

/// The page may load only what the gateway serves, may not be framed, and sends no referrer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// Adds the security headers (and `cache-control: no-store` unless set) to `response`.
pub fn secure<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_response_gets_the_headers_and_keeps_its_own_caching() {
        let r = secure(Response::new(()));
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers()[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert!(
            r.headers()[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").starts_with("default-src 'self'")
        );
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let mut cached = Response::new(());
        cached.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
        assert_eq!(secure(cached).headers()[header::CACHE_CONTROL], "public, max-age=60");
    }
}
