//! The tonic handlers of `phoenix.education.v1.EducationService` and the transactional
//! operations behind them: validate → authorise → one transaction → repo → convert.

use std::collections::HashMap;

use chrono::NaiveDate;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::access::{self, Caller, MyGroupVia};
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{DbConn, DbPool};
use phoenix_common::time::business_today;
use phoenix_common::{Error, Result};
use phoenix_proto::education::v1 as pb;
use phoenix_proto::education::v1::education_service_server::EducationService;
use tonic::{Request, Response, Status};

use crate::repo::{self, GroupRecord, SubstitutionFields, SubstitutionRow};
use crate::validate::{self, NewGroup};
use crate::{convert, error};

/// The permission each RPC needs (`resource:action`, seeded in the `seed_data` migration),
/// checked by the shared auth layer before the handler runs. Transfers additionally require
/// the caller to lead the group (checked here), so staff with `groups:update` can hand over
/// only their own groups.
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
pub struct Education {
    pool: DbPool,
}

impl std::fmt::Debug for Education {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Education").finish_non_exhaustive()
    }
}

impl Education {
    /// A service answering from `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    async fn conn(&self) -> Result<DbConn<'_>> {
        Ok(self.pool.get().await?)
    }
}

// ---- operations (one transaction each; also the demo school's code path) -------------------

async fn check_room(conn: &mut AsyncPgConnection, room_id: Option<i64>) -> Result<()> {
    if let Some(r) = room_id
        && !repo::room_exists(conn, r).await?
    {
        return Err(Error::invalid("group.room_id", format!("room {r} does not exist")));
    }
    Ok(())
}

async fn check_teachers(conn: &mut AsyncPgConnection, field: &str, ids: &[i64]) -> Result<()> {
    let missing = repo::missing_teachers(conn, ids).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        let list: Vec<String> = missing.iter().map(i64::to_string).collect();
        Err(Error::invalid(field, format!("no teacher with id {}", list.join(", "))))
    }
}

/// Creates a group with its teachers in one transaction.
pub async fn create_group(conn: &mut AsyncPgConnection, new: NewGroup) -> Result<GroupRecord> {
    conn.transaction::<_, Error, _>(async move |c| {
        check_room(c, new.fields.room_id).await?;
        check_teachers(c, "group.teacher_ids", &new.teacher_ids).await?;
        let row = repo::insert_group(c, &new.fields).await.map_err(|e| error::group_write(e, &new.fields.name))?;
        repo::add_teachers(c, row.id, &new.teacher_ids).await.map_err(|e| error::group_write(e, &new.fields.name))?;
        repo::find_group_record(c, row.id).await?.ok_or_else(|| Error::not_found("group", row.id))
    })
    .await
}

async fn check_staff(conn: &mut AsyncPgConnection, field: &str, id: i64) -> Result<()> {
    if repo::staff_exists(conn, id).await? {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("staff member {id} does not exist")))
    }
}

/// The overlap rules (issue #5): the same substitute for the same group in an overlapping
/// period is a duplicate (ALREADY_EXISTS); a substitute already covering another group then
/// cannot take this one as well (FAILED_PRECONDITION). Serialised per substitute.
async fn check_overlaps(conn: &mut AsyncPgConnection, f: &SubstitutionFields, except: Option<i64>) -> Result<()> {
    repo::lock_substitute(conn, f.substitute_staff_id).await?;
    if let Some(other) = repo::overlapping_same(conn, f, except).await? {
        return Err(Error::AlreadyExists(format!(
            "staff member {} already covers group {} in an overlapping period (substitution {other})",
            f.substitute_staff_id, f.group_id
        )));
    }
    if let Some(group) = repo::overlapping_other_group(conn, f, except).await? {
        return Err(Error::precondition(
            "SUBSTITUTE_BUSY",
            format!("staff member {} already covers group {group} in that period", f.substitute_staff_id),
        ));
    }
    Ok(())
}

/// Plans a substitution in one transaction.
pub async fn create_substitution(conn: &mut AsyncPgConnection, fields: SubstitutionFields) -> Result<SubstitutionRow> {
    conn.transaction::<_, Error, _>(async move |c| {
        if repo::find_group(c, fields.group_id).await?.is_none() {
            return Err(Error::invalid("substitution.group_id", format!("group {} does not exist", fields.group_id)));
        }
        check_staff(c, "substitution.substitute_staff_id", fields.substitute_staff_id).await?;
        if let Some(r) = fields.regular_staff_id {
            check_staff(c, "substitution.regular_staff_id", r).await?;
        }
        check_overlaps(c, &fields, None).await?;
        repo::insert_substitution(c, &fields).await.map_err(error::substitution_write)
    })
    .await
}

/// The caller must be staff leading `group_id` (transfers, reference §3.5).
async fn require_leader(conn: &mut AsyncPgConnection, caller: &Caller, group_id: i64) -> Result<i64> {
    let Some(staff_id) = caller.staff_id else {
        return Err(Error::PermissionDenied("only staff who lead the group can hand it over".into()));
    };
    if repo::leads(conn, staff_id, group_id).await? {
        Ok(staff_id)
    } else {
        Err(Error::PermissionDenied(format!("you do not lead group {group_id}")))
    }
}

async fn substitution_view(conn: &mut AsyncPgConnection, rows: Vec<SubstitutionRow>) -> Result<Vec<pb::Substitution>> {
    let mut ids: Vec<i64> = rows.iter().map(|s| s.group_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let names = repo::group_names(conn, &ids).await?;
    let today = business_today();
    Ok(rows
        .into_iter()
        .map(|s| {
            let name = names.get(&s.group_id).cloned().unwrap_or_default();
            convert::substitution(s, name, today)
        })
        .collect())
}

async fn one_substitution(conn: &mut AsyncPgConnection, row: SubstitutionRow) -> Result<pb::Substitution> {
    let id = row.id;
    substitution_view(conn, vec![row]).await?.pop().ok_or_else(|| Error::not_found("substitution", id))
}

fn today() -> NaiveDate {
    business_today()
}

impl Education {
    // ---- groups -----------------------------------------------------------------------

    async fn do_create_group(&self, req: pb::CreateGroupRequest) -> Result<pb::CreateGroupResponse> {
        let new = validate::create_group(req)?;
        let mut conn = self.conn().await?;
        let record = create_group(&mut conn, new).await?;
        tracing::info!(group_id = record.group.id, "group created");
        Ok(pb::CreateGroupResponse { group: Some(convert::group(record)) })
    }

    async fn do_get_group(&self, req: pb::GetGroupRequest) -> Result<pb::GetGroupResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        let record = repo::find_group_record(&mut conn, id).await?.ok_or_else(|| Error::not_found("group", id))?;
        Ok(pb::GetGroupResponse { group: Some(convert::group(record)) })
    }

    async fn do_list_groups(&self, req: pb::ListGroupsRequest) -> Result<pb::ListGroupsResponse> {
        let (filter, page) = validate::list_groups(req)?;
        let mut conn = self.conn().await?;
        let total_size = repo::count_groups(&mut conn, &filter).await?;
        let rows = repo::list_groups(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |g| g.id.to_string());
        let groups = repo::group_records(&mut conn, rows).await?.into_iter().map(convert::group).collect();
        Ok(pb::ListGroupsResponse { groups, next_page_token, total_size })
    }

    async fn do_update_group(&self, req: pb::UpdateGroupRequest) -> Result<pb::UpdateGroupResponse> {
        let update = validate::update_group(req)?;
        let mut conn = self.conn().await?;
        let record = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored =
                    repo::lock_group(c, update.id).await?.ok_or_else(|| Error::not_found("group", update.id))?;
                let (fields, teachers) = update.apply(stored.fields())?;
                if fields.room_id != stored.room_id {
                    check_room(c, fields.room_id).await?;
                }
                repo::write_group(c, stored.id, &fields).await.map_err(|e| error::group_write(e, &fields.name))?;
                if let Some(ids) = teachers {
                    check_teachers(c, "group.teacher_ids", &ids).await?;
                    repo::set_teachers(c, stored.id, &ids).await.map_err(|e| error::group_write(e, &fields.name))?;
                }
                repo::find_group_record(c, stored.id).await?.ok_or_else(|| Error::not_found("group", stored.id))
            })
            .await?;
        tracing::info!(group_id = record.group.id, "group updated");
        Ok(pb::UpdateGroupResponse { group: Some(convert::group(record)) })
    }

    async fn do_delete_group(&self, req: pb::DeleteGroupRequest) -> Result<pb::DeleteGroupResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
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
        Ok(pb::DeleteGroupResponse {})
    }

    async fn do_add_group_teacher(&self, req: pb::AddGroupTeacherRequest) -> Result<pb::AddGroupTeacherResponse> {
        let (group_id, teacher_id) = validate::group_teacher(req.group_id, req.teacher_id)?;
        let mut conn = self.conn().await?;
        let record = conn
            .transaction::<_, Error, _>(async move |c| {
                repo::lock_group(c, group_id).await?.ok_or_else(|| Error::not_found("group", group_id))?;
                check_teachers(c, "teacher_id", &[teacher_id]).await?;
                repo::insert_group_teacher(c, group_id, teacher_id)
                    .await
                    .map_err(|e| error::group_teacher_insert(e, group_id, teacher_id))?;
                repo::find_group_record(c, group_id).await?.ok_or_else(|| Error::not_found("group", group_id))
            })
            .await?;
        tracing::info!(group_id, teacher_id, "group teacher added");
        Ok(pb::AddGroupTeacherResponse { group: Some(convert::group(record)) })
    }

    async fn do_remove_group_teacher(
        &self,
        req: pb::RemoveGroupTeacherRequest,
    ) -> Result<pb::RemoveGroupTeacherResponse> {
        let (group_id, teacher_id) = validate::group_teacher(req.group_id, req.teacher_id)?;
        let mut conn = self.conn().await?;
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
        Ok(pb::RemoveGroupTeacherResponse { group: Some(convert::group(record)) })
    }

    // ---- substitutions ----------------------------------------------------------------

    async fn do_create_substitution(
        &self,
        req: pb::CreateSubstitutionRequest,
    ) -> Result<pb::CreateSubstitutionResponse> {
        let fields = validate::create_substitution(req, today())?;
        let mut conn = self.conn().await?;
        let row = create_substitution(&mut conn, fields).await?;
        tracing::info!(substitution_id = row.id, group_id = row.group_id, "substitution created");
        Ok(pb::CreateSubstitutionResponse { substitution: Some(one_substitution(&mut conn, row).await?) })
    }

    async fn do_get_substitution(&self, req: pb::GetSubstitutionRequest) -> Result<pb::GetSubstitutionResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        let row = repo::find_substitution(&mut conn, id).await?.ok_or_else(|| Error::not_found("substitution", id))?;
        Ok(pb::GetSubstitutionResponse { substitution: Some(one_substitution(&mut conn, row).await?) })
    }

    async fn do_list_substitutions(&self, req: pb::ListSubstitutionsRequest) -> Result<pb::ListSubstitutionsResponse> {
        let (filter, page) = validate::list_substitutions(req)?;
        let mut conn = self.conn().await?;
        let total_size = repo::count_substitutions(&mut conn, &filter).await?;
        let rows = repo::list_substitutions(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |s| s.id.to_string());
        let substitutions = substitution_view(&mut conn, rows).await?;
        Ok(pb::ListSubstitutionsResponse { substitutions, next_page_token, total_size })
    }

    async fn do_update_substitution(
        &self,
        req: pb::UpdateSubstitutionRequest,
    ) -> Result<pb::UpdateSubstitutionResponse> {
        let update = validate::update_substitution(req)?;
        let today = today();
        let mut conn = self.conn().await?;
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
                let fields = update.apply(stored.fields(), today)?;
                if fields.substitute_staff_id != stored.substitute_staff_id {
                    check_staff(c, "substitution.substitute_staff_id", fields.substitute_staff_id).await?;
                }
                if let Some(r) = fields.regular_staff_id.filter(|r| Some(*r) != stored.regular_staff_id) {
                    check_staff(c, "substitution.regular_staff_id", r).await?;
                }
                check_overlaps(c, &fields, Some(id)).await?;
                repo::write_substitution(c, id, &fields).await.map_err(error::substitution_write)
            })
            .await?;
        tracing::info!(substitution_id = row.id, "substitution updated");
        Ok(pb::UpdateSubstitutionResponse { substitution: Some(one_substitution(&mut conn, row).await?) })
    }

    async fn do_delete_substitution(
        &self,
        req: pb::DeleteSubstitutionRequest,
    ) -> Result<pb::DeleteSubstitutionResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |c| {
            if repo::delete_substitution(c, id).await? { Ok(()) } else { Err(Error::not_found("substitution", id)) }
        })
        .await?;
        tracing::info!(substitution_id = id, "substitution deleted");
        Ok(pb::DeleteSubstitutionResponse {})
    }

    // ---- transfers and my groups ------------------------------------------------------

    async fn do_transfer(&self, caller: Caller, req: pb::TransferGroupRequest) -> Result<pb::TransferGroupResponse> {
        let (group_id, target) = validate::transfer(req)?;
        let today = today();
        let mut conn = self.conn().await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                repo::lock_group(c, group_id).await?.ok_or_else(|| Error::not_found("group", group_id))?;
                let me = require_leader(c, &caller, group_id).await?;
                if target == me {
                    return Err(Error::invalid("target_staff_id", "must be someone else than you"));
                }
                check_staff(c, "target_staff_id", target).await?;
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
                check_overlaps(c, &fields, None).await?;
                repo::insert_substitution(c, &fields).await.map_err(error::substitution_write)
            })
            .await?;
        tracing::info!(substitution_id = row.id, group_id, "group transferred for today");
        Ok(pb::TransferGroupResponse { transfer: Some(one_substitution(&mut conn, row).await?) })
    }

    async fn do_cancel_transfer(
        &self,
        caller: Caller,
        req: pb::CancelTransferRequest,
    ) -> Result<pb::CancelTransferResponse> {
        let (group_id, substitution_id) = validate::cancel_transfer(req)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |c| {
            repo::lock_group(c, group_id).await?.ok_or_else(|| Error::not_found("group", group_id))?;
            require_leader(c, &caller, group_id).await?;
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
        Ok(pb::CancelTransferResponse {})
    }

    async fn do_list_my_groups(&self, caller: Caller) -> Result<pb::ListMyGroupsResponse> {
        let Some(staff_id) = caller.staff_id else {
            return Err(Error::precondition("NOT_STAFF", "the caller is not linked to a staff record"));
        };
        let mut conn = self.conn().await?;
        let entries = access::my_groups(&mut conn, staff_id, today()).await?;
        // Each group once: leading wins over substituting.
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
        let mut rows = Vec::new();
        for g in &order {
            if let Some(row) = repo::find_group(&mut conn, *g).await? {
                rows.push(row);
            }
        }
        let groups = repo::group_records(&mut conn, rows)
            .await?
            .into_iter()
            .map(|r| {
                let (role, substitution_id) = match via.get(&r.group.id) {
                    Some(MyGroupVia::Substitute { substitution_id }) => {
                        (pb::MyGroupRole::Substitute, Some(*substitution_id))
                    }
                    _ => (pb::MyGroupRole::Leader, None),
                };
                pb::MyGroup { group: Some(convert::group(r)), role: role as i32, substitution_id }
            })
            .collect();
        Ok(pb::ListMyGroupsResponse { groups })
    }
}

#[tonic::async_trait]
impl EducationService for Education {
    async fn create_group(
        &self,
        r: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::CreateGroupResponse>, Status> {
        Ok(Response::new(self.do_create_group(r.into_inner()).await?))
    }

    async fn get_group(&self, r: Request<pb::GetGroupRequest>) -> Result<Response<pb::GetGroupResponse>, Status> {
        Ok(Response::new(self.do_get_group(r.into_inner()).await?))
    }

    async fn list_groups(&self, r: Request<pb::ListGroupsRequest>) -> Result<Response<pb::ListGroupsResponse>, Status> {
        Ok(Response::new(self.do_list_groups(r.into_inner()).await?))
    }

    async fn update_group(
        &self,
        r: Request<pb::UpdateGroupRequest>,
    ) -> Result<Response<pb::UpdateGroupResponse>, Status> {
        Ok(Response::new(self.do_update_group(r.into_inner()).await?))
    }

    async fn delete_group(
        &self,
        r: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        Ok(Response::new(self.do_delete_group(r.into_inner()).await?))
    }

    async fn add_group_teacher(
        &self,
        r: Request<pb::AddGroupTeacherRequest>,
    ) -> Result<Response<pb::AddGroupTeacherResponse>, Status> {
        Ok(Response::new(self.do_add_group_teacher(r.into_inner()).await?))
    }

    async fn remove_group_teacher(
        &self,
        r: Request<pb::RemoveGroupTeacherRequest>,
    ) -> Result<Response<pb::RemoveGroupTeacherResponse>, Status> {
        Ok(Response::new(self.do_remove_group_teacher(r.into_inner()).await?))
    }

    async fn create_substitution(
        &self,
        r: Request<pb::CreateSubstitutionRequest>,
    ) -> Result<Response<pb::CreateSubstitutionResponse>, Status> {
        Ok(Response::new(self.do_create_substitution(r.into_inner()).await?))
    }

    async fn get_substitution(
        &self,
        r: Request<pb::GetSubstitutionRequest>,
    ) -> Result<Response<pb::GetSubstitutionResponse>, Status> {
        Ok(Response::new(self.do_get_substitution(r.into_inner()).await?))
    }

    async fn list_substitutions(
        &self,
        r: Request<pb::ListSubstitutionsRequest>,
    ) -> Result<Response<pb::ListSubstitutionsResponse>, Status> {
        Ok(Response::new(self.do_list_substitutions(r.into_inner()).await?))
    }

    async fn update_substitution(
        &self,
        r: Request<pb::UpdateSubstitutionRequest>,
    ) -> Result<Response<pb::UpdateSubstitutionResponse>, Status> {
        Ok(Response::new(self.do_update_substitution(r.into_inner()).await?))
    }

    async fn delete_substitution(
        &self,
        r: Request<pb::DeleteSubstitutionRequest>,
    ) -> Result<Response<pb::DeleteSubstitutionResponse>, Status> {
        Ok(Response::new(self.do_delete_substitution(r.into_inner()).await?))
    }

    async fn transfer_group(
        &self,
        r: Request<pb::TransferGroupRequest>,
    ) -> Result<Response<pb::TransferGroupResponse>, Status> {
        let caller = Caller::of(&r, &self.pool).await?;
        Ok(Response::new(self.do_transfer(caller, r.into_inner()).await?))
    }

    async fn cancel_transfer(
        &self,
        r: Request<pb::CancelTransferRequest>,
    ) -> Result<Response<pb::CancelTransferResponse>, Status> {
        let caller = Caller::of(&r, &self.pool).await?;
        Ok(Response::new(self.do_cancel_transfer(caller, r.into_inner()).await?))
    }

    async fn list_my_groups(
        &self,
        r: Request<pb::ListMyGroupsRequest>,
    ) -> Result<Response<pb::ListMyGroupsResponse>, Status> {
        let caller = Caller::of(&r, &self.pool).await?;
        Ok(Response::new(self.do_list_my_groups(caller).await?))
    }
}
