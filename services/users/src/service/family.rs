//! Guardians, their phone numbers and their links to students.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::access::{self, Caller, StudentAccess};
use phoenix_common::time::business_today;
use phoenix_common::{Error, Result};
use phoenix_proto::users::v1 as pb;

use super::{Users, require_full_access};
use crate::repo::guardians::{self as repo, GuardianRow};
use crate::repo::students;
use crate::validate::family as validate;
use crate::{convert, error, redact};

/// The guardian rule (reference §1.2): admin, or one of the guardian's children is in one
/// of the caller's groups.
async fn guardian_access_of(conn: &mut AsyncPgConnection, caller: &Caller, guardian_id: i64) -> Result<StudentAccess> {
    if caller.is_admin {
        return Ok(StudentAccess::Full);
    }
    let children = repo::children_groups(conn, &[guardian_id]).await?.remove(&guardian_id).unwrap_or_default();
    let mine = access::my_group_ids(conn, caller, business_today()).await?;
    Ok(access::guardian_access(caller, &children, &mine))
}

async fn require_guardian_access(conn: &mut AsyncPgConnection, caller: &Caller, guardian_id: i64) -> Result<()> {
    match guardian_access_of(conn, caller, guardian_id).await? {
        StudentAccess::Full => Ok(()),
        StudentAccess::Limited => Err(Error::PermissionDenied(format!(
            "guardian {guardian_id} has no child in one of your groups; only administrators can change them"
        ))),
    }
}

/// Guardians as `caller` may see them (phone numbers loaded only where visible).
async fn guardian_views(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    rows: Vec<GuardianRow>,
) -> Result<Vec<pb::Guardian>> {
    let ids: Vec<i64> = rows.iter().map(|g| g.id).collect();
    let children = repo::children_groups(conn, &ids).await?;
    let mine = access::my_group_ids(conn, caller, business_today()).await?;
    let with_access: Vec<(GuardianRow, StudentAccess)> = rows
        .into_iter()
        .map(|g| {
            let groups = children.get(&g.id).map(Vec::as_slice).unwrap_or_default();
            let a = access::guardian_access(caller, groups, &mine);
            (g, a)
        })
        .collect();
    let visible: Vec<i64> = with_access.iter().filter(|(_, a)| *a == StudentAccess::Full).map(|(g, _)| g.id).collect();
    let mut phones = repo::phones_of(conn, &visible).await?;
    Ok(with_access
        .into_iter()
        .map(|(g, a)| {
            let p = phones.remove(&g.id).unwrap_or_default();
            redact::guardian(convert::guardian(g, p), a)
        })
        .collect())
}

async fn full_guardian(conn: &mut AsyncPgConnection, id: i64) -> Result<pb::Guardian> {
    let g = repo::find_guardian(conn, id).await?.ok_or_else(|| Error::not_found("guardian", id))?;
    let phones = repo::phones_of(conn, &[id]).await?.remove(&id).unwrap_or_default();
    Ok(convert::guardian(g, phones))
}

impl Users {
    pub(super) async fn do_create_guardian(
        &self,
        caller: Caller,
        req: pb::CreateGuardianRequest,
    ) -> Result<pb::CreateGuardianResponse> {
        let fields = validate::create_guardian(req)?;
        let mut conn = self.conn().await?;
        if !caller.is_admin && access::my_group_ids(&mut conn, &caller, business_today()).await?.is_empty() {
            return Err(Error::PermissionDenied(
                "only administrators and staff with groups of their own may create guardians".into(),
            ));
        }
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                repo::insert_guardian(c, &fields).await.map_err(error::guardian_write)
            })
            .await?;
        tracing::info!(guardian_id = row.id, "guardian created");
        Ok(pb::CreateGuardianResponse { guardian: Some(convert::guardian(row, Vec::new())) })
    }

    pub(super) async fn do_get_guardian(
        &self,
        caller: Caller,
        req: pb::GetGuardianRequest,
    ) -> Result<pb::GetGuardianResponse> {
        let id = crate::validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        let row = repo::find_guardian(&mut conn, id).await?.ok_or_else(|| Error::not_found("guardian", id))?;
        let guardian = guardian_views(&mut conn, &caller, vec![row]).await?.pop();
        Ok(pb::GetGuardianResponse { guardian })
    }

    pub(super) async fn do_list_guardians(
        &self,
        caller: Caller,
        req: pb::ListGuardiansRequest,
    ) -> Result<pb::ListGuardiansResponse> {
        let (filter, page) = validate::list_guardians(req)?;
        let mut conn = self.conn().await?;
        let total_size = repo::count_guardians(&mut conn, &filter).await?;
        let rows = repo::list_guardians(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |g| g.id.to_string());
        let guardians = guardian_views(&mut conn, &caller, rows).await?;
        Ok(pb::ListGuardiansResponse { guardians, next_page_token, total_size })
    }

    pub(super) async fn do_update_guardian(
        &self,
        caller: Caller,
        req: pb::UpdateGuardianRequest,
    ) -> Result<pb::UpdateGuardianResponse> {
        let update = validate::update_guardian(req)?;
        let mut conn = self.conn().await?;
        let guardian = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored =
                    repo::lock_guardian(c, update.id).await?.ok_or_else(|| Error::not_found("guardian", update.id))?;
                require_guardian_access(c, &caller, stored.id).await?;
                let fields = update.apply(stored.fields())?;
                repo::write_guardian(c, stored.id, &fields).await.map_err(error::guardian_write)?;
                full_guardian(c, stored.id).await
            })
            .await?;
        tracing::info!(guardian_id = guardian.id, "guardian updated");
        Ok(pb::UpdateGuardianResponse { guardian: Some(guardian) })
    }

    pub(super) async fn do_delete_guardian(
        &self,
        caller: Caller,
        req: pb::DeleteGuardianRequest,
    ) -> Result<pb::DeleteGuardianResponse> {
        let id = crate::validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |c| {
            repo::lock_guardian(c, id).await?.ok_or_else(|| Error::not_found("guardian", id))?;
            require_guardian_access(c, &caller, id).await?;
            repo::delete_guardian(c, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(guardian_id = id, "guardian deleted");
        Ok(pb::DeleteGuardianResponse {})
    }

    pub(super) async fn do_add_phone(
        &self,
        caller: Caller,
        req: pb::AddGuardianPhoneNumberRequest,
    ) -> Result<pb::AddGuardianPhoneNumberResponse> {
        let (guardian_id, fields) = validate::add_phone(req)?;
        let mut conn = self.conn().await?;
        let guardian = conn
            .transaction::<_, Error, _>(async move |c| {
                repo::lock_guardian(c, guardian_id).await?.ok_or_else(|| Error::not_found("guardian", guardian_id))?;
                require_guardian_access(c, &caller, guardian_id).await?;
                if fields.is_primary {
                    // At most one primary number: the service demotes the previous one
                    // (the original did it in a trigger).
                    repo::clear_primary_phone(c, guardian_id).await?;
                }
                repo::insert_phone(c, guardian_id, &fields).await.map_err(error::phone_write)?;
                full_guardian(c, guardian_id).await
            })
            .await?;
        tracing::info!(guardian_id, "guardian phone number added");
        Ok(pb::AddGuardianPhoneNumberResponse { guardian: Some(guardian) })
    }

    pub(super) async fn do_update_phone(
        &self,
        caller: Caller,
        req: pb::UpdateGuardianPhoneNumberRequest,
    ) -> Result<pb::UpdateGuardianPhoneNumberResponse> {
        let update = validate::update_phone(req)?;
        let mut conn = self.conn().await?;
        let guardian = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored =
                    repo::lock_phone(c, update.id).await?.ok_or_else(|| Error::not_found("phone number", update.id))?;
                require_guardian_access(c, &caller, stored.guardian_id).await?;
                let fields = update.apply(stored.fields())?;
                if fields.is_primary && !stored.is_primary {
                    repo::clear_primary_phone(c, stored.guardian_id).await?;
                }
                repo::write_phone(c, stored.id, &fields).await.map_err(error::phone_write)?;
                full_guardian(c, stored.guardian_id).await
            })
            .await?;
        tracing::info!(guardian_id = guardian.id, "guardian phone number updated");
        Ok(pb::UpdateGuardianPhoneNumberResponse { guardian: Some(guardian) })
    }

    pub(super) async fn do_delete_phone(
        &self,
        caller: Caller,
        req: pb::DeleteGuardianPhoneNumberRequest,
    ) -> Result<pb::DeleteGuardianPhoneNumberResponse> {
        let id = crate::validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |c| {
            let stored = repo::lock_phone(c, id).await?.ok_or_else(|| Error::not_found("phone number", id))?;
            require_guardian_access(c, &caller, stored.guardian_id).await?;
            repo::delete_phone(c, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(phone_id = id, "guardian phone number deleted");
        Ok(pb::DeleteGuardianPhoneNumberResponse {})
    }

    pub(super) async fn do_link_guardian(
        &self,
        caller: Caller,
        req: pb::LinkGuardianRequest,
    ) -> Result<pb::LinkGuardianResponse> {
        let (student_id, guardian_id, fields) = validate::link(req)?;
        let mut conn = self.conn().await?;
        let link = conn
            .transaction::<_, Error, _>(async move |c| {
                let student = students::lock_student(c, student_id)
                    .await?
                    .ok_or_else(|| Error::invalid("link.student_id", format!("student {student_id} does not exist")))?;
                require_full_access(c, &caller, &student).await?;
                if repo::find_guardian(c, guardian_id).await?.is_none() {
                    return Err(Error::invalid("link.guardian_id", format!("guardian {guardian_id} does not exist")));
                }
                if fields.is_primary {
                    repo::clear_primary_link(c, student_id).await?;
                }
                let id = repo::insert_link(c, student_id, guardian_id, &fields)
                    .await
                    .map_err(|e| error::link_write(e, student_id, guardian_id))?;
                repo::find_link(c, id).await?.ok_or_else(|| Error::not_found("link", id))
            })
            .await?;
        tracing::info!(link_id = link.0.id, student_id, guardian_id, "guardian linked");
        Ok(pb::LinkGuardianResponse { link: Some(convert::link(link)) })
    }

    pub(super) async fn do_update_link(
        &self,
        caller: Caller,
        req: pb::UpdateStudentGuardianRequest,
    ) -> Result<pb::UpdateStudentGuardianResponse> {
        let update = validate::update_link(req)?;
        let mut conn = self.conn().await?;
        let link = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored = repo::lock_link(c, update.id).await?.ok_or_else(|| Error::not_found("link", update.id))?;
                let student = students::lock_student(c, stored.student_id)
                    .await?
                    .ok_or_else(|| Error::not_found("student", stored.student_id))?;
                require_full_access(c, &caller, &student).await?;
                let fields = update.apply(stored.fields())?;
                if fields.is_primary && !stored.is_primary {
                    repo::clear_primary_link(c, stored.student_id).await?;
                }
                repo::write_link(c, stored.id, &fields)
                    .await
                    .map_err(|e| error::link_write(e, stored.student_id, stored.guardian_id))?;
                repo::find_link(c, stored.id).await?.ok_or_else(|| Error::not_found("link", stored.id))
            })
            .await?;
        tracing::info!(link_id = link.0.id, "guardian link updated");
        Ok(pb::UpdateStudentGuardianResponse { link: Some(convert::link(link)) })
    }

    pub(super) async fn do_unlink_guardian(
        &self,
        caller: Caller,
        req: pb::UnlinkGuardianRequest,
    ) -> Result<pb::UnlinkGuardianResponse> {
        let id = crate::validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |c| {
            let stored = repo::lock_link(c, id).await?.ok_or_else(|| Error::not_found("link", id))?;
            let student = students::lock_student(c, stored.student_id)
                .await?
                .ok_or_else(|| Error::not_found("student", stored.student_id))?;
            require_full_access(c, &caller, &student).await?;
            repo::delete_link(c, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(link_id = id, "guardian unlinked");
        Ok(pb::UnlinkGuardianResponse {})
    }

    pub(super) async fn do_list_links(
        &self,
        req: pb::ListStudentGuardiansRequest,
    ) -> Result<pb::ListStudentGuardiansResponse> {
        let (student_id, guardian_id) = validate::list_links(req)?;
        let mut conn = self.conn().await?;
        let links = repo::list_links(&mut conn, student_id, guardian_id).await?;
        Ok(pb::ListStudentGuardiansResponse { links: links.into_iter().map(convert::link).collect() })
    }
}
