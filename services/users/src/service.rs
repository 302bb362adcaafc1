//! Long because one tonic trait impl cannot be split across files: the 43 handlers of
//! `phoenix.users.v1.UsersService` (persons, staff, students, RFID cards, guardians, consents,
//! pickup), each reading validate → authorise the resource ([`crate::access`]) → one
//! transaction through [`crate::repo`] → convert (and [`crate::redact`]). Reads use no
//! transaction. Work longer than a screen lives in the domain modules ([`crate::students`],
//! [`crate::staff`], [`crate::cards`], [`crate::guardians`]).

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use phoenix_common::access::{self, Caller, StudentAccess};
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{self, DbPool};
use phoenix_common::time::business_today;
use phoenix_common::validate::id;
use phoenix_common::{Error, Reply};
use phoenix_proto::users::v1 as pb;
use phoenix_proto::users::v1::users_service_server::UsersService;
use tonic::{Request, Response};

use crate::access::{
    person_access, require_full_access, require_guardian_access, require_guardian_creator, require_login_admin,
    require_person_modifiable, require_student_readable, student_for_write,
};
use crate::validate::StaffPerson;
use crate::{cards, convert, error, guardians, redact, repo, staff, students, validate};

/// The permission each RPC needs (`resource:action`, seeded in the `seed_data` migration),
/// checked by the shared auth layer before the handler runs. Resource rules (student full
/// access) are checked by the handlers on top. Deactivation replaces deletion of pupils and
/// is an administrative act: `users:manage`.
pub const METHODS: MethodTable = &[
    ("/phoenix.users.v1.UsersService/CreatePerson", Requirement::Permission("users:create")),
    ("/phoenix.users.v1.UsersService/GetPerson", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/ListPersons", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/UpdatePerson", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/DeletePerson", Requirement::Permission("users:delete")),
    ("/phoenix.users.v1.UsersService/CreateStaff", Requirement::Permission("users:create")),
    ("/phoenix.users.v1.UsersService/GetStaff", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/ListStaff", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/UpdateStaff", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/DeleteStaff", Requirement::Permission("users:delete")),
    ("/phoenix.users.v1.UsersService/CreateStudent", Requirement::Permission("users:create")),
    ("/phoenix.users.v1.UsersService/GetStudent", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/ListStudents", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/UpdateStudent", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/DeactivateStudent", Requirement::Permission("users:manage")),
    ("/phoenix.users.v1.UsersService/ReactivateStudent", Requirement::Permission("users:manage")),
    ("/phoenix.users.v1.UsersService/AssignRfidCard", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/UnassignRfidCard", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/DeactivateRfidCard", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/GetRfidCard", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/ListUnassignedRfidCards", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/CreateGuardian", Requirement::Permission("users:create")),
    ("/phoenix.users.v1.UsersService/GetGuardian", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/ListGuardians", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/UpdateGuardian", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/DeleteGuardian", Requirement::Permission("users:delete")),
    ("/phoenix.users.v1.UsersService/AddGuardianPhoneNumber", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/UpdateGuardianPhoneNumber", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/DeleteGuardianPhoneNumber", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/LinkGuardian", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/UpdateStudentGuardian", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/UnlinkGuardian", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/ListStudentGuardians", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/GetPrivacyConsent", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/UpsertPrivacyConsent", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/GetPickupSchedule", Requirement::Permission("users:read")),
    ("/phoenix.users.v1.UsersService/SetPickupSchedule", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/CreatePickupException", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/UpdatePickupException", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/DeletePickupException", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/CreatePickupNote", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/UpdatePickupNote", Requirement::Permission("users:update")),
    ("/phoenix.users.v1.UsersService/DeletePickupNote", Requirement::Permission("users:update")),
];

/// The users service over a database pool.
#[derive(Clone)]
pub struct UsersApi {
    pool: DbPool,
}

impl std::fmt::Debug for UsersApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsersApi").finish_non_exhaustive()
    }
}

impl UsersApi {
    /// A service answering from `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

#[tonic::async_trait]
impl UsersService for UsersApi {
    // ---- persons ----------------------------------------------------------------------

    async fn create_person(&self, request: Request<pb::CreatePersonRequest>) -> Reply<pb::CreatePersonResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let new = validate::create_person(request.into_inner())?;
        if new.fields.account_id.is_some() {
            require_login_admin(&caller, "link a person to a login account")?;
        }
        let mut conn = db::conn(&self.pool).await?;
        let person = conn
            .transaction::<_, Error, _>(async move |c| {
                repo::persons::check_account(c, "person.account_id", new.fields.account_id).await?;
                let person =
                    repo::persons::insert_person(c, &new.fields).await.map_err(|e| error::person_write(e, "person"))?;
                if let Some(tag) = &new.tag {
                    cards::assign_tag(c, &caller, &person, tag).await?;
                }
                repo::persons::find_person(c, person.id).await?.ok_or_else(|| Error::not_found("person", person.id))
            })
            .await?;
        tracing::info!(person_id = person.id, "person created");
        Ok(Response::new(pb::CreatePersonResponse { person: Some(convert::person(person)) }))
    }

    async fn get_person(&self, request: Request<pb::GetPersonRequest>) -> Reply<pb::GetPersonResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let person = repo::persons::find_person(&mut conn, id).await?.ok_or_else(|| Error::not_found("person", id))?;
        let access = person_access(&mut conn, &caller, id).await?;
        Ok(Response::new(pb::GetPersonResponse { person: Some(redact::person(convert::person(person), access)) }))
    }

    async fn list_persons(&self, request: Request<pb::ListPersonsRequest>) -> Reply<pb::ListPersonsResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (filter, page) = validate::list_persons(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let total_size = repo::persons::count_persons(&mut conn, &filter).await?;
        let rows = repo::persons::list_persons(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |p| p.id.to_string());
        let ids: Vec<i64> = rows.iter().map(|p| p.id).collect();
        let student_groups = repo::persons::student_groups_of_persons(&mut conn, &ids).await?;
        let mine = access::my_group_ids(&mut conn, &caller, business_today()).await?;
        let mut persons = Vec::with_capacity(rows.len());
        let mut hidden = 0;
        for p in rows {
            let a = student_groups.get(&p.id).map(|g| access::student_access(&caller, *g, &mine));
            // Who holds a tag is the tag: a lookup by the tag of a student the caller may not
            // fully see finds nobody.
            if filter.tag_id.is_some() && a == Some(StudentAccess::Limited) {
                hidden += 1;
                continue;
            }
            persons.push(redact::person(convert::person(p), a));
        }
        Ok(Response::new(pb::ListPersonsResponse { persons, next_page_token, total_size: total_size - hidden }))
    }

    async fn update_person(&self, request: Request<pb::UpdatePersonRequest>) -> Reply<pb::UpdatePersonResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let update = validate::update_person(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let person = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored = repo::persons::lock_person(c, update.id)
                    .await?
                    .ok_or_else(|| Error::not_found("person", update.id))?;
                require_person_modifiable(c, &caller, stored.id).await?;
                let fields = validate::apply_person(&update, stored.fields())?;
                if fields.account_id != stored.account_id {
                    require_login_admin(&caller, "change the login account of a person")?;
                    repo::persons::check_account(c, "person.account_id", fields.account_id).await?;
                }
                repo::persons::write_person(c, stored.id, &fields).await.map_err(|e| error::person_write(e, "person"))
            })
            .await?;
        tracing::info!(person_id = person.id, "person updated");
        Ok(Response::new(pb::UpdatePersonResponse { person: Some(convert::person(person)) }))
    }

    async fn delete_person(&self, request: Request<pb::DeletePersonRequest>) -> Reply<pb::DeletePersonResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            repo::persons::lock_person(c, id).await?.ok_or_else(|| Error::not_found("person", id))?;
            if let Some(s) = repo::students::student_of_person(c, id).await? {
                return Err(Error::precondition(
                    "PERSON_IS_STUDENT",
                    format!(
                        "person {id} is student {}: deactivate the student instead (erasure is a GDPR request)",
                        s.id
                    ),
                ));
            }
            repo::persons::delete_person(c, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(person_id = id, "person deleted");
        Ok(Response::new(pb::DeletePersonResponse {}))
    }

    // ---- staff ------------------------------------------------------------------------

    async fn create_staff(&self, request: Request<pb::CreateStaffRequest>) -> Reply<pb::CreateStaffResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let new = validate::create_staff(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        if let StaffPerson::Existing(person_id) = new.person
            && !caller.is_admin
            && repo::persons::find_person(&mut conn, person_id).await?.is_some_and(|p| p.account_id.is_some())
        {
            require_login_admin(&caller, "make a person with a login account a staff member")?;
        }
        let record = staff::create_staff(&mut conn, new).await?;
        tracing::info!(staff_id = record.staff.id, "staff member created");
        let staff = redact::staff(convert::staff(record), caller.is_admin);
        Ok(Response::new(pb::CreateStaffResponse { staff: Some(staff) }))
    }

    async fn get_staff(&self, request: Request<pb::GetStaffRequest>) -> Reply<pb::GetStaffResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let record =
            repo::staff::find_staff(&mut conn, id).await?.ok_or_else(|| Error::not_found("staff member", id))?;
        Ok(Response::new(pb::GetStaffResponse { staff: Some(redact::staff(convert::staff(record), caller.is_admin)) }))
    }

    async fn list_staff(&self, request: Request<pb::ListStaffRequest>) -> Reply<pb::ListStaffResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (filter, page) = validate::list_staff(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let total_size = repo::staff::count_staff(&mut conn, &filter).await?;
        let rows = repo::staff::list_staff(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.staff.id.to_string());
        let staff = rows.into_iter().map(|r| redact::staff(convert::staff(r), caller.is_admin)).collect();
        Ok(Response::new(pb::ListStaffResponse { staff, next_page_token, total_size }))
    }

    async fn update_staff(&self, request: Request<pb::UpdateStaffRequest>) -> Reply<pb::UpdateStaffResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let update = validate::update_staff(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let record = staff::update_staff(&mut conn, update).await?;
        tracing::info!(staff_id = record.staff.id, "staff member updated");
        let staff = redact::staff(convert::staff(record), caller.is_admin);
        Ok(Response::new(pb::UpdateStaffResponse { staff: Some(staff) }))
    }

    async fn delete_staff(&self, request: Request<pb::DeleteStaffRequest>) -> Reply<pb::DeleteStaffResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            if repo::staff::delete_staff(c, id).await? { Ok(()) } else { Err(Error::not_found("staff member", id)) }
        })
        .await?;
        tracing::info!(staff_id = id, "staff member deleted");
        Ok(Response::new(pb::DeleteStaffResponse {}))
    }

    // ---- students ---------------------------------------------------------------------

    async fn create_student(&self, request: Request<pb::CreateStudentRequest>) -> Reply<pb::CreateStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let new = validate::create_student(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let record = students::create_student(&mut conn, caller, new).await?;
        tracing::info!(student_id = record.student.id, "student created");
        let student = students::view(&mut conn, &caller, record).await?;
        Ok(Response::new(pb::CreateStudentResponse { student: Some(student) }))
    }

    async fn get_student(&self, request: Request<pb::GetStudentRequest>) -> Reply<pb::GetStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let record =
            repo::students::find_student(&mut conn, id).await?.ok_or_else(|| Error::not_found("student", id))?;
        let student = students::view(&mut conn, &caller, record).await?;
        Ok(Response::new(pb::GetStudentResponse { student: Some(student) }))
    }

    async fn list_students(&self, request: Request<pb::ListStudentsRequest>) -> Reply<pb::ListStudentsResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (filter, page) = validate::list_students(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let total_size = repo::students::count_students(&mut conn, &filter).await?;
        let rows = repo::students::list_students(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.student.id.to_string());
        let mine = access::my_group_ids(&mut conn, &caller, business_today()).await?;
        let with_access = rows
            .into_iter()
            .map(|r| {
                let a = access::student_access(&caller, r.student.group_id, &mine);
                (r, a)
            })
            .collect();
        let students = students::views(&mut conn, with_access).await?;
        Ok(Response::new(pb::ListStudentsResponse { students, next_page_token, total_size }))
    }

    async fn update_student(&self, request: Request<pb::UpdateStudentRequest>) -> Reply<pb::UpdateStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let update = validate::update_student(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let record = conn
            .transaction::<_, Error, _>(async move |c| {
                let id = update.id;
                let stored =
                    repo::students::lock_student(c, id).await?.ok_or_else(|| Error::not_found("student", id))?;
                require_full_access(c, &caller, &stored).await?;
                let person = repo::persons::lock_person(c, stored.person_id)
                    .await?
                    .ok_or_else(|| Error::not_found("person", stored.person_id))?;
                let (person_fields, student_fields) =
                    validate::apply_student(&update, person.fields(), stored.fields())?;
                if student_fields.group_id != stored.group_id {
                    repo::students::check_group(c, student_fields.group_id).await?;
                }
                if validate::touches_person(&update) {
                    repo::persons::write_person(c, person.id, &person_fields)
                        .await
                        .map_err(|e| error::person_write(e, "student"))?;
                }
                repo::students::write_student(c, id, &student_fields).await.map_err(error::student_write)?;
                repo::students::find_student(c, id).await?.ok_or_else(|| Error::not_found("student", id))
            })
            .await?;
        tracing::info!(student_id = record.student.id, "student updated");
        let student = students::view(&mut conn, &caller, record).await?;
        Ok(Response::new(pb::UpdateStudentResponse { student: Some(student) }))
    }

    async fn deactivate_student(
        &self,
        request: Request<pb::DeactivateStudentRequest>,
    ) -> Reply<pb::DeactivateStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let record = students::set_active(&mut conn, caller, id, false).await?;
        tracing::info!(student_id = id, active = false, "student activation changed");
        let student = students::view(&mut conn, &caller, record).await?;
        Ok(Response::new(pb::DeactivateStudentResponse { student: Some(student) }))
    }

    async fn reactivate_student(
        &self,
        request: Request<pb::ReactivateStudentRequest>,
    ) -> Reply<pb::ReactivateStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let record = students::set_active(&mut conn, caller, id, true).await?;
        tracing::info!(student_id = id, active = true, "student activation changed");
        let student = students::view(&mut conn, &caller, record).await?;
        Ok(Response::new(pb::ReactivateStudentResponse { student: Some(student) }))
    }

    // ---- cards ------------------------------------------------------------------------

    async fn assign_rfid_card(&self, request: Request<pb::AssignRfidCardRequest>) -> Reply<pb::AssignRfidCardResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (person_id, tag) = validate::assign_card(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let moved = conn
            .transaction::<_, Error, _>(async move |c| {
                let person = repo::persons::lock_person(c, person_id)
                    .await?
                    .ok_or_else(|| Error::not_found("person", person_id))?;
                require_person_modifiable(c, &caller, person_id).await?;
                cards::assign_tag(c, &caller, &person, &tag).await
            })
            .await?;
        tracing::info!(person_id, previous_person_id = moved.previous_person_id, "rfid card assigned");
        Ok(Response::new(pb::AssignRfidCardResponse {
            card: Some(convert::card(moved.card, Some(person_id))),
            previous_person_id: moved.previous_person_id,
            previous_tag_id: moved.previous_tag_id,
        }))
    }

    async fn unassign_rfid_card(
        &self,
        request: Request<pb::UnassignRfidCardRequest>,
    ) -> Reply<pb::UnassignRfidCardResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let person_id = id("person_id", request.get_ref().person_id)?;
        let mut conn = db::conn(&self.pool).await?;
        let card = conn
            .transaction::<_, Error, _>(async move |c| {
                let person = repo::persons::lock_person(c, person_id)
                    .await?
                    .ok_or_else(|| Error::not_found("person", person_id))?;
                require_person_modifiable(c, &caller, person_id).await?;
                let Some(tag) = person.tag_id else {
                    return Err(Error::precondition("NO_CARD", format!("person {person_id} holds no RFID card")));
                };
                repo::cards::set_person_tag(c, person_id, None).await?;
                let card = repo::cards::find_card(c, &tag).await?.map(|(card, _)| card);
                card.ok_or_else(|| Error::not_found("rfid card", tag))
            })
            .await?;
        tracing::info!(person_id, "rfid card unassigned");
        Ok(Response::new(pb::UnassignRfidCardResponse { card: Some(convert::card(card, None)) }))
    }

    async fn deactivate_rfid_card(
        &self,
        request: Request<pb::DeactivateRfidCardRequest>,
    ) -> Reply<pb::DeactivateRfidCardResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let tag = validate::card_tag(&request.get_ref().tag_id)?;
        let mut conn = db::conn(&self.pool).await?;
        let (card, holder) = conn
            .transaction::<_, Error, _>(async move |c| {
                let card = repo::cards::lock_card(c, &tag).await?.ok_or_else(|| Error::not_found("rfid card", &tag))?;
                let holder = repo::cards::holder_of(c, &tag).await?;
                if let Some(h) = holder {
                    require_person_modifiable(c, &caller, h).await?;
                }
                if !card.active {
                    return Err(Error::precondition("CARD_INACTIVE", format!("card {tag} is already deactivated")));
                }
                let card = repo::cards::set_card_active(c, &tag, false)
                    .await?
                    .ok_or_else(|| Error::not_found("rfid card", &tag))?;
                Ok((card, holder))
            })
            .await?;
        tracing::info!(holder_person_id = holder, "rfid card deactivated");
        Ok(Response::new(pb::DeactivateRfidCardResponse { card: Some(convert::card(card, holder)) }))
    }

    async fn get_rfid_card(&self, request: Request<pb::GetRfidCardRequest>) -> Reply<pb::GetRfidCardResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let tag = validate::card_tag(&request.get_ref().tag_id)?;
        let mut conn = db::conn(&self.pool).await?;
        let (card, holder) =
            repo::cards::find_card(&mut conn, &tag).await?.ok_or_else(|| Error::not_found("rfid card", &tag))?;
        // Who holds a student's tag is the student's tag: hidden like the tag itself.
        let holder = match holder {
            Some(h) if person_access(&mut conn, &caller, h).await? == Some(StudentAccess::Limited) => None,
            other => other,
        };
        Ok(Response::new(pb::GetRfidCardResponse { card: Some(convert::card(card, holder)) }))
    }

    async fn list_unassigned_rfid_cards(
        &self,
        request: Request<pb::ListUnassignedRfidCardsRequest>,
    ) -> Reply<pb::ListUnassignedRfidCardsResponse> {
        let page = validate::list_cards(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let total_size = repo::cards::count_unassigned(&mut conn).await?;
        let rows = repo::cards::list_unassigned(&mut conn, page.after.as_deref(), page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |c| c.id.clone());
        Ok(Response::new(pb::ListUnassignedRfidCardsResponse {
            cards: rows.into_iter().map(|c| convert::card(c, None)).collect(),
            next_page_token,
            total_size,
        }))
    }

    // ---- guardians --------------------------------------------------------------------

    async fn create_guardian(&self, request: Request<pb::CreateGuardianRequest>) -> Reply<pb::CreateGuardianResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let fields = validate::family::create_guardian(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        require_guardian_creator(&mut conn, &caller).await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                repo::guardians::insert_guardian(c, &fields).await.map_err(error::guardian_write)
            })
            .await?;
        tracing::info!(guardian_id = row.id, "guardian created");
        Ok(Response::new(pb::CreateGuardianResponse { guardian: Some(convert::guardian(row, Vec::new())) }))
    }

    async fn get_guardian(&self, request: Request<pb::GetGuardianRequest>) -> Reply<pb::GetGuardianResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let row =
            repo::guardians::find_guardian(&mut conn, id).await?.ok_or_else(|| Error::not_found("guardian", id))?;
        let guardian = guardians::views(&mut conn, &caller, vec![row]).await?.pop();
        Ok(Response::new(pb::GetGuardianResponse { guardian }))
    }

    async fn list_guardians(&self, request: Request<pb::ListGuardiansRequest>) -> Reply<pb::ListGuardiansResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (filter, page) = validate::family::list_guardians(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        // A student's guardians are the student's guardian contacts: full access only.
        if let Some(sid) = filter.student_id
            && let Some(student) = repo::students::find_student(&mut conn, sid).await?
        {
            require_full_access(&mut conn, &caller, &student.student).await?;
        }
        let total_size = repo::guardians::count_guardians(&mut conn, &filter).await?;
        let rows = repo::guardians::list_guardians(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |g| g.id.to_string());
        let guardians = guardians::views(&mut conn, &caller, rows).await?;
        Ok(Response::new(pb::ListGuardiansResponse { guardians, next_page_token, total_size }))
    }

    async fn update_guardian(&self, request: Request<pb::UpdateGuardianRequest>) -> Reply<pb::UpdateGuardianResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let update = validate::family::update_guardian(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let guardian = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored = repo::guardians::lock_guardian(c, update.id)
                    .await?
                    .ok_or_else(|| Error::not_found("guardian", update.id))?;
                require_guardian_access(c, &caller, stored.id).await?;
                let fields = validate::family::apply_guardian(&update, stored.fields())?;
                repo::guardians::write_guardian(c, stored.id, &fields).await.map_err(error::guardian_write)?;
                guardians::full(c, stored.id).await
            })
            .await?;
        tracing::info!(guardian_id = guardian.id, "guardian updated");
        Ok(Response::new(pb::UpdateGuardianResponse { guardian: Some(guardian) }))
    }

    async fn delete_guardian(&self, request: Request<pb::DeleteGuardianRequest>) -> Reply<pb::DeleteGuardianResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            repo::guardians::lock_guardian(c, id).await?.ok_or_else(|| Error::not_found("guardian", id))?;
            require_guardian_access(c, &caller, id).await?;
            repo::guardians::delete_guardian(c, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(guardian_id = id, "guardian deleted");
        Ok(Response::new(pb::DeleteGuardianResponse {}))
    }

    async fn add_guardian_phone_number(
        &self,
        request: Request<pb::AddGuardianPhoneNumberRequest>,
    ) -> Reply<pb::AddGuardianPhoneNumberResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (guardian_id, fields) = validate::family::add_phone(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let guardian = conn
            .transaction::<_, Error, _>(async move |c| {
                repo::guardians::lock_guardian(c, guardian_id)
                    .await?
                    .ok_or_else(|| Error::not_found("guardian", guardian_id))?;
                require_guardian_access(c, &caller, guardian_id).await?;
                if fields.is_primary {
                    // At most one primary number: the service demotes the previous one
                    // (the original did it in a trigger).
                    repo::guardians::clear_primary_phone(c, guardian_id).await?;
                }
                repo::guardians::insert_phone(c, guardian_id, &fields).await.map_err(error::phone_write)?;
                guardians::full(c, guardian_id).await
            })
            .await?;
        tracing::info!(guardian_id, "guardian phone number added");
        Ok(Response::new(pb::AddGuardianPhoneNumberResponse { guardian: Some(guardian) }))
    }

    async fn update_guardian_phone_number(
        &self,
        request: Request<pb::UpdateGuardianPhoneNumberRequest>,
    ) -> Reply<pb::UpdateGuardianPhoneNumberResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let update = validate::family::update_phone(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let guardian = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored = repo::guardians::lock_phone(c, update.id)
                    .await?
                    .ok_or_else(|| Error::not_found("phone number", update.id))?;
                require_guardian_access(c, &caller, stored.guardian_id).await?;
                let fields = validate::family::apply_phone(&update, stored.fields())?;
                if fields.is_primary && !stored.is_primary {
                    repo::guardians::clear_primary_phone(c, stored.guardian_id).await?;
                }
                repo::guardians::write_phone(c, stored.id, &fields).await.map_err(error::phone_write)?;
                guardians::full(c, stored.guardian_id).await
            })
            .await?;
        tracing::info!(guardian_id = guardian.id, "guardian phone number updated");
        Ok(Response::new(pb::UpdateGuardianPhoneNumberResponse { guardian: Some(guardian) }))
    }

    async fn delete_guardian_phone_number(
        &self,
        request: Request<pb::DeleteGuardianPhoneNumberRequest>,
    ) -> Reply<pb::DeleteGuardianPhoneNumberResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            let stored =
                repo::guardians::lock_phone(c, id).await?.ok_or_else(|| Error::not_found("phone number", id))?;
            require_guardian_access(c, &caller, stored.guardian_id).await?;
            repo::guardians::delete_phone(c, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(phone_id = id, "guardian phone number deleted");
        Ok(Response::new(pb::DeleteGuardianPhoneNumberResponse {}))
    }

    async fn link_guardian(&self, request: Request<pb::LinkGuardianRequest>) -> Reply<pb::LinkGuardianResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (student_id, guardian_id, fields) = validate::family::link(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let link = conn
            .transaction::<_, Error, _>(async move |c| {
                student_for_write(c, &caller, student_id, || {
                    Error::invalid("link.student_id", format!("student {student_id} does not exist"))
                })
                .await?;
                if repo::guardians::find_guardian(c, guardian_id).await?.is_none() {
                    return Err(Error::invalid("link.guardian_id", format!("guardian {guardian_id} does not exist")));
                }
                if fields.is_primary {
                    repo::guardians::clear_primary_link(c, student_id).await?;
                }
                let id = repo::guardians::insert_link(c, student_id, guardian_id, &fields)
                    .await
                    .map_err(|e| error::link_write(e, student_id, guardian_id))?;
                repo::guardians::find_link(c, id).await?.ok_or_else(|| Error::not_found("link", id))
            })
            .await?;
        tracing::info!(link_id = link.0.id, student_id, guardian_id, "guardian linked");
        Ok(Response::new(pb::LinkGuardianResponse { link: Some(convert::link(link)) }))
    }

    async fn update_student_guardian(
        &self,
        request: Request<pb::UpdateStudentGuardianRequest>,
    ) -> Reply<pb::UpdateStudentGuardianResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let update = validate::family::update_link(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let link = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored = repo::guardians::lock_link(c, update.id)
                    .await?
                    .ok_or_else(|| Error::not_found("link", update.id))?;
                let sid = stored.student_id;
                student_for_write(c, &caller, sid, || Error::not_found("student", sid)).await?;
                let fields = validate::family::apply_link(&update, stored.fields())?;
                if fields.is_primary && !stored.is_primary {
                    repo::guardians::clear_primary_link(c, sid).await?;
                }
                repo::guardians::write_link(c, stored.id, &fields)
                    .await
                    .map_err(|e| error::link_write(e, sid, stored.guardian_id))?;
                repo::guardians::find_link(c, stored.id).await?.ok_or_else(|| Error::not_found("link", stored.id))
            })
            .await?;
        tracing::info!(link_id = link.0.id, "guardian link updated");
        Ok(Response::new(pb::UpdateStudentGuardianResponse { link: Some(convert::link(link)) }))
    }

    async fn unlink_guardian(&self, request: Request<pb::UnlinkGuardianRequest>) -> Reply<pb::UnlinkGuardianResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            let stored = repo::guardians::lock_link(c, id).await?.ok_or_else(|| Error::not_found("link", id))?;
            let sid = stored.student_id;
            student_for_write(c, &caller, sid, || Error::not_found("student", sid)).await?;
            repo::guardians::delete_link(c, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(link_id = id, "guardian unlinked");
        Ok(Response::new(pb::UnlinkGuardianResponse {}))
    }

    async fn list_student_guardians(
        &self,
        request: Request<pb::ListStudentGuardiansRequest>,
    ) -> Reply<pb::ListStudentGuardiansResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (student_id, guardian_id) = validate::family::list_links(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        if let Some(sid) = student_id
            && let Some(student) = repo::students::find_student(&mut conn, sid).await?
        {
            require_full_access(&mut conn, &caller, &student.student).await?;
        }
        if let Some(gid) = guardian_id
            && repo::guardians::find_guardian(&mut conn, gid).await?.is_some()
        {
            require_guardian_access(&mut conn, &caller, gid).await?;
        }
        let mut links = repo::guardians::list_links(&mut conn, student_id, guardian_id).await?;
        if !caller.is_admin {
            // A guardian's links to children outside the caller's groups stay hidden.
            let ids: Vec<i64> = links.iter().map(|l| l.0.student_id).collect();
            let groups = repo::students::groups_of(&mut conn, &ids).await?;
            let mine = access::my_group_ids(&mut conn, &caller, business_today()).await?;
            links.retain(|l| {
                let group = groups.get(&l.0.student_id).copied().flatten();
                access::student_access(&caller, group, &mine) == StudentAccess::Full
            });
        }
        Ok(Response::new(pb::ListStudentGuardiansResponse { links: links.into_iter().map(convert::link).collect() }))
    }

    // ---- consents and pickup ----------------------------------------------------------

    async fn get_privacy_consent(
        &self,
        request: Request<pb::GetPrivacyConsentRequest>,
    ) -> Reply<pb::GetPrivacyConsentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let student_id = id("student_id", request.get_ref().student_id)?;
        let mut conn = db::conn(&self.pool).await?;
        let student = repo::students::find_student(&mut conn, student_id)
            .await?
            .ok_or_else(|| Error::not_found("student", student_id))?;
        require_full_access(&mut conn, &caller, &student.student).await?;
        let consent = match repo::care::newest_accepted_consent(&mut conn, student_id).await? {
            Some(c) => convert::consent(c, Utc::now()),
            None => convert::default_consent(student_id),
        };
        Ok(Response::new(pb::GetPrivacyConsentResponse { consent: Some(consent) }))
    }

    async fn upsert_privacy_consent(
        &self,
        request: Request<pb::UpsertPrivacyConsentRequest>,
    ) -> Reply<pb::UpsertPrivacyConsentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let input = validate::care::upsert_consent(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                let id = input.student_id;
                // The student row lock also serialises concurrent upserts of one version.
                student_for_write(c, &caller, id, || Error::not_found("student", id)).await?;
                let stored = repo::care::lock_consent_of_version(c, id, &input.policy_version).await?;
                let fields = validate::care::consent_fields(&input, stored.as_ref(), Utc::now());
                match stored {
                    Some(s) => repo::care::write_consent(c, s.id, &fields).await,
                    None => repo::care::insert_consent(c, &fields).await,
                }
            })
            .await?;
        tracing::info!(
            student_id = row.student_id,
            consent_id = row.id,
            accepted = row.accepted,
            "privacy consent stored"
        );
        Ok(Response::new(pb::UpsertPrivacyConsentResponse { consent: Some(convert::consent(row, Utc::now())) }))
    }

    async fn get_pickup_schedule(
        &self,
        request: Request<pb::GetPickupScheduleRequest>,
    ) -> Reply<pb::GetPickupScheduleResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let student_id = id("student_id", request.get_ref().student_id)?;
        let mut conn = db::conn(&self.pool).await?;
        require_student_readable(&mut conn, &caller, student_id, || Error::not_found("student", student_id)).await?;
        let schedules = repo::care::schedules_of(&mut conn, student_id).await?;
        let exceptions = repo::care::exceptions_of(&mut conn, student_id).await?;
        let notes = repo::care::notes_of(&mut conn, student_id).await?;
        Ok(Response::new(pb::GetPickupScheduleResponse {
            schedules: schedules.into_iter().map(convert::schedule).collect(),
            exceptions: exceptions.into_iter().map(convert::exception).collect(),
            notes: notes.into_iter().map(convert::note).collect(),
        }))
    }

    async fn set_pickup_schedule(
        &self,
        request: Request<pb::SetPickupScheduleRequest>,
    ) -> Reply<pb::SetPickupScheduleResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (student_id, entries) = validate::care::set_schedule(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let rows = conn
            .transaction::<_, Error, _>(async move |c| {
                student_for_write(c, &caller, student_id, || Error::not_found("student", student_id)).await?;
                repo::care::replace_schedules(c, student_id, &entries, caller.staff_id).await?;
                repo::care::schedules_of(c, student_id).await
            })
            .await?;
        tracing::info!(student_id, "pickup schedule set");
        Ok(Response::new(pb::SetPickupScheduleResponse {
            schedules: rows.into_iter().map(convert::schedule).collect(),
        }))
    }

    async fn create_pickup_exception(
        &self,
        request: Request<pb::CreatePickupExceptionRequest>,
    ) -> Reply<pb::CreatePickupExceptionResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (student_id, fields) = validate::care::create_exception(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                student_for_write(c, &caller, student_id, || {
                    Error::invalid("exception.student_id", format!("student {student_id} does not exist"))
                })
                .await?;
                repo::care::insert_exception(c, student_id, &fields, caller.staff_id)
                    .await
                    .map_err(error::exception_write)
            })
            .await?;
        tracing::info!(student_id, exception_id = row.id, "pickup exception created");
        Ok(Response::new(pb::CreatePickupExceptionResponse { exception: Some(convert::exception(row)) }))
    }

    async fn update_pickup_exception(
        &self,
        request: Request<pb::UpdatePickupExceptionRequest>,
    ) -> Reply<pb::UpdatePickupExceptionResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let update = validate::care::update_exception(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored = repo::care::lock_exception(c, update.id)
                    .await?
                    .ok_or_else(|| Error::not_found("pickup exception", update.id))?;
                let sid = stored.student_id;
                student_for_write(c, &caller, sid, || Error::not_found("student", sid)).await?;
                let fields = validate::care::apply_exception(
                    &update,
                    repo::care::ExceptionFields {
                        exception_date: stored.exception_date,
                        pickup_time: stored.pickup_time,
                        reason: stored.reason.clone(),
                    },
                )?;
                repo::care::write_exception(c, stored.id, &fields).await.map_err(error::exception_write)
            })
            .await?;
        tracing::info!(exception_id = row.id, "pickup exception updated");
        Ok(Response::new(pb::UpdatePickupExceptionResponse { exception: Some(convert::exception(row)) }))
    }

    async fn delete_pickup_exception(
        &self,
        request: Request<pb::DeletePickupExceptionRequest>,
    ) -> Reply<pb::DeletePickupExceptionResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            let stored =
                repo::care::lock_exception(c, id).await?.ok_or_else(|| Error::not_found("pickup exception", id))?;
            let sid = stored.student_id;
            student_for_write(c, &caller, sid, || Error::not_found("student", sid)).await?;
            repo::care::delete_exception(c, id).await
        })
        .await?;
        tracing::info!(exception_id = id, "pickup exception deleted");
        Ok(Response::new(pb::DeletePickupExceptionResponse {}))
    }

    async fn create_pickup_note(
        &self,
        request: Request<pb::CreatePickupNoteRequest>,
    ) -> Reply<pb::CreatePickupNoteResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (student_id, fields) = validate::care::create_note(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                student_for_write(c, &caller, student_id, || {
                    Error::invalid("note.student_id", format!("student {student_id} does not exist"))
                })
                .await?;
                repo::care::insert_note(c, student_id, &fields, caller.staff_id).await
            })
            .await?;
        tracing::info!(student_id, note_id = row.id, "pickup note created");
        Ok(Response::new(pb::CreatePickupNoteResponse { note: Some(convert::note(row)) }))
    }

    async fn update_pickup_note(
        &self,
        request: Request<pb::UpdatePickupNoteRequest>,
    ) -> Reply<pb::UpdatePickupNoteResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let update = validate::care::update_note(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored = repo::care::lock_note(c, update.id)
                    .await?
                    .ok_or_else(|| Error::not_found("pickup note", update.id))?;
                let sid = stored.student_id;
                student_for_write(c, &caller, sid, || Error::not_found("student", sid)).await?;
                let stored_fields =
                    repo::care::NoteFields { note_date: stored.note_date, content: stored.content.clone() };
                let fields = validate::care::apply_note(&update, stored_fields)?;
                repo::care::write_note(c, stored.id, &fields).await
            })
            .await?;
        tracing::info!(note_id = row.id, "pickup note updated");
        Ok(Response::new(pb::UpdatePickupNoteResponse { note: Some(convert::note(row)) }))
    }

    async fn delete_pickup_note(
        &self,
        request: Request<pb::DeletePickupNoteRequest>,
    ) -> Reply<pb::DeletePickupNoteResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async move |c| {
            let stored = repo::care::lock_note(c, id).await?.ok_or_else(|| Error::not_found("pickup note", id))?;
            let sid = stored.student_id;
            student_for_write(c, &caller, sid, || Error::not_found("student", sid)).await?;
            repo::care::delete_note(c, id).await
        })
        .await?;
        tracing::info!(note_id = id, "pickup note deleted");
        Ok(Response::new(pb::DeletePickupNoteResponse {}))
    }
}
