//! Resource rules of education over [`Caller`]: who may hand a group over, and which groups
//! are the caller's own ("my groups"). Handlers call these; nothing else decides access.

use std::collections::HashMap;

use chrono::NaiveDate;
use diesel_async::AsyncPgConnection;
use phoenix_common::access::{self, Caller, MyGroupVia};
use phoenix_common::{Error, Result};

use crate::repo;

/// The caller must be staff leading `group_id` (transfers); their staff id.
pub async fn require_group_leader(conn: &mut AsyncPgConnection, caller: &Caller, group_id: i64) -> Result<i64> {
    let Some(staff_id) = caller.staff_id else {
        return Err(Error::PermissionDenied("only staff who lead the group can hand it over".into()));
    };
    if repo::leads(conn, staff_id, group_id).await? {
        Ok(staff_id)
    } else {
        Err(Error::PermissionDenied(format!("you do not lead group {group_id}")))
    }
}

/// The groups staff member `staff_id` has on `today`, each once (leading wins over
/// substituting), led groups first, then by id.
pub async fn my_groups(
    conn: &mut AsyncPgConnection,
    staff_id: i64,
    today: NaiveDate,
) -> Result<Vec<(i64, MyGroupVia)>> {
    let entries = access::my_groups(conn, staff_id, today).await?;
    let mut order: Vec<i64> = Vec::new();
    let mut via: HashMap<i64, MyGroupVia> = HashMap::new();
    for e in entries {
        match via.get(&e.group_id) {
            None => {
                order.push(e.group_id);
                via.insert(e.group_id, e.via);
            }
            Some(MyGroupVia::Substitute { .. }) if e.via == MyGroupVia::Leader => {
                via.insert(e.group_id, e.via);
            }
            Some(_) => {}
        }
    }
    order.sort_by_key(|g| (!matches!(via.get(g), Some(MyGroupVia::Leader)), *g));
    Ok(order.into_iter().filter_map(|g| via.remove(&g).map(|v| (g, v))).collect())
}
