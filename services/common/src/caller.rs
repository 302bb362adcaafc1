//! Who is calling, as the domain services need it for resource rules ("my groups", full
//! access to a student, ownership of an activity) and for `created_by`-style columns.
//!
//! Built from the verified [`AuthContext`] the authorization layer put into the request —
//! never from anything else the client sends — plus the caller's staff record, looked up
//! through `users.persons.account_id`.

use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;

use crate::authz::{AuthContext, Principal};
use crate::db::DbPool;
use crate::error::Result;

/// The authenticated caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caller {
    /// `auth.accounts.id`; `None` for a service client.
    pub account_id: Option<i64>,
    /// `users.staff.id` when the account belongs to a staff member.
    pub staff_id: Option<i64>,
    /// Holds an admin wildcard (`*:*` / `admin:*`): resource rules do not restrict it.
    pub is_admin: bool,
}

#[derive(QueryableByName)]
struct StaffId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

impl Caller {
    /// An administrator without an account or staff record (internal jobs, unit tests).
    pub const ADMIN: Caller = Caller { account_id: None, staff_id: None, is_admin: true };

    /// A non-admin staff member (unit tests of resource rules).
    pub const fn staff(staff_id: i64) -> Self {
        Caller { account_id: None, staff_id: Some(staff_id), is_admin: false }
    }

    /// The caller of a request that passed the authorization layer.
    pub async fn of<T>(request: &tonic::Request<T>, pool: &DbPool) -> Result<Caller> {
        Self::from_context(AuthContext::of(request)?, pool).await
    }

    /// The caller described by `ctx`.
    pub async fn from_context(ctx: &AuthContext, pool: &DbPool) -> Result<Caller> {
        let is_admin = crate::authz::grants(&ctx.permissions, "admin:*");
        let account_id = match &ctx.principal {
            Principal::Account(id) => Some(*id),
            Principal::Service(_) => None,
        };
        let staff_id = match account_id {
            None => None,
            Some(id) => {
                let mut conn = pool.get().await?;
                // Read-only cross-schema join (ARCHITECTURE.md: services may read other schemas).
                let rows: Vec<StaffId> = diesel::sql_query(
                    "SELECT s.id FROM users.staff s JOIN users.persons p ON p.id = s.person_id WHERE p.account_id = $1",
                )
                .bind::<BigInt, _>(id)
                .load(&mut conn)
                .await?;
                rows.into_iter().next().map(|r| r.id)
            }
        };
        Ok(Caller { account_id, staff_id, is_admin })
    }
}
