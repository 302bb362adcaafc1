//! Issuing access tokens (EdDSA JWTs) and making refresh tokens.
//!
//! Refresh tokens are 32 random bytes, base64url; only their SHA-256 is stored, so a
//! database leak yields no usable token.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use phoenix_common::Error;
use phoenix_common::authz::{AUDIENCE, Claims, ISSUER};
use sha2::{Digest as _, Sha256};

use crate::keys::Signer;

/// A signed access token and its expiry.
#[derive(Clone)]
pub struct AccessToken {
    /// The JWT.
    pub token: String,
    /// Its `exp`.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// What an access token says about its bearer.
#[derive(Debug, Clone)]
pub struct Subject {
    /// `sub`: the account id, or `service:<client_id>`.
    pub sub: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Effective permissions.
    pub permissions: Vec<String>,
    /// The refresh-token family of an account session.
    pub session_id: Option<uuid::Uuid>,
}

/// Signs an access token for `subject`, valid for `ttl`.
pub fn issue_access_token(signer: &Signer, subject: Subject, ttl: Duration) -> Result<AccessToken, Error> {
    let now = Utc::now();
    let expires_at = now + chrono::Duration::from_std(ttl).map_err(anyhow::Error::from)?;
    let claims = Claims {
        sub: subject.sub,
        roles: subject.roles,
        perms: subject.permissions,
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat: now.timestamp(),
        iat_ms: Some(now.timestamp_millis()),
        exp: expires_at.timestamp(),
        sid: subject.session_id,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(signer.kid.clone());
    let token = jsonwebtoken::encode(&header, &claims, signer.encoding_key())
        .map_err(|e| anyhow::anyhow!("signing an access token failed: {e}"))?;
    Ok(AccessToken { token, expires_at })
}

/// A new random opaque token (refresh token, client secret) and its SHA-256.
pub fn new_opaque_token() -> (String, [u8; 32]) {
    use rand::RngExt as _;
    let bytes: [u8; 32] = rand::rng().random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    (token, hash)
}

/// SHA-256 of a presented opaque token, as stored in `auth.tokens.token_hash`.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// base64url without padding (the JWK `x` encoding).
pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_common::authz::{Principal, TokenVerifier, VerificationKey};

    fn keypair(kid: &str) -> (Signer, VerificationKey) {
        let (seed, public) = crate::keys::generate_keypair();
        (
            Signer::from_seed(kid.into(), &seed),
            VerificationKey { kid: kid.into(), public_key: public.to_vec(), retire_after: None },
        )
    }

    fn subject(sub: &str) -> Subject {
        Subject {
            sub: sub.into(),
            roles: vec!["staff".into()],
            permissions: vec!["users:read".into()],
            session_id: Some(uuid::Uuid::new_v4()),
        }
    }

    /// Guards the jsonwebtoken crypto-backend feature: with none or two it still compiles
    /// but panics at the first encode/decode (dependencies.md pitfall 7).
    #[tokio::test]
    async fn eddsa_tokens_encode_and_verify_with_the_public_key_only() {
        let (signer, public) = keypair("k1");
        let issued = issue_access_token(&signer, subject("42"), Duration::from_secs(900)).expect("sign");
        let header = jsonwebtoken::decode_header(&issued.token).expect("header");
        assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some("k1"));

        let verifier = TokenVerifier::with_keys(vec![public]);
        let ctx = verifier.verify(&issued.token).await.expect("verifies");
        assert_eq!(ctx.principal, Principal::Account(42));
        assert_eq!(ctx.roles, ["staff"]);
        assert!(ctx.has_permission("users:read"));
        assert!(ctx.session_id.is_some());

        let service = issue_access_token(&signer, subject("service:gateway"), Duration::from_secs(60)).expect("sign");
        assert_eq!(verifier.verify(&service.token).await.expect("ok").principal, Principal::Service("gateway".into()));
    }

    #[tokio::test]
    async fn forged_unknown_retired_and_expired_tokens_are_rejected() {
        let (signer, public) = keypair("k1");
        let (other_signer, _) = keypair("k1");
        let verifier = TokenVerifier::with_keys(vec![public.clone()]);
        let ok = issue_access_token(&signer, subject("7"), Duration::from_secs(900)).expect("sign").token;

        let forged = issue_access_token(&other_signer, subject("7"), Duration::from_secs(900)).expect("sign").token;
        assert!(verifier.verify(&forged).await.is_err(), "same kid, different key");

        let (unknown, _) = keypair("k-unknown");
        let t = issue_access_token(&unknown, subject("7"), Duration::from_secs(900)).expect("sign").token;
        assert!(verifier.verify(&t).await.is_err(), "unknown kid");

        // Tamper with the payload: the signature no longer matches.
        let mut parts: Vec<String> = ok.split('.').map(str::to_owned).collect();
        parts[1] = base64url(
            br#"{"sub":"1","perms":["*:*"],"iss":"phoenix-auth","aud":"phoenix","jti":"x","iat":1,"exp":9999999999}"#,
        );
        assert!(verifier.verify(&parts.join(".")).await.is_err(), "tampered claims");

        let retired = TokenVerifier::with_keys(vec![VerificationKey {
            retire_after: Some(Utc::now() - chrono::Duration::seconds(1)),
            ..public.clone()
        }]);
        assert!(retired.verify(&ok).await.is_err(), "retired key");

        let claims = Claims {
            sub: "7".into(),
            roles: vec![],
            perms: vec![],
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            jti: "j".into(),
            iat: Utc::now().timestamp() - 3600,
            exp: Utc::now().timestamp() - 600,
            iat_ms: None,
            sid: None,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some("k1".into());
        let expired = jsonwebtoken::encode(&header, &claims, signer.encoding_key()).expect("sign");
        let err = verifier.verify(&expired).await.unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        assert!(verifier.verify("not-a-jwt").await.is_err());
    }

    #[test]
    fn opaque_tokens_are_random_and_hashed() {
        let (a, ha) = new_opaque_token();
        let (b, _) = new_opaque_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_token(&a), ha);
    }
}
