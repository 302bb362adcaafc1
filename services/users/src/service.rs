//! The tonic handlers of `phoenix.users.v1.UsersService` and the transactional operations
//! behind them: validate → authorise (resource rules) → one transaction → repo → convert →
//! redact. Reads use no transaction.

use chrono::Utc;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::access::{self, Caller, StudentAccess};
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{DbConn, DbPool};
use phoenix_common::time::business_today;
use phoenix_common::{Error, Result};
use phoenix_proto::users::v1 as pb;
use phoenix_proto::users::v1::users_service_server::UsersService;
use tonic::{Request, Response, Status};

use crate::repo::{self, Card, StaffRecord, StudentRecord, cards, persons, staff, students};
use crate::validate::{self, NewPerson, NewStaff, NewStudent, StaffPerson, StaffState};
use crate::{convert, error, redact};

mod care;
mod family;

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
pub struct Users {
    pool: DbPool,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users").finish_non_exhaustive()
    }
}

impl Users {
    /// A service answering from `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    async fn conn(&self) -> Result<DbConn<'_>> {
        Ok(self.pool.get().await?)
    }
}

// ---- resource rules -------------------------------------------------------------------

/// The student modify rule (reference §1.2 PUT /students): full access, i.e. admin, or the
/// student's group is one of the caller's groups. Students without a group: admins only.
async fn require_full_access(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    student: &repo::students::StudentRow,
) -> Result<()> {
    match access::student_access_of(conn, caller, student.group_id).await? {
        StudentAccess::Full => Ok(()),
        StudentAccess::Limited => Err(Error::PermissionDenied(match student.group_id {
            None => format!("student {} has no group: only administrators can change them", student.id),
            Some(_) => format!("student {} is not in one of your groups (led or substituted today)", student.id),
        })),
    }
}

/// Changing a person who is a student is changing the student.
async fn require_person_modifiable(conn: &mut AsyncPgConnection, caller: &Caller, person_id: i64) -> Result<()> {
    match students::student_of_person(conn, person_id).await? {
        Some(student) => require_full_access(conn, caller, &student).await,
        None => Ok(()),
    }
}

/// Access of `caller` to the student `person_id` is, `None` if the person is no student.
async fn person_access(conn: &mut AsyncPgConnection, caller: &Caller, person_id: i64) -> Result<Option<StudentAccess>> {
    match students::student_of_person(conn, person_id).await? {
        Some(s) => Ok(Some(access::student_access_of(conn, caller, s.group_id).await?)),
        None => Ok(None),
    }
}

// ---- operations (one transaction each; also the demo school's code path) -------------------

/// What an assignment changed.
#[derive(Debug, Clone, PartialEq)]
pub struct TagMove {
    /// The card, now held by the person.
    pub card: Card,
    /// Who held it before.
    pub previous_person_id: Option<i64>,
    /// The card the person held before (now unassigned).
    pub previous_tag_id: Option<String>,
}

/// Assigns `tag` to `person` inside the caller's transaction: creates the card if new,
/// refuses an inactive card, takes it from its previous holder (who must be modifiable by
/// the caller), then links it. All or nothing with the surrounding transaction.
pub async fn assign_tag(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    person: &repo::Person,
    tag: &str,
) -> Result<TagMove> {
    cards::ensure_card(conn, tag).await?;
    // The row lock serialises concurrent assignments of the same card.
    let card = cards::lock_card(conn, tag).await?.ok_or_else(|| Error::not_found("rfid card", tag))?;
    if !card.active {
        return Err(Error::precondition("CARD_INACTIVE", format!("card {tag} is deactivated and cannot be assigned")));
    }
    let holder = cards::holder_of(conn, tag).await?;
    let previous_tag_id = person.tag_id.clone().filter(|t| t != tag);
    if holder == Some(person.id) {
        return Ok(TagMove { card, previous_person_id: None, previous_tag_id: None });
    }
    if let Some(h) = holder {
        require_person_modifiable(conn, caller, h).await?;
        cards::set_person_tag(conn, h, None).await.map_err(error::card_write)?;
    }
    cards::set_person_tag(conn, person.id, Some(tag)).await.map_err(error::card_write)?;
    Ok(TagMove { card, previous_person_id: holder, previous_tag_id })
}

async fn check_account(conn: &mut AsyncPgConnection, field: &str, account_id: Option<i64>) -> Result<()> {
    if let Some(a) = account_id
        && !persons::account_exists(conn, a).await?
    {
        return Err(Error::invalid(field, format!("account {a} does not exist")));
    }
    Ok(())
}

async fn check_group(conn: &mut AsyncPgConnection, group_id: Option<i64>) -> Result<()> {
    if let Some(g) = group_id
        && !students::group_exists(conn, g).await?
    {
        return Err(Error::invalid("student.group_id", format!("group {g} does not exist")));
    }
    Ok(())
}

/// Creates a person (and assigns their tag) in one transaction.
pub async fn create_person(conn: &mut AsyncPgConnection, caller: Caller, new: NewPerson) -> Result<repo::Person> {
    conn.transaction::<_, Error, _>(async move |c| {
        check_account(c, "person.account_id", new.fields.account_id).await?;
        let person = persons::insert_person(c, &new.fields).await.map_err(|e| error::person_write(e, "person"))?;
        if let Some(tag) = &new.tag {
            assign_tag(c, &caller, &person, tag).await?;
        }
        persons::find_person(c, person.id).await?.ok_or_else(|| Error::not_found("person", person.id))
    })
    .await
}

/// Creates a staff member (with a new person and teacher record as asked) in one transaction.
pub async fn create_staff(conn: &mut AsyncPgConnection, new: NewStaff) -> Result<StaffRecord> {
    conn.transaction::<_, Error, _>(async move |c| {
        let person_id = match &new.person {
            StaffPerson::Existing(id) => {
                persons::find_person(c, *id)
                    .await?
                    .ok_or_else(|| Error::invalid("staff.person_id", format!("person {id} does not exist")))?
                    .id
            }
            StaffPerson::New(fields) => {
                persons::insert_person(c, fields).await.map_err(|e| error::person_write(e, "staff"))?.id
            }
        };
        let row = staff::insert_staff(c, person_id, new.notes.as_deref())
            .await
            .map_err(|e| error::staff_insert(e, person_id))?;
        if let Some(t) = &new.teacher {
            staff::insert_teacher(c, row.id, t).await?;
        }
        staff::find_staff(c, row.id).await?.ok_or_else(|| Error::not_found("staff member", row.id))
    })
    .await
}

/// Creates a student with their person (and tag) in one transaction.
pub async fn create_student(conn: &mut AsyncPgConnection, caller: Caller, new: NewStudent) -> Result<StudentRecord> {
    conn.transaction::<_, Error, _>(async move |c| {
        check_group(c, new.student.group_id).await?;
        let person =
            persons::insert_person(c, &new.person.fields).await.map_err(|e| error::person_write(e, "student"))?;
        let row = students::insert_student(c, person.id, &new.student).await.map_err(error::student_write)?;
        if let Some(tag) = &new.person.tag {
            assign_tag(c, &caller, &person, tag).await?;
        }
        students::find_student(c, row.id).await?.ok_or_else(|| Error::not_found("student", row.id))
    })
    .await
}

/// A student as `caller` may see it: full record, then redacted to the caller's access.
async fn student_view(conn: &mut AsyncPgConnection, caller: &Caller, record: StudentRecord) -> Result<pb::Student> {
    let access = access::student_access_of(conn, caller, record.student.group_id).await?;
    let mut views = student_views(conn, vec![(record, access)]).await?;
    views.pop().ok_or_else(|| Error::not_found("student", "view"))
}

/// Converts and redacts `records`; guardian contacts are loaded only for full-access rows.
async fn student_views(
    conn: &mut AsyncPgConnection,
    records: Vec<(StudentRecord, StudentAccess)>,
) -> Result<Vec<pb::Student>> {
    let full_ids: Vec<i64> =
        records.iter().filter(|(_, a)| *a == StudentAccess::Full).map(|(r, _)| r.student.id).collect();
    let mut contacts = students::guardian_contacts(conn, &full_ids).await?;
    let mut group_ids: Vec<i64> = records.iter().filter_map(|(r, _)| r.student.group_id).collect();
    group_ids.sort_unstable();
    group_ids.dedup();
    let supervisors = students::group_supervisors(conn, &group_ids).await?;
    let ids: Vec<i64> = records.iter().map(|(r, _)| r.student.id).collect();
    let mut presences = students::presences(conn, &ids, business_today()).await?;
    Ok(records
        .into_iter()
        .map(|(r, a)| {
            let c = contacts.remove(&r.student.id).unwrap_or_default();
            let s = r.student.group_id.and_then(|g| supervisors.get(&g).cloned()).unwrap_or_default();
            let p = presences.remove(&r.student.id).unwrap_or(students::Presence::Absent);
            redact::student(convert::student(r, c, s, p), a)
        })
        .collect())
}

fn not_found_student(id: i64) -> Error {
    Error::not_found("student", id)
}

impl Users {
    // ---- persons ----------------------------------------------------------------------

    async fn do_create_person(&self, caller: Caller, req: pb::CreatePersonRequest) -> Result<pb::CreatePersonResponse> {
        let new = validate::create_person(req)?;
        let mut conn = self.conn().await?;
        let person = create_person(&mut conn, caller, new).await?;
        tracing::info!(person_id = person.id, "person created");
        Ok(pb::CreatePersonResponse { person: Some(convert::person(person)) })
    }

    async fn do_get_person(&self, caller: Caller, req: pb::GetPersonRequest) -> Result<pb::GetPersonResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        let person = persons::find_person(&mut conn, id).await?.ok_or_else(|| Error::not_found("person", id))?;
        let access = person_access(&mut conn, &caller, id).await?;
        Ok(pb::GetPersonResponse { person: Some(redact::person(convert::person(person), access)) })
    }

    async fn do_list_persons(&self, caller: Caller, req: pb::ListPersonsRequest) -> Result<pb::ListPersonsResponse> {
        let (filter, page) = validate::list_persons(req)?;
        let mut conn = self.conn().await?;
        let total_size = persons::count_persons(&mut conn, &filter).await?;
        let rows = persons::list_persons(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |p| p.id.to_string());
        let ids: Vec<i64> = rows.iter().map(|p| p.id).collect();
        let student_groups = persons::student_groups_of_persons(&mut conn, &ids).await?;
        let mine = access::my_group_ids(&mut conn, &caller, business_today()).await?;
        let persons = rows
            .into_iter()
            .map(|p| {
                let a = student_groups.get(&p.id).map(|g| access::student_access(&caller, *g, &mine));
                redact::person(convert::person(p), a)
            })
            .collect();
        Ok(pb::ListPersonsResponse { persons, next_page_token, total_size })
    }

    async fn do_update_person(&self, caller: Caller, req: pb::UpdatePersonRequest) -> Result<pb::UpdatePersonResponse> {
        let update = validate::update_person(req)?;
        let mut conn = self.conn().await?;
        let person = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored =
                    persons::lock_person(c, update.id).await?.ok_or_else(|| Error::not_found("person", update.id))?;
                require_person_modifiable(c, &caller, stored.id).await?;
                let fields = update.apply(stored.fields())?;
                if fields.account_id != stored.account_id {
                    check_account(c, "person.account_id", fields.account_id).await?;
                }
                persons::write_person(c, stored.id, &fields).await.map_err(|e| error::person_write(e, "person"))
            })
            .await?;
        tracing::info!(person_id = person.id, "person updated");
        Ok(pb::UpdatePersonResponse { person: Some(convert::person(person)) })
    }

    async fn do_delete_person(&self, req: pb::DeletePersonRequest) -> Result<pb::DeletePersonResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |c| {
            persons::lock_person(c, id).await?.ok_or_else(|| Error::not_found("person", id))?;
            if let Some(s) = students::student_of_person(c, id).await? {
                return Err(Error::precondition(
                    "PERSON_IS_STUDENT",
                    format!(
                        "person {id} is student {}: deactivate the student instead (erasure is a GDPR request)",
                        s.id
                    ),
                ));
            }
            persons::delete_person(c, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(person_id = id, "person deleted");
        Ok(pb::DeletePersonResponse {})
    }

    // ---- staff ------------------------------------------------------------------------

    async fn do_create_staff(&self, req: pb::CreateStaffRequest) -> Result<pb::CreateStaffResponse> {
        let new = validate::create_staff(req)?;
        let mut conn = self.conn().await?;
        let record = create_staff(&mut conn, new).await?;
        tracing::info!(staff_id = record.staff.id, "staff member created");
        Ok(pb::CreateStaffResponse { staff: Some(convert::staff(record)) })
    }

    async fn do_get_staff(&self, req: pb::GetStaffRequest) -> Result<pb::GetStaffResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        let record = staff::find_staff(&mut conn, id).await?.ok_or_else(|| Error::not_found("staff member", id))?;
        Ok(pb::GetStaffResponse { staff: Some(convert::staff(record)) })
    }

    async fn do_list_staff(&self, req: pb::ListStaffRequest) -> Result<pb::ListStaffResponse> {
        let (filter, page) = validate::list_staff(req)?;
        let mut conn = self.conn().await?;
        let total_size = staff::count_staff(&mut conn, &filter).await?;
        let rows = staff::list_staff(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.staff.id.to_string());
        Ok(pb::ListStaffResponse { staff: rows.into_iter().map(convert::staff).collect(), next_page_token, total_size })
    }

    async fn do_update_staff(&self, req: pb::UpdateStaffRequest) -> Result<pb::UpdateStaffResponse> {
        let update = validate::update_staff(req)?;
        let mut conn = self.conn().await?;
        let record = conn
            .transaction::<_, Error, _>(async move |c| {
                let id = update.id;
                if !staff::lock_staff(c, id).await? {
                    return Err(Error::not_found("staff member", id));
                }
                let stored = staff::find_staff(c, id).await?.ok_or_else(|| Error::not_found("staff member", id))?;
                let before = StaffState {
                    notes: stored.staff.staff_notes.clone(),
                    teacher: stored.teacher.as_ref().map(|t| repo::TeacherFields {
                        specialization: t.specialization.clone(),
                        role: t.role.clone(),
                        qualifications: t.qualifications.clone(),
                    }),
                };
                let after = update.apply(before.clone());
                if after.notes != before.notes {
                    staff::write_staff_notes(c, id, after.notes.as_deref()).await?;
                }
                match (&stored.teacher, &after.teacher) {
                    (Some(t), None) => {
                        // Removing the teacher record would silently drop group links.
                        if staff::groups_led(c, t.id).await? > 0 {
                            return Err(Error::precondition(
                                "TEACHER_LEADS_GROUPS",
                                format!("staff member {id} leads groups; remove them as group teacher first"),
                            ));
                        }
                        staff::delete_teacher(c, id).await?;
                    }
                    (None, Some(f)) => {
                        staff::insert_teacher(c, id, f).await?;
                    }
                    (Some(_), Some(f)) if Some(f) != before.teacher.as_ref() => {
                        staff::write_teacher(c, id, f).await?;
                    }
                    _ => {}
                }
                staff::find_staff(c, id).await?.ok_or_else(|| Error::not_found("staff member", id))
            })
            .await?;
        tracing::info!(staff_id = record.staff.id, "staff member updated");
        Ok(pb::UpdateStaffResponse { staff: Some(convert::staff(record)) })
    }

    async fn do_delete_staff(&self, req: pb::DeleteStaffRequest) -> Result<pb::DeleteStaffResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |c| {
            if staff::delete_staff(c, id).await? { Ok(()) } else { Err(Error::not_found("staff member", id)) }
        })
        .await?;
        tracing::info!(staff_id = id, "staff member deleted");
        Ok(pb::DeleteStaffResponse {})
    }

    // ---- students ---------------------------------------------------------------------

    async fn do_create_student(
        &self,
        caller: Caller,
        req: pb::CreateStudentRequest,
    ) -> Result<pb::CreateStudentResponse> {
        let new = validate::create_student(req)?;
        let mut conn = self.conn().await?;
        let record = create_student(&mut conn, caller, new).await?;
        tracing::info!(student_id = record.student.id, "student created");
        Ok(pb::CreateStudentResponse { student: Some(student_view(&mut conn, &caller, record).await?) })
    }

    async fn do_get_student(&self, caller: Caller, req: pb::GetStudentRequest) -> Result<pb::GetStudentResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        let record = students::find_student(&mut conn, id).await?.ok_or_else(|| not_found_student(id))?;
        Ok(pb::GetStudentResponse { student: Some(student_view(&mut conn, &caller, record).await?) })
    }

    async fn do_list_students(&self, caller: Caller, req: pb::ListStudentsRequest) -> Result<pb::ListStudentsResponse> {
        let (filter, page) = validate::list_students(req)?;
        let mut conn = self.conn().await?;
        let total_size = students::count_students(&mut conn, &filter).await?;
        let rows = students::list_students(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.student.id.to_string());
        let mine = access::my_group_ids(&mut conn, &caller, business_today()).await?;
        let with_access = rows
            .into_iter()
            .map(|r| {
                let a = access::student_access(&caller, r.student.group_id, &mine);
                (r, a)
            })
            .collect();
        let students = student_views(&mut conn, with_access).await?;
        Ok(pb::ListStudentsResponse { students, next_page_token, total_size })
    }

    async fn do_update_student(
        &self,
        caller: Caller,
        req: pb::UpdateStudentRequest,
    ) -> Result<pb::UpdateStudentResponse> {
        let update = validate::update_student(req)?;
        let mut conn = self.conn().await?;
        let record = conn
            .transaction::<_, Error, _>(async move |c| {
                let id = update.id;
                let stored = students::lock_student(c, id).await?.ok_or_else(|| not_found_student(id))?;
                require_full_access(c, &caller, &stored).await?;
                let person = persons::lock_person(c, stored.person_id)
                    .await?
                    .ok_or_else(|| Error::not_found("person", stored.person_id))?;
                let (person_fields, student_fields) = update.apply(person.fields(), stored.fields())?;
                if student_fields.group_id != stored.group_id {
                    check_group(c, student_fields.group_id).await?;
                }
                if update.touches_person() {
                    persons::write_person(c, person.id, &person_fields)
                        .await
                        .map_err(|e| error::person_write(e, "student"))?;
                }
                students::write_student(c, id, &student_fields).await.map_err(error::student_write)?;
                students::find_student(c, id).await?.ok_or_else(|| not_found_student(id))
            })
            .await?;
        tracing::info!(student_id = record.student.id, "student updated");
        Ok(pb::UpdateStudentResponse { student: Some(student_view(&mut conn, &caller, record).await?) })
    }

    async fn set_student_active(&self, caller: Caller, id: i64, active: bool) -> Result<pb::Student> {
        let mut conn = self.conn().await?;
        let record = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored = students::lock_student(c, id).await?.ok_or_else(|| not_found_student(id))?;
                require_full_access(c, &caller, &stored).await?;
                match (active, stored.deactivated_at.is_some()) {
                    (false, true) => {
                        return Err(Error::precondition(
                            "STUDENT_INACTIVE",
                            format!("student {id} is already deactivated"),
                        ));
                    }
                    (true, false) => {
                        return Err(Error::precondition("STUDENT_ACTIVE", format!("student {id} is active")));
                    }
                    (false, false) => {
                        students::set_deactivated(c, id, Some(Utc::now())).await?;
                        // A pupil who left holds no card: it goes back to the pool.
                        cards::set_person_tag(c, stored.person_id, None).await?;
                    }
                    (true, true) => students::set_deactivated(c, id, None).await?,
                }
                students::find_student(c, id).await?.ok_or_else(|| not_found_student(id))
            })
            .await?;
        tracing::info!(student_id = id, active, "student activation changed");
        student_view(&mut conn, &caller, record).await
    }

    // ---- cards ------------------------------------------------------------------------

    async fn do_assign_card(
        &self,
        caller: Caller,
        req: pb::AssignRfidCardRequest,
    ) -> Result<pb::AssignRfidCardResponse> {
        let (person_id, tag) = validate::assign_card(req)?;
        let mut conn = self.conn().await?;
        let moved = conn
            .transaction::<_, Error, _>(async move |c| {
                let person =
                    persons::lock_person(c, person_id).await?.ok_or_else(|| Error::not_found("person", person_id))?;
                require_person_modifiable(c, &caller, person_id).await?;
                assign_tag(c, &caller, &person, &tag).await
            })
            .await?;
        tracing::info!(person_id, previous_person_id = moved.previous_person_id, "rfid card assigned");
        Ok(pb::AssignRfidCardResponse {
            card: Some(convert::card(moved.card, Some(person_id))),
            previous_person_id: moved.previous_person_id,
            previous_tag_id: moved.previous_tag_id,
        })
    }

    async fn do_unassign_card(
        &self,
        caller: Caller,
        req: pb::UnassignRfidCardRequest,
    ) -> Result<pb::UnassignRfidCardResponse> {
        let person_id = validate::id("person_id", req.person_id)?;
        let mut conn = self.conn().await?;
        let card = conn
            .transaction::<_, Error, _>(async move |c| {
                let person =
                    persons::lock_person(c, person_id).await?.ok_or_else(|| Error::not_found("person", person_id))?;
                require_person_modifiable(c, &caller, person_id).await?;
                let Some(tag) = person.tag_id else {
                    return Err(Error::precondition("NO_CARD", format!("person {person_id} holds no RFID card")));
                };
                cards::set_person_tag(c, person_id, None).await?;
                cards::find_card(c, &tag).await?.map(|(card, _)| card).ok_or_else(|| Error::not_found("rfid card", tag))
            })
            .await?;
        tracing::info!(person_id, "rfid card unassigned");
        Ok(pb::UnassignRfidCardResponse { card: Some(convert::card(card, None)) })
    }

    async fn do_deactivate_card(
        &self,
        caller: Caller,
        req: pb::DeactivateRfidCardRequest,
    ) -> Result<pb::DeactivateRfidCardResponse> {
        let tag = validate::card_tag(&req.tag_id)?;
        let mut conn = self.conn().await?;
        let (card, holder) = conn
            .transaction::<_, Error, _>(async move |c| {
                let card = cards::lock_card(c, &tag).await?.ok_or_else(|| Error::not_found("rfid card", &tag))?;
                let holder = cards::holder_of(c, &tag).await?;
                if let Some(h) = holder {
                    require_person_modifiable(c, &caller, h).await?;
                }
                if !card.active {
                    return Err(Error::precondition("CARD_INACTIVE", format!("card {tag} is already deactivated")));
                }
                let card =
                    cards::set_card_active(c, &tag, false).await?.ok_or_else(|| Error::not_found("rfid card", &tag))?;
                Ok((card, holder))
            })
            .await?;
        tracing::info!(holder_person_id = holder, "rfid card deactivated");
        Ok(pb::DeactivateRfidCardResponse { card: Some(convert::card(card, holder)) })
    }

    async fn do_get_card(&self, caller: Caller, req: pb::GetRfidCardRequest) -> Result<pb::GetRfidCardResponse> {
        let tag = validate::card_tag(&req.tag_id)?;
        let mut conn = self.conn().await?;
        let (card, holder) =
            cards::find_card(&mut conn, &tag).await?.ok_or_else(|| Error::not_found("rfid card", &tag))?;
        // Who holds a pupil's tag is the pupil's tag: hidden like the tag itself.
        let holder = match holder {
            Some(h) if person_access(&mut conn, &caller, h).await? == Some(StudentAccess::Limited) => None,
            other => other,
        };
        Ok(pb::GetRfidCardResponse { card: Some(convert::card(card, holder)) })
    }

    async fn do_list_cards(
        &self,
        req: pb::ListUnassignedRfidCardsRequest,
    ) -> Result<pb::ListUnassignedRfidCardsResponse> {
        let page = validate::list_cards(req)?;
        let mut conn = self.conn().await?;
        let total_size = cards::count_unassigned(&mut conn).await?;
        let rows = cards::list_unassigned(&mut conn, page.after.as_deref(), page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |c| c.id.clone());
        Ok(pb::ListUnassignedRfidCardsResponse {
            cards: rows.into_iter().map(|c| convert::card(c, None)).collect(),
            next_page_token,
            total_size,
        })
    }
}

/// Runs a handler body with the caller of `request` (from the verified token).
macro_rules! with_caller {
    ($self:ident, $request:ident, $method:ident) => {{
        let caller = Caller::of(&$request, &$self.pool).await?;
        Ok(Response::new($self.$method(caller, $request.into_inner()).await?))
    }};
}

#[tonic::async_trait]
impl UsersService for Users {
    async fn create_person(
        &self,
        r: Request<pb::CreatePersonRequest>,
    ) -> Result<Response<pb::CreatePersonResponse>, Status> {
        with_caller!(self, r, do_create_person)
    }

    async fn get_person(&self, r: Request<pb::GetPersonRequest>) -> Result<Response<pb::GetPersonResponse>, Status> {
        with_caller!(self, r, do_get_person)
    }

    async fn list_persons(
        &self,
        r: Request<pb::ListPersonsRequest>,
    ) -> Result<Response<pb::ListPersonsResponse>, Status> {
        with_caller!(self, r, do_list_persons)
    }

    async fn update_person(
        &self,
        r: Request<pb::UpdatePersonRequest>,
    ) -> Result<Response<pb::UpdatePersonResponse>, Status> {
        with_caller!(self, r, do_update_person)
    }

    async fn delete_person(
        &self,
        r: Request<pb::DeletePersonRequest>,
    ) -> Result<Response<pb::DeletePersonResponse>, Status> {
        Ok(Response::new(self.do_delete_person(r.into_inner()).await?))
    }

    async fn create_staff(
        &self,
        r: Request<pb::CreateStaffRequest>,
    ) -> Result<Response<pb::CreateStaffResponse>, Status> {
        Ok(Response::new(self.do_create_staff(r.into_inner()).await?))
    }

    async fn get_staff(&self, r: Request<pb::GetStaffRequest>) -> Result<Response<pb::GetStaffResponse>, Status> {
        Ok(Response::new(self.do_get_staff(r.into_inner()).await?))
    }

    async fn list_staff(&self, r: Request<pb::ListStaffRequest>) -> Result<Response<pb::ListStaffResponse>, Status> {
        Ok(Response::new(self.do_list_staff(r.into_inner()).await?))
    }

    async fn update_staff(
        &self,
        r: Request<pb::UpdateStaffRequest>,
    ) -> Result<Response<pb::UpdateStaffResponse>, Status> {
        Ok(Response::new(self.do_update_staff(r.into_inner()).await?))
    }

    async fn delete_staff(
        &self,
        r: Request<pb::DeleteStaffRequest>,
    ) -> Result<Response<pb::DeleteStaffResponse>, Status> {
        Ok(Response::new(self.do_delete_staff(r.into_inner()).await?))
    }

    async fn create_student(
        &self,
        r: Request<pb::CreateStudentRequest>,
    ) -> Result<Response<pb::CreateStudentResponse>, Status> {
        with_caller!(self, r, do_create_student)
    }

    async fn get_student(&self, r: Request<pb::GetStudentRequest>) -> Result<Response<pb::GetStudentResponse>, Status> {
        with_caller!(self, r, do_get_student)
    }

    async fn list_students(
        &self,
        r: Request<pb::ListStudentsRequest>,
    ) -> Result<Response<pb::ListStudentsResponse>, Status> {
        with_caller!(self, r, do_list_students)
    }

    async fn update_student(
        &self,
        r: Request<pb::UpdateStudentRequest>,
    ) -> Result<Response<pb::UpdateStudentResponse>, Status> {
        with_caller!(self, r, do_update_student)
    }

    async fn deactivate_student(
        &self,
        r: Request<pb::DeactivateStudentRequest>,
    ) -> Result<Response<pb::DeactivateStudentResponse>, Status> {
        let caller = Caller::of(&r, &self.pool).await?;
        let id = validate::id("id", r.into_inner().id)?;
        let student = self.set_student_active(caller, id, false).await?;
        Ok(Response::new(pb::DeactivateStudentResponse { student: Some(student) }))
    }

    async fn reactivate_student(
        &self,
        r: Request<pb::ReactivateStudentRequest>,
    ) -> Result<Response<pb::ReactivateStudentResponse>, Status> {
        let caller = Caller::of(&r, &self.pool).await?;
        let id = validate::id("id", r.into_inner().id)?;
        let student = self.set_student_active(caller, id, true).await?;
        Ok(Response::new(pb::ReactivateStudentResponse { student: Some(student) }))
    }

    async fn assign_rfid_card(
        &self,
        r: Request<pb::AssignRfidCardRequest>,
    ) -> Result<Response<pb::AssignRfidCardResponse>, Status> {
        with_caller!(self, r, do_assign_card)
    }

    async fn unassign_rfid_card(
        &self,
        r: Request<pb::UnassignRfidCardRequest>,
    ) -> Result<Response<pb::UnassignRfidCardResponse>, Status> {
        with_caller!(self, r, do_unassign_card)
    }

    async fn deactivate_rfid_card(
        &self,
        r: Request<pb::DeactivateRfidCardRequest>,
    ) -> Result<Response<pb::DeactivateRfidCardResponse>, Status> {
        with_caller!(self, r, do_deactivate_card)
    }

    async fn get_rfid_card(
        &self,
        r: Request<pb::GetRfidCardRequest>,
    ) -> Result<Response<pb::GetRfidCardResponse>, Status> {
        with_caller!(self, r, do_get_card)
    }

    async fn list_unassigned_rfid_cards(
        &self,
        r: Request<pb::ListUnassignedRfidCardsRequest>,
    ) -> Result<Response<pb::ListUnassignedRfidCardsResponse>, Status> {
        Ok(Response::new(self.do_list_cards(r.into_inner()).await?))
    }

    async fn create_guardian(
        &self,
        r: Request<pb::CreateGuardianRequest>,
    ) -> Result<Response<pb::CreateGuardianResponse>, Status> {
        with_caller!(self, r, do_create_guardian)
    }

    async fn get_guardian(
        &self,
        r: Request<pb::GetGuardianRequest>,
    ) -> Result<Response<pb::GetGuardianResponse>, Status> {
        with_caller!(self, r, do_get_guardian)
    }

    async fn list_guardians(
        &self,
        r: Request<pb::ListGuardiansRequest>,
    ) -> Result<Response<pb::ListGuardiansResponse>, Status> {
        with_caller!(self, r, do_list_guardians)
    }

    async fn update_guardian(
        &self,
        r: Request<pb::UpdateGuardianRequest>,
    ) -> Result<Response<pb::UpdateGuardianResponse>, Status> {
        with_caller!(self, r, do_update_guardian)
    }

    async fn delete_guardian(
        &self,
        r: Request<pb::DeleteGuardianRequest>,
    ) -> Result<Response<pb::DeleteGuardianResponse>, Status> {
        with_caller!(self, r, do_delete_guardian)
    }

    async fn add_guardian_phone_number(
        &self,
        r: Request<pb::AddGuardianPhoneNumberRequest>,
    ) -> Result<Response<pb::AddGuardianPhoneNumberResponse>, Status> {
        with_caller!(self, r, do_add_phone)
    }

    async fn update_guardian_phone_number(
        &self,
        r: Request<pb::UpdateGuardianPhoneNumberRequest>,
    ) -> Result<Response<pb::UpdateGuardianPhoneNumberResponse>, Status> {
        with_caller!(self, r, do_update_phone)
    }

    async fn delete_guardian_phone_number(
        &self,
        r: Request<pb::DeleteGuardianPhoneNumberRequest>,
    ) -> Result<Response<pb::DeleteGuardianPhoneNumberResponse>, Status> {
        with_caller!(self, r, do_delete_phone)
    }

    async fn link_guardian(
        &self,
        r: Request<pb::LinkGuardianRequest>,
    ) -> Result<Response<pb::LinkGuardianResponse>, Status> {
        with_caller!(self, r, do_link_guardian)
    }

    async fn update_student_guardian(
        &self,
        r: Request<pb::UpdateStudentGuardianRequest>,
    ) -> Result<Response<pb::UpdateStudentGuardianResponse>, Status> {
        with_caller!(self, r, do_update_link)
    }

    async fn unlink_guardian(
        &self,
        r: Request<pb::UnlinkGuardianRequest>,
    ) -> Result<Response<pb::UnlinkGuardianResponse>, Status> {
        with_caller!(self, r, do_unlink_guardian)
    }

    async fn list_student_guardians(
        &self,
        r: Request<pb::ListStudentGuardiansRequest>,
    ) -> Result<Response<pb::ListStudentGuardiansResponse>, Status> {
        Ok(Response::new(self.do_list_links(r.into_inner()).await?))
    }

    async fn get_privacy_consent(
        &self,
        r: Request<pb::GetPrivacyConsentRequest>,
    ) -> Result<Response<pb::GetPrivacyConsentResponse>, Status> {
        with_caller!(self, r, do_get_consent)
    }

    async fn upsert_privacy_consent(
        &self,
        r: Request<pb::UpsertPrivacyConsentRequest>,
    ) -> Result<Response<pb::UpsertPrivacyConsentResponse>, Status> {
        with_caller!(self, r, do_upsert_consent)
    }

    async fn get_pickup_schedule(
        &self,
        r: Request<pb::GetPickupScheduleRequest>,
    ) -> Result<Response<pb::GetPickupScheduleResponse>, Status> {
        Ok(Response::new(self.do_get_pickup(r.into_inner()).await?))
    }

    async fn set_pickup_schedule(
        &self,
        r: Request<pb::SetPickupScheduleRequest>,
    ) -> Result<Response<pb::SetPickupScheduleResponse>, Status> {
        with_caller!(self, r, do_set_schedule)
    }

    async fn create_pickup_exception(
        &self,
        r: Request<pb::CreatePickupExceptionRequest>,
    ) -> Result<Response<pb::CreatePickupExceptionResponse>, Status> {
        with_caller!(self, r, do_create_exception)
    }

    async fn update_pickup_exception(
        &self,
        r: Request<pb::UpdatePickupExceptionRequest>,
    ) -> Result<Response<pb::UpdatePickupExceptionResponse>, Status> {
        with_caller!(self, r, do_update_exception)
    }

    async fn delete_pickup_exception(
        &self,
        r: Request<pb::DeletePickupExceptionRequest>,
    ) -> Result<Response<pb::DeletePickupExceptionResponse>, Status> {
        with_caller!(self, r, do_delete_exception)
    }

    async fn create_pickup_note(
        &self,
        r: Request<pb::CreatePickupNoteRequest>,
    ) -> Result<Response<pb::CreatePickupNoteResponse>, Status> {
        with_caller!(self, r, do_create_note)
    }

    async fn update_pickup_note(
        &self,
        r: Request<pb::UpdatePickupNoteRequest>,
    ) -> Result<Response<pb::UpdatePickupNoteResponse>, Status> {
        with_caller!(self, r, do_update_note)
    }

    async fn delete_pickup_note(
        &self,
        r: Request<pb::DeletePickupNoteRequest>,
    ) -> Result<Response<pb::DeletePickupNoteResponse>, Status> {
        with_caller!(self, r, do_delete_note)
    }
}
