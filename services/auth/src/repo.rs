//! diesel queries over `auth.*`, plus the `audit.auth_events` rows that go with them (in
//! the caller's transaction). No proto types here.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_db::schema::audit::auth_events;
use phoenix_db::schema::auth::{
    account_permissions, account_roles, accounts, invitations, outbox, password_reset_tokens, permissions,
    role_permissions, roles, service_clients, signing_keys, tokens,
};
use phoenix_db::schema::users;

/// An account as login and who-am-i need it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accounts, check_for_backend(diesel::pg::Pg))]
pub struct AccountRow {
    /// Id.
    pub id: i64,
    /// Normalised email.
    pub email: String,
    /// Optional login name.
    pub username: Option<String>,
    /// May log in.
    pub active: bool,
    /// argon2id PHC string; `None` until a password is set.
    pub password_hash: Option<String>,
    /// Consecutive failed logins.
    pub failed_login_attempts: i32,
    /// Locked until then.
    pub login_locked_until: Option<DateTime<Utc>>,
    /// Last successful login.
    pub last_login: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A refresh-token row (the hash itself is the lookup key and not needed afterwards).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tokens, check_for_backend(diesel::pg::Pg))]
pub struct TokenRow {
    /// Id.
    pub id: i64,
    /// Owner.
    pub account_id: i64,
    /// Family: every token descended from one login.
    pub family_id: uuid::Uuid,
    /// 0 for the login's token, +1 per rotation.
    pub generation: i32,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Set when rotated (used).
    pub used_at: Option<DateTime<Utc>>,
    /// Set when revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A public signing key.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys, check_for_backend(diesel::pg::Pg))]
pub struct SigningKeyRow {
    /// Key id.
    pub kid: String,
    /// `EdDSA`.
    pub algorithm: String,
    /// Raw public key.
    pub public_key: Vec<u8>,
    /// Valid from.
    pub not_before: DateTime<Utc>,
    /// Verifies until.
    pub retire_after: Option<DateTime<Utc>>,
}

/// A service client.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = service_clients, check_for_backend(diesel::pg::Pg))]
pub struct ServiceClientRow {
    /// Client id.
    pub client_id: String,
    /// argon2id hash of the secret.
    pub secret_hash: String,
    /// Permissions its tokens carry.
    pub permissions: Vec<String>,
    /// May exchange credentials.
    pub active: bool,
}

/// One `audit.auth_events` row. Holds ids and hashes only, never an email or a token.
#[derive(Debug, Clone)]
pub struct AuthEvent {
    /// The account, when known.
    pub account_id: Option<i64>,
    /// HMAC-SHA256 of the normalised email, for attempts on unknown emails.
    pub email_hash: Option<[u8; 32]>,
    /// The service client, for client-credentials exchanges.
    pub client_id: Option<String>,
    /// One of the types `ck_audit_auth_events_event_type` allows.
    pub event_type: &'static str,
    /// Whether it succeeded.
    pub success: bool,
    /// Client address.
    pub ip: Option<IpAddr>,
    /// Client user agent (truncated).
    pub user_agent: Option<String>,
    /// Why it failed.
    pub error_message: Option<&'static str>,
    /// Extra facts (family id, counts).
    pub metadata: serde_json::Value,
}

/// Why a family was revoked (`ck_auth_tokens_revoked_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The owner logged out.
    Logout,
    /// A used refresh token came back.
    ReuseDetected,
    /// The password was changed.
    PasswordChanged,
    /// The account was deactivated.
    AccountDeactivated,
    /// The password was reset with a one-time token.
    PasswordReset,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::ReuseDetected => "reuse_detected",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::AccountDeactivated => "account_deactivated",
            RevokeReason::PasswordReset => "password_reset",
        }
    }
}

/// Writes an auth event.
pub async fn insert_auth_event(conn: &mut AsyncPgConnection, e: AuthEvent) -> Result<()> {
    diesel::insert_into(auth_events::table)
        .values((
            auth_events::account_id.eq(e.account_id),
            auth_events::email_hash.eq(e.email_hash.map(|h| h.to_vec())),
            auth_events::client_id.eq(e.client_id),
            auth_events::event_type.eq(e.event_type),
            auth_events::success.eq(e.success),
            auth_events::ip_address.eq(e.ip.map(ipnetwork::IpNetwork::from)),
            auth_events::user_agent.eq(e.user_agent),
            auth_events::error_message.eq(e.error_message),
            auth_events::metadata.eq(e.metadata),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The account with this normalised email.
pub async fn find_account_by_email(conn: &mut AsyncPgConnection, email: &str) -> Result<Option<AccountRow>> {
    Ok(accounts::table
        .filter(accounts::email.eq(email))
        .select(AccountRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The account with this id.
pub async fn find_account(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<AccountRow>> {
    Ok(accounts::table.find(id).select(AccountRow::as_select()).first(conn).await.optional()?)
}

/// Counts a failed login; at `threshold` consecutive failures locks the account until
/// `now + lock_for` and returns that time.
pub async fn record_login_failure(
    conn: &mut AsyncPgConnection,
    id: i64,
    threshold: u32,
    lock_for: chrono::Duration,
) -> Result<Option<DateTime<Utc>>> {
    let attempts: i32 = diesel::update(accounts::table.find(id))
        .set(accounts::failed_login_attempts.eq(accounts::failed_login_attempts + 1))
        .returning(accounts::failed_login_attempts)
        .get_result(conn)
        .await?;
    if attempts < threshold as i32 {
        return Ok(None);
    }
    let until = Utc::now() + lock_for;
    diesel::update(accounts::table.find(id))
        .set((accounts::failed_login_attempts.eq(0), accounts::login_locked_until.eq(Some(until))))
        .execute(conn)
        .await?;
    Ok(Some(until))
}

/// Clears failure counters and lock, stamps `last_login`.
pub async fn record_login_success(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::update(accounts::table.find(id))
        .set((
            accounts::failed_login_attempts.eq(0),
            accounts::login_locked_until.eq(None::<DateTime<Utc>>),
            accounts::last_login.eq(Some(Utc::now())),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a new password hash.
pub async fn set_password_hash(conn: &mut AsyncPgConnection, id: i64, hash: &str) -> Result<()> {
    diesel::update(accounts::table.find(id)).set(accounts::password_hash.eq(Some(hash))).execute(conn).await?;
    Ok(())
}

/// Inserts a refresh token.
pub async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    account_id: i64,
    hash: &[u8; 32],
    family_id: uuid::Uuid,
    generation: i32,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    diesel::insert_into(tokens::table)
        .values((
            tokens::account_id.eq(account_id),
            tokens::token_hash.eq(hash.to_vec()),
            tokens::family_id.eq(family_id),
            tokens::generation.eq(generation),
            tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The token with this hash, locked for the rest of the transaction (concurrent
/// rotations of one token serialise here; the loser sees it used).
pub async fn find_token_for_update(conn: &mut AsyncPgConnection, hash: &[u8; 32]) -> Result<Option<TokenRow>> {
    Ok(tokens::table
        .filter(tokens::token_hash.eq(hash.to_vec()))
        .select(TokenRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Marks a token used (rotated).
pub async fn mark_token_used(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::update(tokens::table.find(id)).set(tokens::used_at.eq(Some(Utc::now()))).execute(conn).await?;
    Ok(())
}

/// Revokes every live token of a family; returns how many.
pub async fn revoke_family(conn: &mut AsyncPgConnection, family: uuid::Uuid, reason: RevokeReason) -> Result<usize> {
    Ok(diesel::update(tokens::table.filter(tokens::family_id.eq(family)).filter(tokens::revoked_at.is_null()))
        .set((tokens::revoked_at.eq(Some(Utc::now())), tokens::revoked_reason.eq(Some(reason.as_str()))))
        .execute(conn)
        .await?)
}

/// Revokes every live token of an account except those of family `keep`; returns how
/// many families were ended.
pub async fn revoke_account_families(
    conn: &mut AsyncPgConnection,
    account_id: i64,
    keep: Option<uuid::Uuid>,
    reason: RevokeReason,
) -> Result<usize> {
    let mut query = diesel::update(tokens::table)
        .filter(tokens::account_id.eq(account_id))
        .filter(tokens::revoked_at.is_null())
        .into_boxed();
    if let Some(keep) = keep {
        query = query.filter(tokens::family_id.ne(keep));
    }
    let families: Vec<uuid::Uuid> = query
        .set((tokens::revoked_at.eq(Some(Utc::now())), tokens::revoked_reason.eq(Some(reason.as_str()))))
        .returning(tokens::family_id)
        .get_results(conn)
        .await?;
    let mut families = families;
    families.sort();
    families.dedup();
    Ok(families.len())
}

/// Role names of an account, sorted.
pub async fn role_names(conn: &mut AsyncPgConnection, account_id: i64) -> Result<Vec<String>> {
    Ok(account_roles::table
        .inner_join(roles::table)
        .filter(account_roles::account_id.eq(account_id))
        .select(roles::name)
        .order(roles::name)
        .load(conn)
        .await?)
}

/// Effective permissions of an account (role permissions + direct grants − direct denies,
/// a deny winning; see [`phoenix_common::authz::effective_permissions`]).
pub async fn effective_permissions(conn: &mut AsyncPgConnection, account_id: i64) -> Result<Vec<String>> {
    let from_roles: Vec<String> = account_roles::table
        .inner_join(role_permissions::table.on(role_permissions::role_id.eq(account_roles::role_id)))
        .inner_join(permissions::table.on(permissions::id.eq(role_permissions::permission_id)))
        .filter(account_roles::account_id.eq(account_id))
        .select(permissions::name)
        .load(conn)
        .await?;
    let direct: Vec<(String, bool)> = account_permissions::table
        .inner_join(permissions::table)
        .filter(account_permissions::account_id.eq(account_id))
        .select((permissions::name, account_permissions::granted))
        .load(conn)
        .await?;
    let grants: Vec<String> = direct.iter().filter(|(_, g)| *g).map(|(n, _)| n.clone()).collect();
    let denies: Vec<String> = direct.iter().filter(|(_, g)| !*g).map(|(n, _)| n.clone()).collect();
    // The catalogue is only needed to expand a wildcard around a deny.
    let catalogue: Vec<String> =
        if denies.is_empty() { Vec::new() } else { permissions::table.select(permissions::name).load(conn).await? };
    Ok(phoenix_common::authz::effective_permissions(&from_roles, &grants, &denies, &catalogue))
}

/// Person, staff, teacher and guardian records linked to an account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkedIds {
    /// `users.persons.id`.
    pub person_id: Option<i64>,
    /// `users.staff.id`.
    pub staff_id: Option<i64>,
    /// `users.teachers.id`.
    pub teacher_id: Option<i64>,
    /// `users.guardians.id`.
    pub guardian_id: Option<i64>,
}

/// Reads the records linked to an account (cross-schema reads of `users.*`).
pub async fn linked_ids(conn: &mut AsyncPgConnection, account_id: i64) -> Result<LinkedIds> {
    let person_id: Option<i64> = users::persons::table
        .filter(users::persons::account_id.eq(account_id))
        .select(users::persons::id)
        .first(conn)
        .await
        .optional()?;
    let staff_id: Option<i64> = match person_id {
        Some(p) => users::staff::table
            .filter(users::staff::person_id.eq(p))
            .select(users::staff::id)
            .first(conn)
            .await
            .optional()?,
        None => None,
    };
    let teacher_id: Option<i64> = match staff_id {
        Some(s) => users::teachers::table
            .filter(users::teachers::staff_id.eq(s))
            .select(users::teachers::id)
            .first(conn)
            .await
            .optional()?,
        None => None,
    };
    let guardian_id: Option<i64> = users::guardians::table
        .filter(users::guardians::account_id.eq(account_id))
        .select(users::guardians::id)
        .first(conn)
        .await
        .optional()?;
    Ok(LinkedIds { person_id, staff_id, teacher_id, guardian_id })
}

/// Keys that still verify tokens, newest first.
pub async fn verifying_keys(conn: &mut AsyncPgConnection) -> Result<Vec<SigningKeyRow>> {
    Ok(signing_keys::table
        .filter(signing_keys::retire_after.is_null().or(signing_keys::retire_after.gt(Utc::now())))
        .order(signing_keys::created_at.desc())
        .select(SigningKeyRow::as_select())
        .load(conn)
        .await?)
}

/// The service client with this id.
pub async fn find_service_client(conn: &mut AsyncPgConnection, client_id: &str) -> Result<Option<ServiceClientRow>> {
    Ok(service_clients::table
        .filter(service_clients::client_id.eq(client_id))
        .select(ServiceClientRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

// --- account administration -----------------------------------------------------------------

/// Filters of `ListAccounts` (validated).
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    /// Lower-case substring of the email.
    pub email_contains: Option<String>,
    /// Active or not.
    pub active: Option<bool>,
    /// Holds this role.
    pub role_name: Option<String>,
}

type AccountsQuery<'a> = accounts::BoxedQuery<'a, diesel::pg::Pg>;

fn filtered(f: &AccountFilter) -> AccountsQuery<'_> {
    let mut q = accounts::table.into_boxed();
    if let Some(text) = &f.email_contains {
        // Escape LIKE's wildcards: the filter is literal text.
        let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        q = q.filter(accounts::email.like(format!("%{escaped}%")));
    }
    if let Some(active) = f.active {
        q = q.filter(accounts::active.eq(active));
    }
    if let Some(role) = &f.role_name {
        q = q.filter(
            accounts::id.eq_any(
                account_roles::table
                    .inner_join(roles::table)
                    .filter(roles::name.eq(role))
                    .select(account_roles::account_id),
            ),
        );
    }
    q
}

/// One page of accounts (ids greater than `after`, ascending) and the total matching.
pub async fn list_accounts(
    conn: &mut AsyncPgConnection,
    filter: &AccountFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<AccountRow>, i64)> {
    let total: i64 = filtered(filter).count().get_result(conn).await?;
    let mut q = filtered(filter);
    if let Some(after) = after {
        q = q.filter(accounts::id.gt(after));
    }
    let rows = q.order(accounts::id).limit(limit).select(AccountRow::as_select()).load(conn).await?;
    Ok((rows, total))
}

/// Role names of each of `ids`, sorted per account.
pub async fn roles_of_accounts(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<String>>> {
    let pairs: Vec<(i64, String)> = account_roles::table
        .inner_join(roles::table)
        .filter(account_roles::account_id.eq_any(ids))
        .select((account_roles::account_id, roles::name))
        .order((account_roles::account_id, roles::name))
        .load(conn)
        .await?;
    let mut out: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
    for (id, name) in pairs {
        out.entry(id).or_default().push(name);
    }
    Ok(out)
}

/// Maps a unique violation on `auth.accounts` to a message naming the taken field.
fn account_conflict(e: diesel::result::Error) -> phoenix_common::Error {
    use diesel::result::{DatabaseErrorKind, Error as D};
    match &e {
        D::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => match info.constraint_name() {
            Some("uq_auth_accounts_email") => {
                phoenix_common::Error::AlreadyExists("an account with this email already exists".into())
            }
            Some("uq_auth_accounts_username") => {
                phoenix_common::Error::AlreadyExists("an account with this username already exists".into())
            }
            _ => e.into(),
        },
        _ => e.into(),
    }
}

/// Inserts an account; `AlreadyExists` for a taken email or username.
pub async fn insert_account(
    conn: &mut AsyncPgConnection,
    email: &str,
    username: Option<&str>,
    password_hash: Option<&str>,
) -> Result<i64> {
    diesel::insert_into(accounts::table)
        .values((
            accounts::email.eq(email),
            accounts::username.eq(username),
            accounts::password_hash.eq(password_hash),
            accounts::active.eq(true),
        ))
        .returning(accounts::id)
        .get_result(conn)
        .await
        .map_err(account_conflict)
}

/// Writes email and/or username (`Some(None)` clears the username); `false` if no such account.
pub async fn update_account(
    conn: &mut AsyncPgConnection,
    id: i64,
    email: Option<&str>,
    username: Option<Option<&str>>,
) -> Result<bool> {
    #[derive(AsChangeset)]
    #[diesel(table_name = accounts)]
    struct Changes<'a> {
        email: Option<&'a str>,
        username: Option<Option<&'a str>>,
    }
    if email.is_none() && username.is_none() {
        return Ok(find_account(conn, id).await?.is_some());
    }
    let n = diesel::update(accounts::table.find(id))
        .set(Changes { email, username })
        .execute(conn)
        .await
        .map_err(account_conflict)?;
    Ok(n == 1)
}

/// Switches an account on (also lifting a lockout) or off; `false` if no such account.
pub async fn set_active(conn: &mut AsyncPgConnection, id: i64, active: bool) -> Result<bool> {
    let n = if active {
        diesel::update(accounts::table.find(id))
            .set((
                accounts::active.eq(true),
                accounts::failed_login_attempts.eq(0),
                accounts::login_locked_until.eq(None::<DateTime<Utc>>),
            ))
            .execute(conn)
            .await?
    } else {
        diesel::update(accounts::table.find(id)).set(accounts::active.eq(false)).execute(conn).await?
    };
    Ok(n == 1)
}

/// The id of the role with this name.
pub async fn role_id(conn: &mut AsyncPgConnection, name: &str) -> Result<Option<i64>> {
    Ok(roles::table.filter(roles::name.eq(name)).select(roles::id).first(conn).await.optional()?)
}

/// Gives an account a role (no-op if it has it).
pub async fn add_account_role(conn: &mut AsyncPgConnection, account_id: i64, role_id: i64) -> Result<()> {
    diesel::insert_into(account_roles::table)
        .values((account_roles::account_id.eq(account_id), account_roles::role_id.eq(role_id)))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes a role from an account (no-op if it lacks it).
pub async fn remove_account_role(conn: &mut AsyncPgConnection, account_id: i64, role_id: i64) -> Result<()> {
    diesel::delete(
        account_roles::table
            .filter(account_roles::account_id.eq(account_id))
            .filter(account_roles::role_id.eq(role_id)),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The id of the permission `resource:action`.
pub async fn permission_id(conn: &mut AsyncPgConnection, name: &str) -> Result<Option<i64>> {
    Ok(permissions::table.filter(permissions::name.eq(name)).select(permissions::id).first(conn).await.optional()?)
}

/// Sets a direct grant (`granted`) or deny (`!granted`), replacing an earlier one.
pub async fn set_direct_permission(
    conn: &mut AsyncPgConnection,
    account_id: i64,
    permission_id: i64,
    granted: bool,
) -> Result<()> {
    diesel::insert_into(account_permissions::table)
        .values((
            account_permissions::account_id.eq(account_id),
            account_permissions::permission_id.eq(permission_id),
            account_permissions::granted.eq(granted),
        ))
        .on_conflict((account_permissions::account_id, account_permissions::permission_id))
        .do_update()
        .set(account_permissions::granted.eq(granted))
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes a direct grant or deny.
pub async fn remove_direct_permission(conn: &mut AsyncPgConnection, account_id: i64, permission_id: i64) -> Result<()> {
    diesel::delete(
        account_permissions::table
            .filter(account_permissions::account_id.eq(account_id))
            .filter(account_permissions::permission_id.eq(permission_id)),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Direct grants and denies of an account, each sorted.
pub async fn direct_permissions(conn: &mut AsyncPgConnection, account_id: i64) -> Result<(Vec<String>, Vec<String>)> {
    let rows: Vec<(String, bool)> = account_permissions::table
        .inner_join(permissions::table)
        .filter(account_permissions::account_id.eq(account_id))
        .select((permissions::name, account_permissions::granted))
        .order(permissions::name)
        .load(conn)
        .await?;
    let granted = rows.iter().filter(|(_, g)| *g).map(|(n, _)| n.clone()).collect();
    let denied = rows.iter().filter(|(_, g)| !*g).map(|(n, _)| n.clone()).collect();
    Ok((granted, denied))
}

// --- roles and the permission catalogue ----------------------------------------------------

/// A role row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = roles, check_for_backend(diesel::pg::Pg))]
pub struct RoleRow {
    /// Id.
    pub id: i64,
    /// Unique lower-case name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Seeded: not deletable or renamable.
    pub is_system: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A catalogue permission row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = permissions, check_for_backend(diesel::pg::Pg))]
pub struct PermissionRow {
    /// Id.
    pub id: i64,
    /// `resource:action`.
    pub name: String,
    /// Resource part.
    pub resource: String,
    /// Action part.
    pub action: String,
    /// Description.
    pub description: Option<String>,
    /// Seeded: not deletable.
    pub is_system: bool,
}

fn unique_as(e: diesel::result::Error, constraint: &str, message: String) -> phoenix_common::Error {
    use diesel::result::{DatabaseErrorKind, Error as D};
    match &e {
        D::DatabaseError(DatabaseErrorKind::UniqueViolation, info) if info.constraint_name() == Some(constraint) => {
            phoenix_common::Error::AlreadyExists(message)
        }
        _ => e.into(),
    }
}

/// The role with this id.
pub async fn find_role(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<RoleRow>> {
    Ok(roles::table.find(id).select(RoleRow::as_select()).first(conn).await.optional()?)
}

/// Permission names of each of `role_ids`, sorted per role.
pub async fn permissions_of_roles(
    conn: &mut AsyncPgConnection,
    role_ids: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<String>>> {
    let pairs: Vec<(i64, String)> = role_permissions::table
        .inner_join(permissions::table)
        .filter(role_permissions::role_id.eq_any(role_ids))
        .select((role_permissions::role_id, permissions::name))
        .order((role_permissions::role_id, permissions::name))
        .load(conn)
        .await?;
    let mut out: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
    for (id, name) in pairs {
        out.entry(id).or_default().push(name);
    }
    Ok(out)
}

/// One page of roles by id, and the total.
pub async fn list_roles(conn: &mut AsyncPgConnection, after: Option<i64>, limit: i64) -> Result<(Vec<RoleRow>, i64)> {
    let total: i64 = roles::table.count().get_result(conn).await?;
    let rows = roles::table
        .filter(roles::id.gt(after.unwrap_or(0)))
        .order(roles::id)
        .limit(limit)
        .select(RoleRow::as_select())
        .load(conn)
        .await?;
    Ok((rows, total))
}

/// Inserts a (non-system) role; `AlreadyExists` for a taken name.
pub async fn insert_role(conn: &mut AsyncPgConnection, name: &str, description: Option<&str>) -> Result<i64> {
    diesel::insert_into(roles::table)
        .values((roles::name.eq(name), roles::description.eq(description), roles::is_system.eq(false)))
        .returning(roles::id)
        .get_result(conn)
        .await
        .map_err(|e| unique_as(e, "uq_auth_roles_name", format!("a role named {name:?} already exists")))
}

/// Writes name and/or description (`Some(None)` clears the description).
pub async fn update_role(
    conn: &mut AsyncPgConnection,
    id: i64,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> Result<()> {
    #[derive(AsChangeset)]
    #[diesel(table_name = roles)]
    struct Changes<'a> {
        name: Option<&'a str>,
        description: Option<Option<&'a str>>,
    }
    if name.is_none() && description.is_none() {
        return Ok(());
    }
    diesel::update(roles::table.find(id)).set(Changes { name, description }).execute(conn).await.map_err(|e| {
        unique_as(e, "uq_auth_roles_name", format!("a role named {:?} already exists", name.unwrap_or("")))
    })?;
    Ok(())
}

/// Deletes a role (its grants and assignments cascade).
pub async fn delete_role(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::delete(roles::table.find(id)).execute(conn).await?;
    Ok(())
}

/// Adds a permission to a role (no-op if present).
pub async fn add_role_permission(conn: &mut AsyncPgConnection, role_id: i64, permission_id: i64) -> Result<()> {
    diesel::insert_into(role_permissions::table)
        .values((role_permissions::role_id.eq(role_id), role_permissions::permission_id.eq(permission_id)))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes a permission from a role (no-op if absent).
pub async fn remove_role_permission(conn: &mut AsyncPgConnection, role_id: i64, permission_id: i64) -> Result<()> {
    diesel::delete(
        role_permissions::table
            .filter(role_permissions::role_id.eq(role_id))
            .filter(role_permissions::permission_id.eq(permission_id)),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts a (non-system) permission; `AlreadyExists` when `resource:action` is taken.
pub async fn insert_permission(
    conn: &mut AsyncPgConnection,
    resource: &str,
    action: &str,
    description: Option<&str>,
) -> Result<PermissionRow> {
    let name = format!("{resource}:{action}");
    diesel::insert_into(permissions::table)
        .values((
            permissions::name.eq(&name),
            permissions::resource.eq(resource),
            permissions::action.eq(action),
            permissions::description.eq(description),
            permissions::is_system.eq(false),
        ))
        .returning(PermissionRow::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                phoenix_common::Error::AlreadyExists(format!("permission {name:?} already exists"))
            }
            other => other.into(),
        })
}

/// One page of the catalogue by id (optionally one resource's), and the total.
pub async fn list_permissions(
    conn: &mut AsyncPgConnection,
    resource: Option<&str>,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<PermissionRow>, i64)> {
    let filtered = || {
        let mut q = permissions::table.into_boxed();
        if let Some(r) = resource {
            q = q.filter(permissions::resource.eq(r));
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn).await?;
    let rows = filtered()
        .filter(permissions::id.gt(after.unwrap_or(0)))
        .order(permissions::id)
        .limit(limit)
        .select(PermissionRow::as_select())
        .load(conn)
        .await?;
    Ok((rows, total))
}

/// The permission with this id.
pub async fn find_permission(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<PermissionRow>> {
    Ok(permissions::table.find(id).select(PermissionRow::as_select()).first(conn).await.optional()?)
}

/// Deletes a permission (role grants and direct entries cascade).
pub async fn delete_permission(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::delete(permissions::table.find(id)).execute(conn).await?;
    Ok(())
}

// --- password reset and the outbox ---------------------------------------------------------

/// Counts a password-reset request of the email with HMAC `email_hash` in its fixed window
/// (started by the first request, restarted once `window` has passed). Returns the number
/// of requests in the current window and when the window started.
pub async fn count_reset_request(
    conn: &mut AsyncPgConnection,
    email_hash: &[u8; 32],
    window: chrono::Duration,
) -> Result<(i32, DateTime<Utc>)> {
    #[derive(QueryableByName)]
    struct Counted {
        #[diesel(sql_type = diesel::sql_types::Int4)]
        attempts: i32,
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        window_start: DateTime<Utc>,
    }
    let window_start = Utc::now() - window;
    let row: Counted = diesel::sql_query(
        "INSERT INTO auth.password_reset_rate_limits AS rl (email_hash, attempts, window_start) \
         VALUES ($1, 1, now()) \
         ON CONFLICT (email_hash) DO UPDATE SET \
           attempts = CASE WHEN rl.window_start <= $2 THEN 1 ELSE rl.attempts + 1 END, \
           window_start = CASE WHEN rl.window_start <= $2 THEN now() ELSE rl.window_start END \
         RETURNING attempts, window_start",
    )
    .bind::<diesel::sql_types::Bytea, _>(email_hash.to_vec())
    .bind::<diesel::sql_types::Timestamptz, _>(window_start)
    .get_result(conn)
    .await?;
    Ok((row.attempts, row.window_start))
}

/// Marks every live reset token of an account used (a new request supersedes them; the
/// partial unique index allows one live token per account).
pub async fn supersede_reset_tokens(conn: &mut AsyncPgConnection, account_id: i64) -> Result<usize> {
    Ok(diesel::update(
        password_reset_tokens::table
            .filter(password_reset_tokens::account_id.eq(account_id))
            .filter(password_reset_tokens::used_at.is_null()),
    )
    .set(password_reset_tokens::used_at.eq(Some(Utc::now())))
    .execute(conn)
    .await?)
}

/// Stores a reset token by its SHA-256; returns its id.
pub async fn insert_reset_token(
    conn: &mut AsyncPgConnection,
    account_id: i64,
    hash: &[u8; 32],
    expires_at: DateTime<Utc>,
) -> Result<i64> {
    Ok(diesel::insert_into(password_reset_tokens::table)
        .values((
            password_reset_tokens::account_id.eq(account_id),
            password_reset_tokens::token_hash.eq(hash.to_vec()),
            password_reset_tokens::expires_at.eq(expires_at),
        ))
        .returning(password_reset_tokens::id)
        .get_result(conn)
        .await?)
}

/// A reset-token row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = password_reset_tokens, check_for_backend(diesel::pg::Pg))]
pub struct ResetTokenRow {
    /// Id.
    pub id: i64,
    /// The account whose password it resets.
    pub account_id: i64,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Set once used or superseded.
    pub used_at: Option<DateTime<Utc>>,
}

/// The reset token with this hash, locked for the rest of the transaction (two confirms
/// of one token serialise here; the second sees it used).
pub async fn find_reset_token_for_update(
    conn: &mut AsyncPgConnection,
    hash: &[u8; 32],
) -> Result<Option<ResetTokenRow>> {
    Ok(password_reset_tokens::table
        .filter(password_reset_tokens::token_hash.eq(hash.to_vec()))
        .select(ResetTokenRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Marks a reset token used.
pub async fn mark_reset_token_used(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::update(password_reset_tokens::table.find(id))
        .set(password_reset_tokens::used_at.eq(Some(Utc::now())))
        .execute(conn)
        .await?;
    Ok(())
}

/// Who an outbox message goes to (by id; the address is looked up at delivery).
#[derive(Debug, Clone, Copy)]
pub enum Recipient {
    /// An account (password reset).
    Account(i64),
    /// The email of an invitation.
    Invitation(i64),
}

/// Queues a message for the mail sender; returns its id. `payload` carries the one-time
/// token and is cleared by the sender after delivery.
pub async fn enqueue_message(
    conn: &mut AsyncPgConnection,
    kind: &'static str,
    recipient: Recipient,
    payload: serde_json::Value,
) -> Result<i64> {
    let (account_id, invitation_id) = match recipient {
        Recipient::Account(id) => (Some(id), None),
        Recipient::Invitation(id) => (None, Some(id)),
    };
    Ok(diesel::insert_into(outbox::table)
        .values((
            outbox::kind.eq(kind),
            outbox::account_id.eq(account_id),
            outbox::invitation_id.eq(invitation_id),
            outbox::payload.eq(payload),
        ))
        .returning(outbox::id)
        .get_result(conn)
        .await?)
}

// --- staff invitations ---------------------------------------------------------------------

/// An invitation with its role's name.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = invitations, check_for_backend(diesel::pg::Pg))]
pub struct InvitationRow {
    /// Id.
    pub id: i64,
    /// Invited email.
    pub email: String,
    /// Role granted on acceptance.
    pub role_id: i64,
    /// Suggested first name.
    pub first_name: Option<String>,
    /// Suggested last name.
    pub last_name: Option<String>,
    /// Position (becomes `users.teachers.role`).
    pub position: Option<String>,
    /// Expiry of the current token.
    pub expires_at: DateTime<Utc>,
    /// Set once accepted or revoked.
    pub used_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// Fields of a new invitation.
#[derive(Debug, Clone)]
pub struct NewInvitation<'a> {
    /// Normalised email.
    pub email: &'a str,
    /// Role id.
    pub role_id: i64,
    /// The inviting account.
    pub created_by: Option<i64>,
    /// Suggested first name.
    pub first_name: Option<&'a str>,
    /// Suggested last name.
    pub last_name: Option<&'a str>,
    /// Position.
    pub position: Option<&'a str>,
    /// SHA-256 of the token.
    pub token_hash: &'a [u8; 32],
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// Marks the pending invitations of an email used (a new one replaces them; the partial
/// unique index allows one pending invitation per email).
pub async fn supersede_invitations(conn: &mut AsyncPgConnection, email: &str) -> Result<usize> {
    Ok(diesel::update(invitations::table.filter(invitations::email.eq(email)).filter(invitations::used_at.is_null()))
        .set(invitations::used_at.eq(Some(Utc::now())))
        .execute(conn)
        .await?)
}

/// Inserts an invitation.
pub async fn insert_invitation(conn: &mut AsyncPgConnection, new: NewInvitation<'_>) -> Result<InvitationRow> {
    Ok(diesel::insert_into(invitations::table)
        .values((
            invitations::email.eq(new.email),
            invitations::role_id.eq(new.role_id),
            invitations::created_by.eq(new.created_by),
            invitations::first_name.eq(new.first_name),
            invitations::last_name.eq(new.last_name),
            invitations::position.eq(new.position),
            invitations::token_hash.eq(new.token_hash.to_vec()),
            invitations::expires_at.eq(new.expires_at),
        ))
        .returning(InvitationRow::as_returning())
        .get_result(conn)
        .await?)
}

/// The invitation with this id, locked for the transaction.
pub async fn find_invitation_for_update(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<InvitationRow>> {
    Ok(invitations::table.find(id).select(InvitationRow::as_select()).for_update().first(conn).await.optional()?)
}

/// The invitation whose token has this hash, locked for the transaction (outside one, a
/// plain read).
pub async fn find_invitation_by_token(conn: &mut AsyncPgConnection, hash: &[u8; 32]) -> Result<Option<InvitationRow>> {
    Ok(invitations::table
        .filter(invitations::token_hash.eq(hash.to_vec()))
        .select(InvitationRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Gives an invitation a new token and expiry.
pub async fn renew_invitation(
    conn: &mut AsyncPgConnection,
    id: i64,
    hash: &[u8; 32],
    expires_at: DateTime<Utc>,
) -> Result<InvitationRow> {
    Ok(diesel::update(invitations::table.find(id))
        .set((invitations::token_hash.eq(hash.to_vec()), invitations::expires_at.eq(expires_at)))
        .returning(InvitationRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Marks an invitation used (accepted or revoked).
pub async fn use_invitation(conn: &mut AsyncPgConnection, id: i64) -> Result<()> {
    diesel::update(invitations::table.find(id)).set(invitations::used_at.eq(Some(Utc::now()))).execute(conn).await?;
    Ok(())
}

/// One page of pending invitations (not used, not expired) by id, and their total.
pub async fn list_pending_invitations(
    conn: &mut AsyncPgConnection,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<InvitationRow>, i64)> {
    let now = Utc::now();
    let pending = || invitations::table.filter(invitations::used_at.is_null()).filter(invitations::expires_at.gt(now));
    let total: i64 = pending().count().get_result(conn).await?;
    let rows = pending()
        .filter(invitations::id.gt(after.unwrap_or(0)))
        .order(invitations::id)
        .limit(limit)
        .select(InvitationRow::as_select())
        .load(conn)
        .await?;
    Ok((rows, total))
}

/// Role names by id.
pub async fn role_names_by_id(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, String>> {
    let rows: Vec<(i64, String)> =
        roles::table.filter(roles::id.eq_any(ids)).select((roles::id, roles::name)).load(conn).await?;
    Ok(rows.into_iter().collect())
}

/// Ids of the records an accepted invitation creates.
#[derive(Debug, Clone, Copy)]
pub struct StaffIds {
    /// `users.persons.id`.
    pub person_id: i64,
    /// `users.staff.id`.
    pub staff_id: i64,
}

/// Creates the person linked to `account_id`, its staff record and, with a position, its
/// teacher record (`teachers.role` = position). Cross-schema write: acceptance must create
/// account and person atomically (issue #3), so it happens in the caller's transaction.
pub async fn insert_staff_person(
    conn: &mut AsyncPgConnection,
    account_id: i64,
    first_name: &str,
    last_name: &str,
    position: Option<&str>,
) -> Result<StaffIds> {
    let person_id: i64 = diesel::insert_into(users::persons::table)
        .values((
            users::persons::first_name.eq(first_name),
            users::persons::last_name.eq(last_name),
            users::persons::account_id.eq(Some(account_id)),
        ))
        .returning(users::persons::id)
        .get_result(conn)
        .await?;
    let staff_id: i64 = diesel::insert_into(users::staff::table)
        .values(users::staff::person_id.eq(person_id))
        .returning(users::staff::id)
        .get_result(conn)
        .await?;
    if let Some(position) = position {
        diesel::insert_into(users::teachers::table)
            .values((users::teachers::staff_id.eq(staff_id), users::teachers::role.eq(Some(position))))
            .execute(conn)
            .await?;
    }
    Ok(StaffIds { person_id, staff_id })
}
