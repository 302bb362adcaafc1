//! The first admin account. Created by a command (`phoenix create-admin`, or `phoenix dev`),
//! never by a migration, and never with a built-in default password (data-model rule 7).

use std::path::Path;

use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};
use phoenix_common::config::Secret;
use phoenix_common::db::DbPool;
use phoenix_common::password;
use phoenix_db::schema::auth::{account_roles, accounts, roles};

/// Login of the admin account `dev` set up.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminCredentials {
    /// Login email.
    pub email: String,
    /// Plain password: generated for dev and kept in the data directory (mode 0600).
    pub password: String,
    /// Whether the account was created during this start.
    pub created: bool,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials").field("email", &self.email).field("password", &"<redacted>").finish()
    }
}

/// Default admin login email for `phoenix dev`.
pub const DEV_ADMIN_EMAIL: &str = "admin@phoenix.local";

/// Normalises and checks an email address (trimmed, lower-case, one `@`, a dot in the domain).
pub fn normalize_email(email: &str) -> anyhow::Result<String> {
    phoenix_common::email::normalize(email)
        .ok_or_else(|| anyhow::anyhow!("{:?} is not a valid email address", email.trim()))
}

/// Creates an active account with role `admin`, unless an account with that email exists.
/// Returns whether it was created. Rejects weak passwords (`phoenix_common::password::is_strong`).
pub async fn create_admin(pool: &DbPool, email: &str, password: &str) -> anyhow::Result<bool> {
    let email = normalize_email(email)?;
    anyhow::ensure!(
        password::is_strong(password),
        "the admin password must have at least 8 characters with an upper-case letter, a lower-case letter, a digit and a symbol"
    );
    let hash = password::hash(password)?;
    let mut conn = pool.get().await.map_err(|e| anyhow::anyhow!("database unavailable: {e}"))?;
    conn.transaction::<bool, anyhow::Error, _>(async move |conn| {
        let inserted: Option<i64> = diesel::insert_into(accounts::table)
            .values((accounts::email.eq(&email), accounts::password_hash.eq(Some(&hash)), accounts::active.eq(true)))
            .on_conflict(accounts::email)
            .do_nothing()
            .returning(accounts::id)
            .get_result(conn)
            .await
            .optional()?;
        let Some(account_id) = inserted else { return Ok(false) };
        let admin_role: i64 = roles::table
            .filter(roles::name.eq("admin"))
            .select(roles::id)
            .first(conn)
            .await
            .optional()?
            .ok_or_else(|| anyhow::anyhow!("role `admin` is missing: run the migrations first"))?;
        diesel::insert_into(account_roles::table)
            .values((account_roles::account_id.eq(account_id), account_roles::role_id.eq(admin_role)))
            .execute(conn)
            .await?;
        Ok(true)
    })
    .await
}

/// What [`ensure_service_client`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceClientOutcome {
    /// The client did not exist and was created; `Some(secret)` when the secret was generated
    /// here (show it once), `None` when the caller gave it.
    Created(Option<String>),
    /// The client exists and matches (given secret verifies, same permissions, active), or it
    /// exists and `if_missing` was asked: nothing was written.
    Unchanged,
    /// The client existed with another secret, other permissions or inactive, and now has
    /// the given secret and permissions; `Some(secret)` when generated here (a rotation).
    Updated(Option<String>),
}

/// Shortest secret [`ensure_service_client`] accepts from the caller.
pub const MIN_GIVEN_CLIENT_SECRET_CHARS: usize = 32;

/// `phoenix create-service-client`, idempotent for deployment jobs (a Kubernetes bootstrap Job
/// runs it on every apply): creates service client `client_id` with `permissions`.
///
/// - `secret` given (the operator's Secret holds it; 32+ characters): an existing client whose
///   stored hash verifies it, with the same permissions and active, is left alone; otherwise
///   it gets this secret and these permissions. Running it twice changes nothing.
/// - no `secret`: a new one is generated and returned — for an existing client that is a
///   rotation (the old secret stops working), unless `if_missing`.
/// - `if_missing`: an existing client is never changed.
pub async fn ensure_service_client(
    pool: &DbPool,
    client_id: &str,
    permissions: &[String],
    secret: Option<&str>,
    if_missing: bool,
) -> anyhow::Result<ServiceClientOutcome> {
    use phoenix_db::schema::auth::service_clients as sc;
    anyhow::ensure!(
        phoenix_auth::validate::is_client_id(client_id),
        "client id {client_id:?} must be 1–64 characters of a-z, 0-9, _ and -"
    );
    if let Some(s) = secret {
        // Never echo a secret, only its length.
        anyhow::ensure!(
            s.chars().count() >= MIN_GIVEN_CLIENT_SECRET_CHARS,
            "the given client secret has {} characters; at least {MIN_GIVEN_CLIENT_SECRET_CHARS} are needed \
             (e.g. `openssl rand -hex 32`)",
            s.chars().count()
        );
    }
    let mut conn = pool.get().await.map_err(|e| anyhow::anyhow!("database unavailable: {e}"))?;
    let existing: Option<(String, Vec<String>, bool)> = sc::table
        .filter(sc::client_id.eq(client_id))
        .select((sc::secret_hash, sc::permissions, sc::active))
        .first(&mut conn)
        .await
        .optional()?;
    drop(conn);
    if let Some((hash, stored_permissions, active)) = &existing {
        if if_missing {
            return Ok(ServiceClientOutcome::Unchanged);
        }
        if let Some(s) = secret {
            let (s, hash) = (s.to_owned(), hash.clone());
            let verifies = tokio::task::spawn_blocking(move || password::verify(&s, &hash)).await?;
            if verifies && *active && stored_permissions.as_slice() == permissions {
                return Ok(ServiceClientOutcome::Unchanged);
            }
        }
    }
    let Some(given) = secret else {
        let generated = phoenix_auth::service_clients::create_or_rotate(pool, client_id, permissions).await?;
        return Ok(match existing {
            None => ServiceClientOutcome::Created(Some(generated)),
            Some(_) => ServiceClientOutcome::Updated(Some(generated)),
        });
    };
    phoenix_auth::service_clients::set_secret(pool, client_id, permissions, given).await?;
    Ok(if existing.is_some() { ServiceClientOutcome::Updated(None) } else { ServiceClientOutcome::Created(None) })
}

/// The dev admin: `PHOENIX_ADMIN_EMAIL` / `PHOENIX_ADMIN_PASSWORD` when set, else
/// `admin@phoenix.local` with a password generated once and kept in `data_dir`.
pub async fn ensure_dev_admin(pool: &DbPool, data_dir: &Path) -> anyhow::Result<Option<AdminCredentials>> {
    let email = std::env::var("PHOENIX_ADMIN_EMAIL").unwrap_or_else(|_| DEV_ADMIN_EMAIL.into());
    let email = normalize_email(&email)?;
    let password = match std::env::var("PHOENIX_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => read_or_generate_password(&data_dir.join("admin-password"))?,
    };
    let created = create_admin(pool, &email, &password).await?;
    Ok(Some(AdminCredentials { email, password, created }))
}

fn read_or_generate_password(path: &Path) -> anyhow::Result<String> {
    if let Ok(saved) = std::fs::read_to_string(path)
        && !saved.trim().is_empty()
    {
        return Ok(saved.trim().to_owned());
    }
    let password = generate_password();
    write_private(path, &password)?;
    Ok(password)
}

/// File in the dev data directory holding the generated `PHOENIX_DEVICE_KEY_SECRET`.
pub const DEVICE_KEY_SECRET_FILE: &str = "device-key-secret";

/// The device-key secret for `phoenix dev`: the configured one, else one generated once and
/// kept in `data_dir` (mode 0600), so reader keys stay valid across restarts.
pub fn ensure_dev_device_key_secret(configured: Option<&Secret>, data_dir: &Path) -> anyhow::Result<Secret> {
    if let Some(secret) = configured {
        return Ok(secret.clone());
    }
    let path = data_dir.join(DEVICE_KEY_SECRET_FILE);
    if let Ok(saved) = std::fs::read_to_string(&path)
        && saved.trim().len() >= phoenix_common::config::MIN_DEVICE_KEY_SECRET_CHARS
    {
        return Ok(Secret::new(saved.trim()));
    }
    use rand::RngExt as _;
    let bytes: [u8; 32] = rand::rng().random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &secret)?;
    Ok(Secret::new(secret))
}

/// Reads the dev device-key secret `phoenix dev` keeps in `data_dir`, if there is one.
pub fn read_dev_device_key_secret(data_dir: &Path) -> Option<Secret> {
    let saved = std::fs::read_to_string(data_dir.join(DEVICE_KEY_SECRET_FILE)).ok()?;
    let saved = saved.trim();
    (saved.len() >= phoenix_common::config::MIN_DEVICE_KEY_SECRET_CHARS).then(|| Secret::new(saved))
}

fn write_private(path: &Path, value: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path)?;
    writeln!(f, "{value}")?;
    Ok(())
}

/// A random password that meets the strength rules (about 107 bits of randomness).
pub fn generate_password() -> String {
    use rand::RngExt as _;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let body: String = (0..18).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    // Fixed classes appended so the strength rules always hold.
    format!("{body}-Px7")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_strong_and_distinct() {
        let a = generate_password();
        assert!(password::is_strong(&a), "{a}");
        assert_ne!(a, generate_password());
    }

    #[test]
    fn dev_device_key_secret_is_generated_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("phoenix-admin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let _ = std::fs::remove_file(dir.join(DEVICE_KEY_SECRET_FILE));
        let first = ensure_dev_device_key_secret(None, &dir).expect("generated");
        assert_eq!(first.expose().len(), 64);
        assert_eq!(ensure_dev_device_key_secret(None, &dir).expect("kept"), first);
        assert_eq!(read_dev_device_key_secret(&dir), Some(first.clone()));
        let configured = Secret::new("c".repeat(40));
        assert_eq!(ensure_dev_device_key_secret(Some(&configured), &dir).expect("configured"), configured);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalize_email("  Admin@School.DE ").expect("valid"), "admin@school.de");
        for bad in ["", "admin", "a@b", "a b@c.de", "@c.de", "a@.de", "a@@c.de"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }
}
