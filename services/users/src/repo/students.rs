//! `users.students` with their person, group name, guardian contacts and group teachers.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::convert::{like_contains, like_prefix};
use phoenix_common::{Error, Result};
use phoenix_db::schema::users::{
    guardian_phone_numbers, guardians, persons, staff, student_guardians, students, teachers,
};
use phoenix_db::schema::{active, education, facilities};

use super::persons::Person;

/// A `users.students` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = students, check_for_backend(Pg))]
pub struct StudentRow {
    /// Primary key.
    pub id: i64,
    /// The person.
    pub person_id: i64,
    /// Class.
    pub school_class: String,
    /// Education group.
    pub group_id: Option<i64>,
    /// Notes for supervisors.
    pub extra_info: Option<String>,
    /// Notes by supervisors.
    pub supervisor_notes: Option<String>,
    /// Health information.
    pub health_info: Option<String>,
    /// Free-text pickup status.
    pub pickup_status: Option<String>,
    /// Goes by bus.
    pub bus: bool,
    /// Reported sick.
    pub sick: bool,
    /// Since when.
    pub sick_since: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// When the student left (deactivated).
    pub deactivated_at: Option<DateTime<Utc>>,
}

/// The writable columns of a student (insert and masked update).
#[derive(Debug, Clone, Default, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = students, treat_none_as_null = true)]
pub struct StudentFields {
    /// Trimmed class.
    pub school_class: String,
    /// Education group.
    pub group_id: Option<i64>,
    /// Notes for supervisors.
    pub extra_info: Option<String>,
    /// Notes by supervisors.
    pub supervisor_notes: Option<String>,
    /// Health information.
    pub health_info: Option<String>,
    /// Free-text pickup status.
    pub pickup_status: Option<String>,
    /// Goes by bus.
    pub bus: bool,
    /// Reported sick.
    pub sick: bool,
    /// Since when (kept while sick stays set).
    pub sick_since: Option<DateTime<Utc>>,
}

impl StudentRow {
    /// The writable part of the row.
    pub fn fields(&self) -> StudentFields {
        StudentFields {
            school_class: self.school_class.clone(),
            group_id: self.group_id,
            extra_info: self.extra_info.clone(),
            supervisor_notes: self.supervisor_notes.clone(),
            health_info: self.health_info.clone(),
            pickup_status: self.pickup_status.clone(),
            bus: self.bus,
            sick: self.sick,
            sick_since: self.sick_since,
        }
    }
}

/// A student with their person and group name.
#[derive(Debug, Clone, PartialEq)]
pub struct StudentRecord {
    /// The student row.
    pub student: StudentRow,
    /// Their person.
    pub person: Person,
    /// Their group's name.
    pub group_name: Option<String>,
}

/// Filters of a student listing; its `Debug` form fingerprints page tokens.
#[derive(Debug, Clone, Default)]
pub struct StudentFilter {
    /// Exact group.
    pub group_id: Option<i64>,
    /// Part of the class, case-insensitive.
    pub school_class: Option<String>,
    /// Start of the first name, case-insensitive.
    pub first_name: Option<String>,
    /// Start of the last name, case-insensitive.
    pub last_name: Option<String>,
    /// Part of a guardian's first, last or full name, case-insensitive.
    pub guardian_name: Option<String>,
    /// Part of the first, last or full name, or the exact student id.
    pub search: Option<String>,
    /// Also deactivated students.
    pub include_inactive: bool,
}

/// A guardian of a student with their phone numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardianContact {
    /// `users.guardians` id.
    pub guardian_id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// parent, guardian, relative, other.
    pub relationship_type: String,
    /// Primary guardian.
    pub is_primary: bool,
    /// Emergency contact.
    pub is_emergency_contact: bool,
    /// May pick up.
    pub can_pickup: bool,
    /// E-mail.
    pub email: Option<String>,
    /// Phone numbers, primary first.
    pub phone_numbers: Vec<String>,
}

/// A teacher of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Supervisor {
    /// Staff id.
    pub staff_id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
}

type Joined = (StudentRow, Person, Option<String>);

fn record((student, person, group_name): Joined) -> StudentRecord {
    StudentRecord { student, person, group_name }
}

type Source = diesel::dsl::LeftJoin<diesel::dsl::InnerJoin<students::table, persons::table>, education::groups::table>;

fn joined() -> Source {
    students::table.inner_join(persons::table).left_join(education::groups::table)
}

fn filtered(f: &StudentFilter) -> diesel::dsl::IntoBoxed<'static, Source, Pg> {
    let mut q = joined().into_boxed();
    if !f.include_inactive {
        q = q.filter(students::deactivated_at.is_null());
    }
    if let Some(g) = f.group_id {
        q = q.filter(students::group_id.eq(g));
    }
    if let Some(c) = &f.school_class {
        q = q.filter(students::school_class.ilike(like_contains(c)));
    }
    if let Some(n) = &f.first_name {
        q = q.filter(persons::first_name.ilike(like_prefix(n)));
    }
    if let Some(n) = &f.last_name {
        q = q.filter(persons::last_name.ilike(like_prefix(n)));
    }
    if let Some(g) = &f.guardian_name {
        let pattern = like_contains(g);
        let with_guardian = student_guardians::table
            .inner_join(guardians::table)
            .filter(
                guardians::first_name
                    .ilike(pattern.clone())
                    .or(guardians::last_name.ilike(pattern.clone()))
                    .or(guardians::first_name.concat(" ").concat(guardians::last_name).ilike(pattern)),
            )
            .select(student_guardians::student_id);
        q = q.filter(students::id.eq_any(with_guardian));
    }
    if let Some(s) = &f.search {
        let pattern = like_contains(s);
        let by_name = persons::first_name
            .ilike(pattern.clone())
            .or(persons::last_name.ilike(pattern.clone()))
            .or(persons::first_name.concat(" ").concat(persons::last_name).ilike(pattern));
        q = match s.trim().parse::<i64>() {
            Ok(id) => q.filter(by_name.or(students::id.eq(id))),
            Err(_) => q.filter(by_name),
        };
    }
    q
}

/// Inserts the student row of `person_id`.
pub async fn insert_student(
    conn: &mut AsyncPgConnection,
    person_id: i64,
    f: &StudentFields,
) -> QueryResult<StudentRow> {
    diesel::insert_into(students::table)
        .values((students::person_id.eq(person_id), f))
        .returning(StudentRow::as_returning())
        .get_result(conn)
        .await
}

/// Student `id` with person and group name.
pub async fn find_student(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<StudentRecord>> {
    let row: Option<Joined> = joined()
        .filter(students::id.eq(id))
        .select((StudentRow::as_select(), Person::as_select(), education::groups::name.nullable()))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(record))
}

/// The student of person `person_id`, if the person is one.
pub async fn student_of_person(conn: &mut AsyncPgConnection, person_id: i64) -> Result<Option<StudentRow>> {
    Ok(students::table
        .filter(students::person_id.eq(person_id))
        .select(StudentRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Student row `id`, locked until the transaction ends.
pub async fn lock_student(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<StudentRow>> {
    Ok(students::table.find(id).select(StudentRow::as_select()).for_update().first(conn).await.optional()?)
}

/// Writes the writable columns of student `id`.
pub async fn write_student(conn: &mut AsyncPgConnection, id: i64, f: &StudentFields) -> QueryResult<()> {
    diesel::update(students::table.find(id)).set(f).execute(conn).await?;
    Ok(())
}

/// Sets or clears the deactivation time of student `id`.
pub async fn set_deactivated(conn: &mut AsyncPgConnection, id: i64, at: Option<DateTime<Utc>>) -> Result<()> {
    diesel::update(students::table.find(id)).set(students::deactivated_at.eq(at)).execute(conn).await?;
    Ok(())
}

/// One page of students by id.
pub async fn list_students(
    conn: &mut AsyncPgConnection,
    filter: &StudentFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<StudentRecord>> {
    let rows: Vec<Joined> = filtered(filter)
        .filter(students::id.gt(after.unwrap_or(0)))
        .order(students::id)
        .limit(limit)
        .select((StudentRow::as_select(), Person::as_select(), education::groups::name.nullable()))
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(record).collect())
}

/// Number of students matching `filter`.
pub async fn count_students(conn: &mut AsyncPgConnection, filter: &StudentFilter) -> Result<i64> {
    Ok(filtered(filter).count().get_result(conn).await?)
}

/// Whether education group `id` exists.
pub async fn group_exists(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(education::groups::table.find(id))).get_result(conn).await?)
}

/// The group of each of `student_ids` (students that do not exist are left out).
pub async fn groups_of(conn: &mut AsyncPgConnection, student_ids: &[i64]) -> Result<HashMap<i64, Option<i64>>> {
    if student_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, Option<i64>)> = students::table
        .filter(students::id.eq_any(student_ids))
        .select((students::id, students::group_id))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Checks a student's group reference: it must exist.
pub async fn check_group(conn: &mut AsyncPgConnection, group_id: Option<i64>) -> Result<()> {
    if let Some(g) = group_id
        && !group_exists(conn, g).await?
    {
        return Err(Error::invalid("student.group_id", format!("group {g} does not exist")));
    }
    Ok(())
}

/// Guardians of each of `student_ids`: primary first, then by emergency priority.
pub async fn guardian_contacts(
    conn: &mut AsyncPgConnection,
    student_ids: &[i64],
) -> Result<HashMap<i64, Vec<GuardianContact>>> {
    use guardian_phone_numbers as ph;
    use student_guardians as sg;
    let mut out: HashMap<i64, Vec<GuardianContact>> = HashMap::new();
    if student_ids.is_empty() {
        return Ok(out);
    }
    #[allow(clippy::type_complexity)]
    let links: Vec<(i64, i64, String, String, String, bool, bool, bool, Option<String>)> = sg::table
        .inner_join(guardians::table)
        .filter(sg::student_id.eq_any(student_ids))
        .order((sg::student_id, sg::is_primary.desc(), sg::emergency_priority, sg::guardian_id))
        .select((
            sg::student_id,
            guardians::id,
            guardians::first_name,
            guardians::last_name,
            sg::relationship_type,
            sg::is_primary,
            sg::is_emergency_contact,
            sg::can_pickup,
            guardians::email,
        ))
        .load(conn)
        .await?;
    let guardian_ids: Vec<i64> = links.iter().map(|l| l.1).collect();
    let phones: Vec<(i64, String)> = ph::table
        .filter(ph::guardian_id.eq_any(&guardian_ids))
        .order((ph::guardian_id, ph::is_primary.desc(), ph::priority, ph::id))
        .select((ph::guardian_id, ph::phone_number))
        .load(conn)
        .await?;
    let mut phones_of: HashMap<i64, Vec<String>> = HashMap::new();
    for (g, number) in phones {
        phones_of.entry(g).or_default().push(number);
    }
    for (student_id, guardian_id, first_name, last_name, relationship_type, is_primary, emergency, pickup, email) in
        links
    {
        out.entry(student_id).or_default().push(GuardianContact {
            guardian_id,
            first_name,
            last_name,
            relationship_type,
            is_primary,
            is_emergency_contact: emergency,
            can_pickup: pickup,
            email,
            phone_numbers: phones_of.get(&guardian_id).cloned().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Teachers of each of `group_ids`, by staff id.
pub async fn group_supervisors(
    conn: &mut AsyncPgConnection,
    group_ids: &[i64],
) -> Result<HashMap<i64, Vec<Supervisor>>> {
    use education::group_teacher as gt;
    let mut out: HashMap<i64, Vec<Supervisor>> = HashMap::new();
    if group_ids.is_empty() {
        return Ok(out);
    }
    let rows: Vec<(i64, i64, String, String)> = gt::table
        .inner_join(teachers::table.inner_join(staff::table.inner_join(persons::table)))
        .filter(gt::group_id.eq_any(group_ids))
        .order((gt::group_id, staff::id))
        .select((gt::group_id, staff::id, persons::first_name, persons::last_name))
        .load(conn)
        .await?;
    for (group_id, staff_id, first_name, last_name) in rows {
        out.entry(group_id).or_default().push(Supervisor { staff_id, first_name, last_name });
    }
    Ok(out)
}

/// Where a pupil is on a school day: an open visit (in a room), else today's attendance
/// (open: in transit, closed: gone home), else absent.
#[derive(Debug, Clone, PartialEq)]
pub enum Presence {
    /// No attendance that day.
    Absent,
    /// An open visit in a running room session.
    InRoom {
        /// The room.
        room_id: i64,
        /// Its name.
        room_name: String,
        /// Entry time.
        since: DateTime<Utc>,
    },
    /// Arrived, no open visit.
    InTransit {
        /// Arrival.
        since: DateTime<Utc>,
    },
    /// Checked out for the day.
    GoneHome {
        /// Check-out.
        since: DateTime<Utc>,
    },
}

/// The presence rule, pure: an open visit wins; else the day's attendance decides.
pub fn presence(
    open_visit: Option<(i64, String, DateTime<Utc>)>,
    attendance: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
) -> Presence {
    match (open_visit, attendance) {
        (Some((room_id, room_name, since)), _) => Presence::InRoom { room_id, room_name, since },
        (None, Some((_, Some(out)))) => Presence::GoneHome { since: out },
        (None, Some((arrived, None))) => Presence::InTransit { since: arrived },
        (None, None) => Presence::Absent,
    }
}

/// Presence of each of `student_ids` on school day `today` (read from the `active` schema).
pub async fn presences(
    conn: &mut AsyncPgConnection,
    student_ids: &[i64],
    today: NaiveDate,
) -> Result<HashMap<i64, Presence>> {
    use active::{attendance as at, groups as ag, visits as av};
    if student_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let visits: Vec<(i64, i64, String, DateTime<Utc>)> = av::table
        .inner_join(ag::table.inner_join(facilities::rooms::table))
        .filter(av::student_id.eq_any(student_ids))
        .filter(av::exit_time.is_null())
        .filter(ag::end_time.is_null())
        .select((av::student_id, ag::room_id, facilities::rooms::name, av::entry_time))
        .load(conn)
        .await?;
    let days: Vec<(i64, DateTime<Utc>, Option<DateTime<Utc>>)> = at::table
        .filter(at::student_id.eq_any(student_ids))
        .filter(at::date.eq(today))
        .select((at::student_id, at::check_in_time, at::check_out_time))
        .load(conn)
        .await?;
    let mut visit_of: HashMap<i64, (i64, String, DateTime<Utc>)> =
        visits.into_iter().map(|(s, r, n, t)| (s, (r, n, t))).collect();
    let mut day_of: HashMap<i64, (DateTime<Utc>, Option<DateTime<Utc>>)> =
        days.into_iter().map(|(s, i, o)| (s, (i, o))).collect();
    Ok(student_ids.iter().map(|id| (*id, presence(visit_of.remove(id), day_of.remove(id)))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_visit_wins_then_the_days_attendance_decides() {
        let t = Utc::now();
        assert_eq!(presence(None, None), Presence::Absent);
        assert_eq!(presence(None, Some((t, None))), Presence::InTransit { since: t });
        assert_eq!(presence(None, Some((t, Some(t)))), Presence::GoneHome { since: t });
        assert_eq!(
            presence(Some((3, "Mensa".into(), t)), Some((t, None))),
            Presence::InRoom { room_id: 3, room_name: "Mensa".into(), since: t }
        );
    }
}
