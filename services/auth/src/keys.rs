//! Ed25519 signing keys for access tokens (`auth.signing_keys`).
//!
//! On start the auth service uses the newest key whose private half it can decrypt and
//! that is younger than [`AuthOptions::signing_key_rotation`]; otherwise it generates one.
//! The private key (a 32-byte seed) is stored encrypted with XChaCha20-Poly1305 under a
//! key derived from `PHOENIX_SECRET_KEY`, bound to the `kid` as associated data. When a new
//! key takes over, older keys get `retire_after` = now + the access-token lifetime (plus
//! skew), so tokens they signed keep verifying until they expire anyway, and their
//! private halves are dropped. A changed server secret therefore costs only a rotation.

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};
use phoenix_common::config::ServerSecret;
use phoenix_common::db::DbPool;
use phoenix_db::schema::auth::signing_keys as sk;

use crate::AuthOptions;

/// PKCS#8 v1 DER prefix of an Ed25519 private key; the 32-byte seed follows (RFC 8410).
const PKCS8_ED25519_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
const ENCRYPTION_PURPOSE: &str = "auth/signing-key-encryption/v1";
const NONCE_LEN: usize = 24;
/// Tolerated clock skew added to a retiring key's overlap.
const SKEW: chrono::Duration = chrono::Duration::minutes(1);

/// The key tokens are signed with now.
#[derive(Clone)]
pub struct Signer {
    /// Key id, written into every token header.
    pub kid: String,
    encoding: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer from an Ed25519 seed.
    pub fn from_seed(kid: String, seed: &[u8; 32]) -> Self {
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(seed);
        Self { kid, encoding: jsonwebtoken::EncodingKey::from_ed_der(&der) }
    }

    /// The jsonwebtoken key.
    pub fn encoding_key(&self) -> &jsonwebtoken::EncodingKey {
        &self.encoding
    }
}

/// A fresh Ed25519 key pair: (seed, public key).
pub fn generate_keypair() -> ([u8; 32], [u8; 32]) {
    use rand::RngExt as _;
    let seed: [u8; 32] = rand::rng().random();
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    (seed, public)
}

fn cipher(secret: &ServerSecret) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&secret.derive_key(ENCRYPTION_PURPOSE).into())
}

/// Encrypts a seed for storage: nonce ‖ ciphertext, authenticated together with `kid`.
pub fn encrypt_seed(secret: &ServerSecret, kid: &str, seed: &[u8; 32]) -> anyhow::Result<Vec<u8>> {
    use rand::RngExt as _;
    let nonce: [u8; NONCE_LEN] = rand::rng().random();
    let sealed = cipher(secret)
        .encrypt(&XNonce::from(nonce), Payload { msg: seed, aad: kid.as_bytes() })
        .map_err(|_| anyhow::anyhow!("encrypting the signing key failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts a stored seed; `None` when it was sealed under another secret or another kid.
pub fn decrypt_seed(secret: &ServerSecret, kid: &str, stored: &[u8]) -> Option<[u8; 32]> {
    let (nonce, sealed) = stored.split_at_checked(NONCE_LEN)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    let plain = cipher(secret).decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad: kid.as_bytes() }).ok()?;
    plain.try_into().ok()
}

/// Returns the key to sign with, generating and storing one when none is usable.
/// Serialised across processes by an advisory lock, so replicas starting together agree.
pub async fn ensure_signing_key(pool: &DbPool, secret: &ServerSecret, options: &AuthOptions) -> anyhow::Result<Signer> {
    let secret = secret.clone();
    let rotation = chrono::Duration::from_std(options.signing_key_rotation)?;
    let overlap = chrono::Duration::from_std(options.access_token_ttl)? + SKEW;
    let mut conn = pool.get().await.map_err(|e| anyhow::anyhow!("database unavailable: {e}"))?;
    conn.transaction::<Signer, anyhow::Error, _>(async move |conn| {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('phoenix.auth.signing_keys'))").execute(conn).await?;
        let now = Utc::now();
        let candidates: Vec<(String, Option<Vec<u8>>, DateTime<Utc>)> = sk::table
            .filter(sk::private_key_encrypted.is_not_null())
            .filter(sk::retire_after.is_null())
            .filter(sk::not_before.le(now))
            .filter(sk::created_at.gt(now - rotation))
            .order(sk::created_at.desc())
            .select((sk::kid, sk::private_key_encrypted, sk::created_at))
            .load(conn)
            .await?;
        for (kid, stored, _) in candidates {
            if let Some(seed) = stored.as_deref().and_then(|s| decrypt_seed(&secret, &kid, s)) {
                return Ok(Signer::from_seed(kid, &seed));
            }
            tracing::warn!(%kid, "signing key cannot be decrypted with this PHOENIX_SECRET_KEY; rotating");
        }
        let (seed, public) = generate_keypair();
        let kid = format!("ed25519-{}", uuid::Uuid::now_v7().simple());
        // Older keys stop signing now and verify until their last tokens have expired.
        diesel::update(sk::table.filter(sk::retire_after.is_null()))
            .set((sk::retire_after.eq(Some(now + overlap)), sk::private_key_encrypted.eq(None::<Vec<u8>>)))
            .execute(conn)
            .await?;
        diesel::insert_into(sk::table)
            .values((
                sk::kid.eq(&kid),
                sk::algorithm.eq("EdDSA"),
                sk::public_key.eq(public.to_vec()),
                sk::private_key_encrypted.eq(Some(encrypt_seed(&secret, &kid, &seed)?)),
                sk::not_before.eq(now),
            ))
            .execute(conn)
            .await?;
        tracing::info!(%kid, "generated a new access-token signing key");
        Ok(Signer::from_seed(kid, &seed))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_seeds_open_only_with_the_same_secret_and_kid() {
        let secret = ServerSecret::generate();
        let (seed, _) = generate_keypair();
        let sealed = encrypt_seed(&secret, "k1", &seed).expect("encrypt");
        assert_eq!(decrypt_seed(&secret, "k1", &sealed), Some(seed));
        assert_eq!(decrypt_seed(&secret, "k2", &sealed), None, "bound to its kid");
        assert_eq!(decrypt_seed(&ServerSecret::generate(), "k1", &sealed), None, "bound to the secret");
        assert_eq!(decrypt_seed(&secret, "k1", &sealed[..10]), None);
        assert!(!sealed.windows(32).any(|w| w == seed), "the seed is not stored in clear");
    }
}
