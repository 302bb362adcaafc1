//! One PostgreSQL role per domain (docs/database.md): which role a domain works as, which
//! login reaches it, and the pools that use them.
//!
//! Every domain a process serves gets its own pool whose connections run
//! `SET ROLE phoenix_<domain>` before anything else (with the session bounds of
//! [`crate::db::SessionTimeouts`]). One pool per role rather than `SET ROLE` on checkout: bb8
//! has no checkout hook, a pooled connection must never leak one domain's role into
//! another's handler, and a role's pool is sized and observed on its own
//! (`pg_stat_activity.usename`/`current_user`). A process serving several domains (`phoenix
//! dev`, the tests) holds several pools; a Kubernetes Deployment serves one domain, one pool.
//!
//! The login of a role's pool, first that applies (`DOMAIN` = the domain's name upper-cased,
//! `GATEWAY` for the gateway):
//!
//! 1. `PHOENIX_DATABASE_URL_<DOMAIN>`, as given;
//! 2. `DATABASE_URL` with user `phoenix_<domain>` and password
//!    `PHOENIX_DB_ROLE_PASSWORD_<DOMAIN>` (an operator gave the role `LOGIN` and that password);
//! 3. `DATABASE_URL`'s own login, which must be the role or a member of it (dev and tests log
//!    in as the cluster's superuser; the migration role may be granted every domain role).
//!
//! The role is set in all three cases: `SET ROLE` to oneself is a no-op, and a login that can
//! reach no such role fails at start-up, naming it.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::db::{self, DbPool, PoolOptions};
use crate::domain::Domain;

/// The role of the gateway (reads readers, records them seen; docs/database.md).
pub const GATEWAY_ROLE: &str = "phoenix_gateway";

/// The role every domain role is a member of: what `phoenix_common` itself reads (token
/// verification, settings, the job ledger, access rules).
pub const SERVICE_ROLE: &str = "phoenix_service";

/// The PostgreSQL role `domain` works as: `phoenix_<domain>`.
pub fn role(domain: Domain) -> String {
    format!("phoenix_{}", domain.name())
}

/// Who connects: a role and the suffix of its environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleLogin {
    /// The role every connection sets.
    pub role: String,
    /// The URL its pool connects with.
    pub url: String,
}

/// Where the login of `role` comes from (module doc), with `suffix` naming its variables and
/// `lookup` reading them (the environment in a process; a map in tests).
pub fn resolve(role: &str, suffix: &str, base_url: &str, lookup: impl Fn(&str) -> Option<String>) -> RoleLogin {
    let non_empty = |name: String| lookup(&name).filter(|v| !v.is_empty());
    let url = if let Some(url) = non_empty(format!("PHOENIX_DATABASE_URL_{suffix}")) {
        url
    } else if let Some(password) = non_empty(format!("PHOENIX_DB_ROLE_PASSWORD_{suffix}")) {
        with_login(base_url, role, &password)
    } else {
        base_url.to_owned()
    };
    RoleLogin { role: role.to_owned(), url }
}

/// The login of `domain`'s role in this process.
pub fn domain_login(domain: Domain, base_url: &str) -> RoleLogin {
    resolve(&role(domain), &domain.name().to_ascii_uppercase(), base_url, |n| std::env::var(n).ok())
}

/// The login of the gateway's role in this process.
pub fn gateway_login(base_url: &str) -> RoleLogin {
    resolve(GATEWAY_ROLE, "GATEWAY", base_url, |n| std::env::var(n).ok())
}

/// A pool whose every connection works as `login.role`.
pub async fn connect(login: &RoleLogin, options: PoolOptions) -> anyhow::Result<DbPool> {
    let setup = format!("SET ROLE \"{}\"; {}", login.role, options.session.set_sql());
    db::connect_with_setup(&login.url, options, setup)
        .await
        .map_err(|e| anyhow::anyhow!("database role {}: {e} (docs/database.md)", login.role))
}

/// One pool per domain of `domains`, each working as the domain's role; empty when
/// `PHOENIX_DB_ROLES` is off (every domain then uses the process pool).
pub async fn domain_pools(
    config: &Config,
    base_url: &str,
    domains: &[Domain],
    options: PoolOptions,
) -> anyhow::Result<BTreeMap<Domain, DbPool>> {
    let mut pools = BTreeMap::new();
    if !config.db_roles {
        return Ok(pools);
    }
    for &domain in domains {
        pools.insert(domain, connect(&domain_login(domain, base_url), options).await?);
    }
    Ok(pools)
}

/// Reads of `primary` that tolerate lag ([`crate::db::ReadPool`]): on the replica
/// `PHOENIX_DATABASE_READ_URL` when set — as `domain`'s role when `PHOENIX_DB_ROLES` is on
/// (logging in with `PHOENIX_DB_ROLE_PASSWORD_<DOMAIN>` when set, else as the URL's own
/// login; a physical replica has the primary's roles) — else on `primary` itself.
pub async fn read_pool(
    config: &Config,
    domain: Option<Domain>,
    primary: DbPool,
    options: PoolOptions,
) -> anyhow::Result<db::ReadPool> {
    let Some(read_url) = config.database_read_url.as_deref() else { return Ok(db::ReadPool::primary(primary)) };
    let (url, setup) = match domain.filter(|_| config.db_roles) {
        Some(domain) => {
            let suffix = domain.name().to_ascii_uppercase();
            let env = |n: &str| if n.starts_with("PHOENIX_DATABASE_URL_") { None } else { std::env::var(n).ok() };
            let login = resolve(&role(domain), &suffix, read_url, env);
            let setup = format!("SET ROLE \"{}\"; {}", login.role, options.session.set_sql());
            (login.url, setup)
        }
        None => (read_url.to_owned(), options.session.set_sql()),
    };
    db::ReadPool::with_replica(primary, &url, options, setup, config.database_read_max_lag).await
}

/// The gateway's pool: as `phoenix_gateway` when `PHOENIX_DB_ROLES` is on, else `base_url`
/// as it is.
pub async fn gateway_pool(config: &Config, base_url: &str, options: PoolOptions) -> anyhow::Result<DbPool> {
    if config.db_roles {
        connect(&gateway_login(base_url), options).await
    } else {
        db::connect(base_url, options).await
    }
}

/// `url` logging in as `user` with `password` (percent-encoded), host, port, database and
/// parameters kept.
pub fn with_login(url: &str, user: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host_part = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}://{}:{}@{host_part}", encode(user), encode(password))
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_login_replaces_only_the_user_and_password() {
        assert_eq!(
            with_login("postgres://u:p@h:5/db?x=1", "phoenix_auth", "s3/cr@t"),
            "postgres://phoenix_auth:s3%2Fcr%40t@h:5/db?x=1"
        );
        assert_eq!(with_login("postgres://h/db", "phoenix_iot", "pw"), "postgres://phoenix_iot:pw@h/db");
    }

    #[test]
    fn a_role_url_wins_over_a_password_which_wins_over_the_base_login() {
        let base = "postgres://owner:o@db:5432/phoenix";
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
        };
        let both = vars(&[
            ("PHOENIX_DATABASE_URL_USERS", "postgres://phoenix_users:x@other/phoenix"),
            ("PHOENIX_DB_ROLE_PASSWORD_USERS", "y"),
        ]);
        assert_eq!(resolve("phoenix_users", "USERS", base, both).url, "postgres://phoenix_users:x@other/phoenix");
        let password = vars(&[("PHOENIX_DB_ROLE_PASSWORD_USERS", "y")]);
        assert_eq!(resolve("phoenix_users", "USERS", base, password).url, "postgres://phoenix_users:y@db:5432/phoenix");
        let login = resolve("phoenix_users", "USERS", base, vars(&[]));
        assert_eq!(login, RoleLogin { role: "phoenix_users".into(), url: base.into() });
        assert_eq!(role(Domain::Active), "phoenix_active");
    }
}
