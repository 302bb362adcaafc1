//! Service credentials for internal callers (the gateway): a client id, an argon2id-hashed
//! secret and the permissions its tokens carry (`auth.service_clients`).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_common::db::DbPool;
use phoenix_common::password;
use phoenix_db::schema::auth::service_clients as sc;

use crate::validate::is_client_id;

/// Creates service client `client_id` with `permissions`, or replaces the secret and
/// permissions of an existing one (rotation), and returns the new secret. The secret is
/// shown only here: only its argon2id hash is stored.
///
/// Callable by the dev stack, the `phoenix create-service-client` command and tests.
pub async fn create_or_rotate(pool: &DbPool, client_id: &str, permissions: &[String]) -> anyhow::Result<String> {
    let (secret, _) = crate::tokens::new_opaque_token();
    set_secret(pool, client_id, permissions, &secret).await?;
    Ok(secret)
}

/// Creates service client `client_id` with `permissions` and the given `secret`, or gives an
/// existing one that secret and those permissions (and activates it). Only the secret's
/// argon2id hash is stored.
pub async fn set_secret(pool: &DbPool, client_id: &str, permissions: &[String], secret: &str) -> anyhow::Result<()> {
    anyhow::ensure!(is_client_id(client_id), "client id {client_id:?} must be 1–64 characters of a-z, 0-9, _ and -");
    for p in permissions {
        let ok = p.split_once(':').is_some_and(|(r, a)| !r.is_empty() && !a.is_empty() && !a.contains(':'));
        anyhow::ensure!(ok, "permission {p:?} must look like resource:action");
    }
    let to_hash = secret.to_owned();
    let hash = tokio::task::spawn_blocking(move || password::hash(&to_hash)).await??;
    let mut conn = pool.get().await.map_err(|e| anyhow::anyhow!("database unavailable: {e}"))?;
    diesel::insert_into(sc::table)
        .values((
            sc::client_id.eq(client_id),
            sc::secret_hash.eq(&hash),
            sc::permissions.eq(permissions),
            sc::active.eq(true),
        ))
        .on_conflict(sc::client_id)
        .do_update()
        .set((sc::secret_hash.eq(&hash), sc::permissions.eq(permissions), sc::active.eq(true)))
        .execute(&mut conn)
        .await?;
    Ok(())
}
