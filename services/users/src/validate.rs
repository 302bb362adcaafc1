//! Requests → typed commands, before any I/O.
//! Every violation names the request field (`student.school_class`); all are reported at once.

use chrono::{NaiveDate, Utc};
use phoenix_common::page::PageRequest;
use phoenix_common::validate::{
    Update, finish, optional_id, optional_text, page, parse_date, required, required_id, required_text, update,
};
use phoenix_common::{FieldViolations, Result};
use phoenix_proto::users::v1 as pb;

use crate::repo::{PersonFields, PersonFilter, StaffFilter, StudentFields, StudentFilter, TeacherFields};

pub mod care;
pub mod family;

/// Updatable fields of a person.
pub const PERSON_FIELDS: &[&str] = &["first_name", "last_name", "birthday", "account_id"];
/// Updatable fields of a staff member.
pub const STAFF_FIELDS: &[&str] = &["staff_notes", "is_teacher", "specialization", "role", "qualifications"];
/// Updatable fields of a student.
pub const STUDENT_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "birthday",
    "school_class",
    "group_id",
    "extra_info",
    "supervisor_notes",
    "health_info",
    "pickup_status",
    "bus",
    "sick",
];

/// Normalises an RFID tag as read by a reader or typed by a person: trim, drop `:`, `-` and
/// whitespace, upper-case; then it must be 8–64 hex digits (the `users.rfid_cards` CHECK).
pub fn normalize_tag(raw: &str) -> std::result::Result<String, String> {
    let tag: String =
        raw.trim().chars().filter(|c| !matches!(c, ':' | '-') && !c.is_whitespace()).collect::<String>().to_uppercase();
    if !(8..=64).contains(&tag.len()) {
        return Err(format!("must be 8–64 hex digits after removing separators, got {} characters", tag.len()));
    }
    if !tag.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("must contain only hex digits 0-9, A-F (and the separators `:`, `-`, spaces)".into());
    }
    Ok(tag)
}

/// A tag field: normalised, or a violation on `field`.
pub fn tag(field: &str, raw: &str, v: &mut FieldViolations) -> Option<String> {
    match normalize_tag(raw) {
        Ok(t) => Some(t),
        Err(e) => {
            v.add(field, e);
            None
        }
    }
}

fn birthday(field: &str, raw: &Option<String>, v: &mut FieldViolations) -> Option<NaiveDate> {
    let raw = optional_text(raw.clone())?;
    let date = parse_date(field, &raw, v)?;
    if date > Utc::now().date_naive() {
        v.add(field, format!("must not be in the future, got {raw}"));
    }
    Some(date)
}

// ---- persons --------------------------------------------------------------------------

fn set_person(prefix: &str, p: &PersonInput<'_>, paths: &[&str], f: &mut PersonFields, v: &mut FieldViolations) {
    for path in paths {
        match *path {
            "first_name" => f.first_name = required_text(&format!("{prefix}.first_name"), p.first_name, v),
            "last_name" => f.last_name = required_text(&format!("{prefix}.last_name"), p.last_name, v),
            "birthday" => f.birthday = birthday(&format!("{prefix}.birthday"), p.birthday, v),
            "account_id" => f.account_id = optional_id(&format!("{prefix}.account_id"), p.account_id, v),
            _ => {}
        }
    }
}

/// The person fields of a Person or Student message.
struct PersonInput<'a> {
    first_name: &'a str,
    last_name: &'a str,
    birthday: &'a Option<String>,
    account_id: Option<i64>,
}

/// A new person and the tag to assign them.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPerson {
    /// Columns.
    pub fields: PersonFields,
    /// Normalised tag to assign, if any.
    pub tag: Option<String>,
}

/// CreatePerson → new person.
pub fn create_person(req: pb::CreatePersonRequest) -> Result<NewPerson> {
    let p = required("person", req.person)?;
    let mut v = FieldViolations::default();
    let mut fields = PersonFields::default();
    let input = PersonInput {
        first_name: &p.first_name,
        last_name: &p.last_name,
        birthday: &p.birthday,
        account_id: p.account_id,
    };
    set_person("person", &input, PERSON_FIELDS, &mut fields, &mut v);
    let tag = optional_text(p.tag_id.clone()).and_then(|t| tag("person.tag_id", &t, &mut v));
    v.into_result()?;
    Ok(NewPerson { fields, tag })
}

/// UpdatePerson → id + mask.
pub fn update_person(req: pb::UpdatePersonRequest) -> Result<Update<pb::Person>> {
    let p = required("person", req.person)?;
    update("person.id", p.id, p, req.update_mask.as_ref(), PERSON_FIELDS)
}

/// The stored person fields with the masked changes of `u` applied.
pub fn apply_person(u: &Update<pb::Person>, mut f: PersonFields) -> Result<PersonFields> {
    let p = &u.message;
    let mut v = FieldViolations::default();
    let input = PersonInput {
        first_name: &p.first_name,
        last_name: &p.last_name,
        birthday: &p.birthday,
        account_id: p.account_id,
    };
    set_person("person", &input, &u.paths, &mut f, &mut v);
    v.into_result()?;
    Ok(f)
}

/// ListPersons → filter + page.
pub fn list_persons(req: pb::ListPersonsRequest) -> Result<(PersonFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let filter = PersonFilter {
        first_name: optional_text(req.first_name),
        last_name: optional_text(req.last_name),
        tag_id: optional_text(req.tag_id).and_then(|t| tag("tag_id", &t, &mut v)),
        account_id: optional_id("account_id", req.account_id, &mut v),
    };
    let page = page("persons", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    let page = finish(v, page)?;
    Ok((filter, page))
}

// ---- staff ----------------------------------------------------------------------------

/// Who a new staff member is.
#[derive(Debug, Clone, PartialEq)]
pub enum StaffPerson {
    /// An existing person.
    Existing(i64),
    /// A new person with these names.
    New(PersonFields),
}

/// A new staff member.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStaff {
    /// Their person.
    pub person: StaffPerson,
    /// Internal notes.
    pub notes: Option<String>,
    /// The teacher record to create, if a teacher.
    pub teacher: Option<TeacherFields>,
}

fn teacher_fields(s: &pb::Staff) -> TeacherFields {
    TeacherFields {
        specialization: optional_text(s.specialization.clone()),
        role: optional_text(s.role.clone()),
        qualifications: optional_text(s.qualifications.clone()),
    }
}

/// CreateStaff → new staff member.
pub fn create_staff(req: pb::CreateStaffRequest) -> Result<NewStaff> {
    let s = required("staff", req.staff)?;
    let mut v = FieldViolations::default();
    let names_given = !s.first_name.trim().is_empty() || !s.last_name.trim().is_empty();
    let person = match (s.person_id, names_given) {
        (0, _) => {
            let mut f = PersonFields::default();
            let input =
                PersonInput { first_name: &s.first_name, last_name: &s.last_name, birthday: &None, account_id: None };
            set_person("staff", &input, &["first_name", "last_name"], &mut f, &mut v);
            StaffPerson::New(f)
        }
        (id, false) => StaffPerson::Existing(required_id("staff.person_id", id, &mut v)),
        (_, true) => {
            v.add(
                "staff.person_id",
                "give either person_id (an existing person) or first_name and last_name (a new one)",
            );
            StaffPerson::Existing(0)
        }
    };
    let notes = optional_text(s.staff_notes.clone());
    let teacher = s.is_teacher.then(|| teacher_fields(&s));
    v.into_result()?;
    Ok(NewStaff { person, notes, teacher })
}

/// UpdateStaff → id + mask.
pub fn update_staff(req: pb::UpdateStaffRequest) -> Result<Update<pb::Staff>> {
    let s = required("staff", req.staff)?;
    update("staff.id", s.id, s, req.update_mask.as_ref(), STAFF_FIELDS)
}

/// The writable state of a staff member (notes + optional teacher record).
#[derive(Debug, Clone, PartialEq)]
pub struct StaffState {
    /// Internal notes.
    pub notes: Option<String>,
    /// Teacher record fields, when a teacher.
    pub teacher: Option<TeacherFields>,
}

/// The stored staff state with the masked changes of `u` applied.
pub fn apply_staff(u: &Update<pb::Staff>, mut state: StaffState) -> StaffState {
    let s = &u.message;
    let incoming = teacher_fields(s);
    for path in &u.paths {
        match *path {
            "staff_notes" => state.notes = optional_text(s.staff_notes.clone()),
            "is_teacher" => {
                state.teacher = match (s.is_teacher, state.teacher.take()) {
                    (true, Some(t)) => Some(t),
                    (true, None) => Some(TeacherFields::default()),
                    (false, _) => None,
                }
            }
            _ => {}
        }
    }
    // Teacher fields apply to the (possibly new) teacher record; on a non-teacher they
    // have nothing to apply to and are ignored.
    if let Some(t) = state.teacher.as_mut() {
        for path in &u.paths {
            match *path {
                "specialization" => t.specialization = incoming.specialization.clone(),
                "role" => t.role = incoming.role.clone(),
                "qualifications" => t.qualifications = incoming.qualifications.clone(),
                _ => {}
            }
        }
    }
    state
}

/// ListStaff → filter + page.
pub fn list_staff(req: pb::ListStaffRequest) -> Result<(StaffFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let filter = StaffFilter {
        first_name: optional_text(req.first_name),
        last_name: optional_text(req.last_name),
        teachers_only: req.teachers_only,
    };
    let page = page("staff", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    let page = finish(v, page)?;
    Ok((filter, page))
}

// ---- students -------------------------------------------------------------------------

/// A new student with their person.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStudent {
    /// The new person.
    pub person: NewPerson,
    /// The student columns.
    pub student: StudentFields,
}

fn set_student(s: &pb::Student, paths: &[&str], p: &mut PersonFields, f: &mut StudentFields, v: &mut FieldViolations) {
    let input =
        PersonInput { first_name: &s.first_name, last_name: &s.last_name, birthday: &s.birthday, account_id: None };
    for path in paths {
        match *path {
            "first_name" | "last_name" | "birthday" => set_person("student", &input, &[path], p, v),
            "school_class" => f.school_class = required_text("student.school_class", &s.school_class, v),
            "group_id" => f.group_id = optional_id("student.group_id", s.group_id, v),
            "extra_info" => f.extra_info = optional_text(s.extra_info.clone()),
            "supervisor_notes" => f.supervisor_notes = optional_text(s.supervisor_notes.clone()),
            "health_info" => f.health_info = optional_text(s.health_info.clone()),
            "pickup_status" => f.pickup_status = optional_text(s.pickup_status.clone()),
            "bus" => f.bus = s.bus,
            "sick" => {
                // `sick` drives `sick_since`: stamped when it becomes true, kept while it
                // stays true, cleared with it.
                let sick = s.sick.unwrap_or(false);
                f.sick_since = match (sick, f.sick_since) {
                    (true, Some(since)) if f.sick => Some(since),
                    (true, _) => Some(Utc::now()),
                    (false, _) => None,
                };
                f.sick = sick;
            }
            _ => {}
        }
    }
}

/// CreateStudent → new student with person.
pub fn create_student(req: pb::CreateStudentRequest) -> Result<NewStudent> {
    let s = required("student", req.student)?;
    let mut v = FieldViolations::default();
    let mut person = PersonFields::default();
    let mut student = StudentFields::default();
    set_student(&s, STUDENT_FIELDS, &mut person, &mut student, &mut v);
    let tag = optional_text(s.tag_id.clone()).and_then(|t| tag("student.tag_id", &t, &mut v));
    v.into_result()?;
    Ok(NewStudent { person: NewPerson { fields: person, tag }, student })
}

/// UpdateStudent → id + mask.
pub fn update_student(req: pb::UpdateStudentRequest) -> Result<Update<pb::Student>> {
    let s = required("student", req.student)?;
    update("student.id", s.id, s, req.update_mask.as_ref(), STUDENT_FIELDS)
}

/// The stored person and student fields with the masked changes of `u` applied.
pub fn apply_student(
    u: &Update<pb::Student>,
    mut p: PersonFields,
    mut f: StudentFields,
) -> Result<(PersonFields, StudentFields)> {
    let mut v = FieldViolations::default();
    set_student(&u.message, &u.paths, &mut p, &mut f, &mut v);
    v.into_result()?;
    Ok((p, f))
}

/// Whether the student update `u` touches the person row.
pub fn touches_person(u: &Update<pb::Student>) -> bool {
    u.paths.iter().any(|p| matches!(*p, "first_name" | "last_name" | "birthday"))
}

/// ListStudents → filter + page.
pub fn list_students(req: pb::ListStudentsRequest) -> Result<(StudentFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let filter = StudentFilter {
        group_id: optional_id("group_id", req.group_id, &mut v),
        school_class: optional_text(req.school_class),
        first_name: optional_text(req.first_name),
        last_name: optional_text(req.last_name),
        guardian_name: optional_text(req.guardian_name),
        search: optional_text(req.search),
        include_inactive: req.include_inactive,
    };
    let page = page("students", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    let page = finish(v, page)?;
    Ok((filter, page))
}

// ---- cards ----------------------------------------------------------------------------

/// AssignRfidCard → (person, normalised tag).
pub fn assign_card(req: pb::AssignRfidCardRequest) -> Result<(i64, String)> {
    let mut v = FieldViolations::default();
    let person = required_id("person_id", req.person_id, &mut v);
    let t = tag("tag_id", &req.tag_id, &mut v);
    finish(v, t).map(|t| (person, t))
}

/// A tag addressing a card.
pub fn card_tag(raw: &str) -> Result<String> {
    let mut v = FieldViolations::default();
    let t = tag("tag_id", raw, &mut v);
    finish(v, t)
}

/// ListUnassignedRfidCards → page.
pub fn list_cards(req: pb::ListUnassignedRfidCardsRequest) -> Result<PageRequest> {
    PageRequest::parse("unassigned_cards", "", req.page_size, &req.page_token)
}

#[cfg(test)]
mod tests {

    use phoenix_common::validate::fields_of;

    use super::*;

    #[test]
    fn tags_are_normalised() {
        assert_eq!(normalize_tag(" 04:a1-b2 c3:d4 ").unwrap(), "04A1B2C3D4");
        assert_eq!(normalize_tag("deadbeef").unwrap(), "DEADBEEF");
        assert_eq!(normalize_tag(&"a".repeat(64)).unwrap().len(), 64);
    }

    #[test]
    fn tags_must_be_8_to_64_hex_digits() {
        for bad in ["", "1234567", "04:A1:B2", &"A".repeat(65), "0123456G", "04A1B2C3_D4"] {
            assert!(normalize_tag(bad).is_err(), "{bad:?}");
        }
    }

    fn student(first: &str, class: &str) -> pb::Student {
        pb::Student {
            first_name: first.into(),
            last_name: "Muster".into(),
            school_class: class.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_student_needs_names_and_a_class_and_valid_optional_fields() {
        let req = pb::CreateStudentRequest {
            student: Some(pb::Student {
                birthday: Some("31.01.2017".into()),
                tag_id: Some("xyz".into()),
                group_id: Some(-3),
                ..student(" ", " ")
            }),
        };
        let mut got = fields_of(create_student(req).unwrap_err());
        got.sort();
        assert_eq!(
            got,
            ["student.birthday", "student.first_name", "student.group_id", "student.school_class", "student.tag_id"]
        );
    }

    #[test]
    fn a_birthday_in_the_future_is_rejected() {
        let tomorrow = (Utc::now().date_naive() + chrono::Days::new(2)).format("%Y-%m-%d").to_string();
        let req =
            pb::CreateStudentRequest { student: Some(pb::Student { birthday: Some(tomorrow), ..student("A", "1a") }) };
        assert_eq!(fields_of(create_student(req).unwrap_err()), ["student.birthday"]);
    }

    #[test]
    fn a_new_student_is_trimmed_and_sick_is_stamped() {
        let req = pb::CreateStudentRequest {
            student: Some(pb::Student {
                sick: Some(true),
                health_info: Some("  ".into()),
                tag_id: Some("04:aa:bb:cc".into()),
                ..student(" Mia ", " 3b ")
            }),
        };
        let s = create_student(req).unwrap();
        assert_eq!((s.person.fields.first_name.as_str(), s.student.school_class.as_str()), ("Mia", "3b"));
        assert_eq!(s.person.tag.as_deref(), Some("04AABBCC"));
        assert!(s.student.sick && s.student.sick_since.is_some());
        assert_eq!(s.student.health_info, None);
    }

    #[test]
    fn sick_since_is_kept_while_sick_and_cleared_with_it() {
        let since = Utc::now() - chrono::Duration::days(2);
        let stored =
            StudentFields { sick: true, sick_since: Some(since), school_class: "1a".into(), ..Default::default() };
        let mk = |sick| pb::UpdateStudentRequest {
            student: Some(pb::Student { id: 1, sick, ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["sick".into()] }),
        };
        let (_, f) =
            apply_student(&update_student(mk(Some(true))).unwrap(), PersonFields::default(), stored.clone()).unwrap();
        assert_eq!(f.sick_since, Some(since));
        let (_, f) = apply_student(&update_student(mk(Some(false))).unwrap(), PersonFields::default(), stored).unwrap();
        assert_eq!((f.sick, f.sick_since), (false, None));
    }

    #[test]
    fn staff_take_either_a_person_or_names() {
        let both = pb::CreateStaffRequest {
            staff: Some(pb::Staff { person_id: 4, first_name: "A".into(), ..Default::default() }),
        };
        assert_eq!(fields_of(create_staff(both).unwrap_err()), ["staff.person_id"]);
        let neither = pb::CreateStaffRequest { staff: Some(pb::Staff::default()) };
        assert_eq!(fields_of(create_staff(neither).unwrap_err()), ["staff.first_name", "staff.last_name"]);
        let existing =
            create_staff(pb::CreateStaffRequest { staff: Some(pb::Staff { person_id: 4, ..Default::default() }) })
                .unwrap();
        assert_eq!(existing.person, StaffPerson::Existing(4));
        assert_eq!(existing.teacher, None);
    }

    #[test]
    fn demoting_a_teacher_drops_the_teacher_fields() {
        let u = update_staff(pb::UpdateStaffRequest {
            staff: Some(pb::Staff { id: 1, is_teacher: false, role: Some("x".into()), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["is_teacher".into(), "role".into()] }),
        })
        .unwrap();
        let state = apply_staff(&u, StaffState { notes: None, teacher: Some(TeacherFields::default()) });
        assert_eq!(state.teacher, None);
    }
}
