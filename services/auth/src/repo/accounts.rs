//! Accounts: lookup, login bookkeeping, administration, their roles and direct permissions,
//! and the `users.*` records linked to them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_db::schema::auth::{account_permissions, account_roles, accounts, permissions, role_permissions, roles};
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
