//! `phoenix.education.v1.EducationService`: [`EducationApi`], [`METHODS`] and the handlers
//! (validate → authorise → one transaction through `repo` → convert), plus [`create_group`],
//! the operation the demo school shares with `CreateGroup`.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::access::{Caller, MyGroupVia};
use phoenix_common::authz::{AuthContext, MethodTable, Requirement};
use phoenix_common::db::{self, DbPool};
use phoenix_common::time::business_today;
use phoenix_common::validate::id;
use phoenix_common::{Error, Reply, Result};
use phoenix_proto::education::v1 as pb;
use phoenix_proto::education::v1::education_service_server::EducationService;
use tonic::{Request, Response};

use crate::repo::{self, GroupRecord, SubstitutionFields};
use crate::validate::{self, NewGroup};
use crate::{access, convert};

/// The permission each RPC needs (`resource:action`, seeded in the `seed_data` migration),
/// checked by the shared auth layer before the handler runs. Transfers additionally require
/// the caller to lead the group (`access::require_group_leader`), so staff with
/// `groups:update` can hand over only their own groups. Choosing a group's leaders is an
/// assignment: `CreateGroup` with `teacher_ids` and `UpdateGroup` with `teacher_ids` in its
/// mask also need `groups:assign` (checked in the handler, [`require_assign`]), which the
/// seeded staff role lacks — leading a group gives full access to its pupils, so staff must
/// not make themselves leaders.
pub const METHODS: MethodTable = &[
    ("/phoenix.education.v1.EducationService/CreateGroup", Requirement::Permission("groups:create")),
    ("/phoenix.education.v1.EducationService/GetGroup", Requirement::Permission("groups:read")),
    ("/phoenix.education.v1.EducationService/ListGroups", Requirement::Permission("groups:read")),
    ("/phoenix.education.v1.EducationService/UpdateGroup", Requirement::Permission("groups:update")),
    ("/phoenix.education.v1.EducationService/DeleteGroup", Requirement::Permission("groups:delete")),
    ("/phoenix.education.v1.EducationService/AddGroupTeacher", Requirement::Permission("groups:assign")),
    ("/phoenix.education.v1.EducationService/RemoveGroupTeacher", Requirement::Permission("groups:assign")),
    ("/phoenix.education.v1.EducationService/CreateSubstitution", Requirement::Permission("substitutions:create")),
    ("/phoenix.education.v1.EducationService/GetSubstitution", Requirement::Permission("substitutions:read")),
    ("/phoenix.education.v1.EducationService/ListSubstitutions", Requirement::Permission("substitutions:read")),
    ("/phoenix.education.v1.EducationService/UpdateSubstitution", Requirement::Permission("substitutions:update")),
    ("/phoenix.education.v1.EducationService/DeleteSubstitution", Requirement::Permission("substitutions:delete")),
    ("/phoenix.education.v1.EducationService/TransferGroup", Requirement::Permission("groups:update")),
    ("/phoenix.education.v1.EducationService/CancelTransfer", Requirement::Permission("groups:update")),
    ("/phoenix.education.v1.EducationService/ListMyGroups", Requirement::Permission("groups:read")),
];

/// Reason stored on transfers (the original's wording, shown in German UIs).
pub const TRANSFER_REASON: &str = "Gruppenübergabe";

/// The education service over a database pool.
#[derive(Clone)]
pub struct EducationApi {
    pool: DbPool,
}

impl std::fmt::Debug for EducationApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EducationApi").finish_non_exhaustive()
    }
}

impl EducationApi {
    /// A service answering from `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

/// Creates a group with its teachers in one transaction (`CreateGroup` and the demo school).
pub async fn create_group(conn: &mut AsyncPgConnection, new: NewGroup) -> Result<GroupRecord> {
    conn.transaction::<_, Error, _>(async move |c| {
        repo::check_room(c, new.fields.room_id).await?;
        repo::check_teachers(c, "group.teacher_ids", &new.teacher_ids).await?;
        let row = repo::insert_group(c, &new.fields).await?;
        repo::add_teachers(c, row.id, &new.teacher_ids).await?;
        repo::find_group_record(c, row.id).await?.ok_or_else(|| Error::not_found("group", row.id))
    })
    .await
}

/// `PermissionDenied` naming `groups:assign` unless the caller holds it (`may_assign`; admins
/// do): setting a group's leaders grants full access to its pupils.
fn require_assign(may_assign: bool) -> Result<()> {
    if may_assign {
        return Ok(());
    }
    Err(Error::PermissionDenied(
        "missing permission groups:assign: choosing a group's teachers (teacher_ids) is an assignment".into(),
    ))
}

#[tonic::async_trait]
impl EducationService for EducationApi {
    // ---- groups -----------------------------------------------------------------------

    async fn create_group(&self, request: Request<pb::CreateGroupRequest>) -> Reply<pb::CreateGroupResponse> {
        let may_assign = AuthContext::of(&request)?.has_permission("groups:assign");
        let new = validate::create_group(request.into_inner())?;
        if !new.teacher_ids.is_empty() {
            require_assign(may_assign)?;
        }
        let mut conn = db::conn(&self.pool).await?;
        let record = create_group(&mut conn, new).await?;
        tracing::info!(group_id = record.group.id, "group created");
        Ok(Response::new(pb::CreateGroupResponse { group: Some(convert::group(record)) }))
    }

    async fn get_group(&self, request: Request<pb::GetGroupRequest>) -> Reply<pb::GetGroupResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let record = repo::find_group_record(&mut conn, id).await?.ok_or_else(|| Error::not_found("group", id))?;
        Ok(Response::new(pb::GetGroupResponse { group: Some(convert::group(record)) }))
    }

    async fn list_groups(&self, request: Request<pb::ListGroupsRequest>) -> Reply<pb::ListGroupsResponse> {
        let (filter, page) = validate::list_groups(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let total_size = repo::count_groups(&mut conn, &filter).await?;
        let rows = repo::list_groups(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |g| g.id.to_string());
        let groups = repo::group_records(&mut conn, rows).await?.into_iter().map(convert::group).collect();
        Ok(Response::new(pb::ListGroupsResponse { groups, next_page_token, total_size }))
    }

    async fn update_group(&self, request: Request<pb::UpdateGroupRequest>) -> Reply<pb::UpdateGroupResponse> {
        let may_assign = AuthContext::of(&request)?.has_permission("groups:assign");
        let update = validate::update_group(request.into_inner())?;
        if update.paths.contains(&"teacher_ids") {
            require_assign(may_assign)?;
        }
        let mut conn = db::conn(&self.pool).await?;
        let record = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored =
                    repo::lock_group(c, update.id).await?.ok_or_else(|| Error::not_found("group", update.id))?;
                let (fields, teachers) = validate::apply_group(&update, stored.fields())?;
                if fields.room_id != stored.room_id {
                    repo::check_room(c, fields.room_id).await?;
                }
                repo::write_group(c, stored.id, &fields).await?;
                if let Some(ids) = teachers {
                    repo::check_teachers(c, "group.teacher_ids", &ids).await?;
                    repo::set_teachers(c, stored.id, &ids).await?;
                }
                repo::find_group_record(c, stored.id).await?.ok_or_else(|| Error::not_found("group", stored.id))
            })
            .await?;
        tracing::info!(group_id = record.group.id, "group updated");
        Ok(Response::new(pb::UpdateGroupResponse { group: Some(convert::group(record)) }))
    }

    async fn delete_group(&self, request: Request<pb::DeleteGroupRequest>) -> Reply<pb::DeleteGroupResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            repo::lock_group(c, id).await?.ok_or_else(|| Error::not_found("group", id))?;
            if repo::has_active_students(c, id).await? {
                return Err(Error::precondition(
                    "GROUP_HAS_STUDENTS",
                    format!("group {id} still has pupils; move them to another group first"),
                ));
            }
            // The FK from room sessions cascades: deleting would erase attendance history.
            if repo::has_sessions(c, id).await? {
                return Err(Error::precondition(
                    "GROUP_HAS_SESSIONS",
                    format!("group {id} has room sessions on record and cannot be deleted; rename it instead"),
                ));
            }
            repo::delete_group(c, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(group_id = id, "group deleted");
        Ok(Response::new(pb::DeleteGroupResponse {}))
    }

    async fn add_group_teacher(
        &self,
        request: Request<pb::AddGroupTeacherRequest>,
    ) -> Reply<pb::AddGroupTeacherResponse> {
        let req = request.into_inner();
        let (group_id, teacher_id) = validate::group_teacher(req.group_id, req.teacher_id)?;
        let mut conn = db::conn(&self.pool).await?;
        let record = conn
            .transaction::<_, Error, _>(async move |c| {
                repo::lock_group(c, group_id).await?.ok_or_else(|| Error::not_found("group", group_id))?;
                repo::check_teachers(c, "teacher_id", &[teacher_id]).await?;
                repo::insert_group_teacher(c, group_id, teacher_id).await?;
                repo::find_group_record(c, group_id).await?.ok_or_else(|| Error::not_found("group", group_id))
            })
            .await?;
        tracing::info!(group_id, teacher_id, "group teacher added");
        Ok(Response::new(pb::AddGroupTeacherResponse { group: Some(convert::group(record)) }))
    }

    async fn remove_group_teacher(
        &self,
        request: Request<pb::RemoveGroupTeacherRequest>,
    ) -> Reply<pb::RemoveGroupTeacherResponse> {
        let req = request.into_inner();
        let (group_id, teacher_id) = validate::group_teacher(req.group_id, req.teacher_id)?;
        let mut conn = db::conn(&self.pool).await?;
        let record = conn
            .transaction::<_, Error, _>(async move |c| {
                repo::lock_group(c, group_id).await?.ok_or_else(|| Error::not_found("group", group_id))?;
                if !repo::delete_group_teacher(c, group_id, teacher_id).await? {
                    return Err(Error::not_found("group teacher", format!("{teacher_id} of group {group_id}")));
                }
                repo::find_group_record(c, group_id).await?.ok_or_else(|| Error::not_found("group", group_id))
            })
            .await?;
        tracing::info!(group_id, teacher_id, "group teacher removed");
        Ok(Response::new(pb::RemoveGroupTeacherResponse { group: Some(convert::group(record)) }))
    }

    // ---- substitutions ----------------------------------------------------------------

    async fn create_substitution(
        &self,
        request: Request<pb::CreateSubstitutionRequest>,
    ) -> Reply<pb::CreateSubstitutionResponse> {
        let today = business_today();
        let fields = validate::create_substitution(request.into_inner(), today)?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                if repo::find_group(c, fields.group_id).await?.is_none() {
                    return Err(Error::invalid(
                        "substitution.group_id",
                        format!("group {} does not exist", fields.group_id),
                    ));
                }
                repo::check_staff(c, "substitution.substitute_staff_id", fields.substitute_staff_id).await?;
                if let Some(r) = fields.regular_staff_id {
                    repo::check_staff(c, "substitution.regular_staff_id", r).await?;
                }
                repo::check_overlaps(c, &fields, None).await?;
                repo::insert_substitution(c, &fields).await
            })
            .await?;
        tracing::info!(substitution_id = row.id, group_id = row.group_id, "substitution created");
        let names = repo::group_names(&mut conn, std::slice::from_ref(&row)).await?;
        Ok(Response::new(pb::CreateSubstitutionResponse {
            substitution: Some(convert::substitution(row, &names, business_today())),
        }))
    }

    async fn get_substitution(
        &self,
        request: Request<pb::GetSubstitutionRequest>,
    ) -> Reply<pb::GetSubstitutionResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let row = repo::find_substitution(&mut conn, id).await?.ok_or_else(|| Error::not_found("substitution", id))?;
        let names = repo::group_names(&mut conn, std::slice::from_ref(&row)).await?;
        Ok(Response::new(pb::GetSubstitutionResponse {
            substitution: Some(convert::substitution(row, &names, business_today())),
        }))
    }

    async fn list_substitutions(
        &self,
        request: Request<pb::ListSubstitutionsRequest>,
    ) -> Reply<pb::ListSubstitutionsResponse> {
        let (filter, page) = validate::list_substitutions(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let total_size = repo::count_substitutions(&mut conn, &filter).await?;
        let rows = repo::list_substitutions(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |s| s.id.to_string());
        let names = repo::group_names(&mut conn, &rows).await?;
        let today = business_today();
        let substitutions = rows.into_iter().map(|s| convert::substitution(s, &names, today)).collect();
        Ok(Response::new(pb::ListSubstitutionsResponse { substitutions, next_page_token, total_size }))
    }

    async fn update_substitution(
        &self,
        request: Request<pb::UpdateSubstitutionRequest>,
    ) -> Reply<pb::UpdateSubstitutionResponse> {
        let update = validate::update_substitution(request.into_inner())?;
        let today = business_today();
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                let id = update.id;
                let stored =
                    repo::lock_substitution(c, id).await?.ok_or_else(|| Error::not_found("substitution", id))?;
                if stored.is_transfer {
                    return Err(Error::precondition(
                        "IS_TRANSFER",
                        format!("substitution {id} is a transfer; cancel it and transfer again"),
                    ));
                }
                if stored.end_date < today {
                    return Err(Error::precondition(
                        "SUBSTITUTION_ENDED",
                        format!(
                            "substitution {id} ended on {}; past substitutions are kept as they were",
                            stored.end_date
                        ),
                    ));
                }
                let fields = validate::apply_substitution(&update, stored.fields(), today)?;
                if fields.substitute_staff_id != stored.substitute_staff_id {
                    repo::check_staff(c, "substitution.substitute_staff_id", fields.substitute_staff_id).await?;
                }
                if let Some(r) = fields.regular_staff_id.filter(|r| Some(*r) != stored.regular_staff_id) {
                    repo::check_staff(c, "substitution.regular_staff_id", r).await?;
                }
                repo::check_overlaps(c, &fields, Some(id)).await?;
                repo::write_substitution(c, id, &fields).await
            })
            .await?;
        tracing::info!(substitution_id = row.id, "substitution updated");
        let names = repo::group_names(&mut conn, std::slice::from_ref(&row)).await?;
        Ok(Response::new(pb::UpdateSubstitutionResponse {
            substitution: Some(convert::substitution(row, &names, business_today())),
        }))
    }

    async fn delete_substitution(
        &self,
        request: Request<pb::DeleteSubstitutionRequest>,
    ) -> Reply<pb::DeleteSubstitutionResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            if repo::delete_substitution(c, id).await? { Ok(()) } else { Err(Error::not_found("substitution", id)) }
        })
        .await?;
        tracing::info!(substitution_id = id, "substitution deleted");
        Ok(Response::new(pb::DeleteSubstitutionResponse {}))
    }

    // ---- transfers and my groups ------------------------------------------------------

    async fn transfer_group(&self, request: Request<pb::TransferGroupRequest>) -> Reply<pb::TransferGroupResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (group_id, target) = validate::transfer(request.into_inner())?;
        let today = business_today();
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                repo::lock_group(c, group_id).await?.ok_or_else(|| Error::not_found("group", group_id))?;
                let me = access::require_group_leader(c, &caller, group_id).await?;
                if target == me {
                    return Err(Error::invalid("target_staff_id", "must be someone else than you"));
                }
                repo::check_staff(c, "target_staff_id", target).await?;
                // Today, as a Berlin school day (the original stored a UTC day).
                let fields = SubstitutionFields {
                    group_id,
                    regular_staff_id: None,
                    substitute_staff_id: target,
                    start_date: today,
                    end_date: today,
                    reason: Some(TRANSFER_REASON.to_owned()),
                    is_transfer: true,
                };
                // The original skipped the overlap checks for transfers; they apply here too.
                repo::check_overlaps(c, &fields, None).await?;
                repo::insert_substitution(c, &fields).await
            })
            .await?;
        tracing::info!(substitution_id = row.id, group_id, "group transferred for today");
        let names = repo::group_names(&mut conn, std::slice::from_ref(&row)).await?;
        Ok(Response::new(pb::TransferGroupResponse {
            transfer: Some(convert::substitution(row, &names, business_today())),
        }))
    }

    async fn cancel_transfer(&self, request: Request<pb::CancelTransferRequest>) -> Reply<pb::CancelTransferResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (group_id, substitution_id) = validate::cancel_transfer(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            repo::lock_group(c, group_id).await?.ok_or_else(|| Error::not_found("group", group_id))?;
            access::require_group_leader(c, &caller, group_id).await?;
            let row = repo::lock_substitution(c, substitution_id)
                .await?
                .filter(|s| s.group_id == group_id)
                .ok_or_else(|| Error::not_found("transfer", format!("{substitution_id} of group {group_id}")))?;
            if !row.is_transfer {
                return Err(Error::precondition(
                    "NOT_A_TRANSFER",
                    format!("substitution {substitution_id} was planned by the administration, not handed over"),
                ));
            }
            repo::delete_substitution(c, substitution_id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(substitution_id, group_id, "transfer cancelled");
        Ok(Response::new(pb::CancelTransferResponse {}))
    }

    async fn list_my_groups(&self, request: Request<pb::ListMyGroupsRequest>) -> Reply<pb::ListMyGroupsResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let Some(staff_id) = caller.staff_id else {
            return Err(Error::precondition("NOT_STAFF", "the caller is not linked to a staff record").into());
        };
        let mut conn = db::conn(&self.pool).await?;
        let mine = access::my_groups(&mut conn, staff_id, business_today()).await?;
        let mut rows = Vec::new();
        for (group_id, _) in &mine {
            if let Some(row) = repo::find_group(&mut conn, *group_id).await? {
                rows.push(row);
            }
        }
        let groups = repo::group_records(&mut conn, rows)
            .await?
            .into_iter()
            .map(|r| {
                let via = mine.iter().find(|(g, _)| *g == r.group.id).map(|(_, via)| *via);
                let (role, substitution_id) = match via {
                    Some(MyGroupVia::Substitute { substitution_id }) => {
                        (pb::MyGroupRole::Substitute, Some(substitution_id))
                    }
                    _ => (pb::MyGroupRole::Leader, None),
                };
                pb::MyGroup { group: Some(convert::group(r)), role: role as i32, substitution_id }
            })
            .collect();
        Ok(Response::new(pb::ListMyGroupsResponse { groups }))
    }
}
