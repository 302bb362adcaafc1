//! Guardians as a caller may see them: the guardian rule per row, phone numbers loaded
//! only where visible, then redacted.

use diesel_async::AsyncPgConnection;
use phoenix_common::access::{self, Caller, StudentAccess};
use phoenix_common::time::business_today;
use phoenix_common::{Error, Result};
use phoenix_proto::users::v1 as pb;

use crate::repo::guardians::{self as rows, GuardianRow};
use crate::{convert, redact};

/// Guardians as `caller` may see them (phone numbers loaded only where visible).
pub async fn views(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    guardians: Vec<GuardianRow>,
) -> Result<Vec<pb::Guardian>> {
    let ids: Vec<i64> = guardians.iter().map(|g| g.id).collect();
    let children = rows::children_groups(conn, &ids).await?;
    let mine = access::my_group_ids(conn, caller, business_today()).await?;
    let with_access: Vec<(GuardianRow, StudentAccess)> = guardians
        .into_iter()
        .map(|g| {
            let groups = children.get(&g.id).map(Vec::as_slice).unwrap_or_default();
            let a = access::guardian_access(caller, groups, &mine);
            (g, a)
        })
        .collect();
    let visible: Vec<i64> = with_access.iter().filter(|(_, a)| *a == StudentAccess::Full).map(|(g, _)| g.id).collect();
    let mut phones = rows::phones_of(conn, &visible).await?;
    Ok(with_access
        .into_iter()
        .map(|(g, a)| {
            let p = phones.remove(&g.id).unwrap_or_default();
            redact::guardian(convert::guardian(g, p), a)
        })
        .collect())
}

/// Guardian `id` with all their phone numbers, unredacted (the answer to a write, which
/// needed full access).
pub async fn full(conn: &mut AsyncPgConnection, id: i64) -> Result<pb::Guardian> {
    let g = rows::find_guardian(conn, id).await?.ok_or_else(|| Error::not_found("guardian", id))?;
    let phones = rows::phones_of(conn, &[id]).await?.remove(&id).unwrap_or_default();
    Ok(convert::guardian(g, phones))
}
