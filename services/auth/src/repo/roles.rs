//! Roles and the permission catalogue.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::Result;
use phoenix_db::schema::auth::{permissions, role_permissions, roles};

/// The id of the role with this name.
pub async fn role_id(conn: &mut AsyncPgConnection, name: &str) -> Result<Option<i64>> {
    Ok(roles::table.filter(roles::name.eq(name)).select(roles::id).first(conn).await.optional()?)
}

/// The id of the permission `resource:action`.
pub async fn permission_id(conn: &mut AsyncPgConnection, name: &str) -> Result<Option<i64>> {
    Ok(permissions::table.filter(permissions::name.eq(name)).select(permissions::id).first(conn).await.optional()?)
}

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

/// Role names by id.
pub async fn role_names_by_id(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, String>> {
    let rows: Vec<(i64, String)> =
        roles::table.filter(roles::id.eq_any(ids)).select((roles::id, roles::name)).load(conn).await?;
    Ok(rows.into_iter().collect())
}
