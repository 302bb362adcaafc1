//! GDPR redaction, in one place (docs/access.md).
//!
//! A caller without full access to a student never receives the student's birthday, health
//! information (`health_info`, `sick`, `sick_since`), notes (`extra_info`,
//! `supervisor_notes`), guardian contacts or RFID tag. The fields are *absent* (proto3
//! `optional` / message fields), not empty strings, so a client cannot mistake "hidden" for
//! "none". Every handler that returns a student or a student's person goes through here.
//!
//! The functions destructure the message exhaustively: adding a field to `Student` or
//! `Person` does not compile until it is classified here as visible or sensitive. Staff
//! members' internal notes are for administrators only ([`staff`]).

use phoenix_common::access::StudentAccess;
use phoenix_proto::users::v1 as pb;

/// `student` as `access` may see it.
pub fn student(student: pb::Student, access: StudentAccess) -> pb::Student {
    let pb::Student {
        // visible to every caller with users:read
        id,
        person_id,
        first_name,
        last_name,
        school_class,
        group_id,
        group_name,
        pickup_status,
        bus,
        group_supervisors,
        active,
        deactivate_time,
        create_time,
        update_time,
        // decided here
        has_full_access: _,
        location,
        // sensitive: full access only
        birthday,
        extra_info,
        supervisor_notes,
        health_info,
        sick,
        sick_since,
        tag_id,
        guardian_contacts,
    } = student;
    let full = access == StudentAccess::Full;
    pb::Student {
        id,
        person_id,
        first_name,
        last_name,
        school_class,
        group_id,
        group_name,
        pickup_status,
        bus,
        group_supervisors,
        active,
        deactivate_time,
        create_time,
        update_time,
        has_full_access: full,
        location: location.map(|l| if full { l } else { coarse_location(l) }),
        birthday: birthday.filter(|_| full),
        extra_info: extra_info.filter(|_| full),
        supervisor_notes: supervisor_notes.filter(|_| full),
        health_info: health_info.filter(|_| full),
        sick: sick.filter(|_| full),
        sick_since: sick_since.filter(|_| full),
        tag_id: tag_id.filter(|_| full),
        guardian_contacts: guardian_contacts.filter(|_| full),
    }
}

/// The whereabouts other staff may see (docs/access.md): a room is visible with its entry
/// time; otherwise only present or absent, without a time.
fn coarse_location(l: pb::StudentLocation) -> pb::StudentLocation {
    match pb::Presence::try_from(l.presence) {
        Ok(pb::Presence::InRoom) => l,
        Ok(pb::Presence::InTransit | pb::Presence::Present) => {
            pb::StudentLocation { presence: pb::Presence::Present as i32, ..Default::default() }
        }
        _ => pb::StudentLocation { presence: pb::Presence::Absent as i32, ..Default::default() },
    }
}

/// `person` as the caller may see it: `student_access` is the caller's access when the
/// person is a student, `None` when not (then nothing is hidden).
pub fn person(person: pb::Person, student_access: Option<StudentAccess>) -> pb::Person {
    let pb::Person { id, first_name, last_name, account_id, create_time, update_time, birthday, tag_id } = person;
    let full = student_access != Some(StudentAccess::Limited);
    pb::Person {
        id,
        first_name,
        last_name,
        account_id,
        create_time,
        update_time,
        birthday: birthday.filter(|_| full),
        tag_id: tag_id.filter(|_| full),
    }
}

/// `guardian` as the caller may see it: without access to one of their children, only the
/// name and contact preferences remain (no address, e-mail, phone numbers, account, job or
/// notes).
pub fn guardian(guardian: pb::Guardian, access: StudentAccess) -> pb::Guardian {
    let pb::Guardian {
        // visible
        id,
        first_name,
        last_name,
        preferred_contact_method,
        language_preference,
        create_time,
        update_time,
        // decided here
        has_full_access: _,
        // contact data: full access only
        email,
        address_street,
        address_city,
        address_postal_code,
        account_id,
        occupation,
        employer,
        notes,
        phone_numbers,
    } = guardian;
    let full = access == StudentAccess::Full;
    pb::Guardian {
        id,
        first_name,
        last_name,
        preferred_contact_method,
        language_preference,
        create_time,
        update_time,
        has_full_access: full,
        email: email.filter(|_| full),
        address_street: address_street.filter(|_| full),
        address_city: address_city.filter(|_| full),
        address_postal_code: address_postal_code.filter(|_| full),
        account_id: account_id.filter(|_| full),
        occupation: occupation.filter(|_| full),
        employer: employer.filter(|_| full),
        notes: notes.filter(|_| full),
        phone_numbers: if full { phone_numbers } else { Vec::new() },
    }
}

/// `staff` as the caller may see it: the internal notes are for administrators only.
pub fn staff(staff: pb::Staff, is_admin: bool) -> pb::Staff {
    let pb::Staff {
        // visible to every caller with users:read
        id,
        person_id,
        first_name,
        last_name,
        is_teacher,
        teacher_id,
        specialization,
        role,
        qualifications,
        create_time,
        update_time,
        // administrators only
        staff_notes,
    } = staff;
    pb::Staff {
        id,
        person_id,
        first_name,
        last_name,
        is_teacher,
        teacher_id,
        specialization,
        role,
        qualifications,
        create_time,
        update_time,
        staff_notes: staff_notes.filter(|_| is_admin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_record() -> pb::Student {
        pb::Student {
            id: 1,
            person_id: 2,
            first_name: "Mia".into(),
            last_name: "Muster".into(),
            birthday: Some("2017-03-04".into()),
            school_class: "2a".into(),
            group_id: Some(5),
            group_name: Some("Füchse".into()),
            extra_info: Some("e".into()),
            supervisor_notes: Some("n".into()),
            health_info: Some("h".into()),
            pickup_status: Some("p".into()),
            bus: true,
            sick: Some(true),
            sick_since: Some(prost_types::Timestamp { seconds: 1, nanos: 0 }),
            tag_id: Some("04AABBCC".into()),
            guardian_contacts: Some(pb::GuardianContacts { contacts: vec![pb::GuardianContact::default()] }),
            group_supervisors: vec![pb::GroupSupervisor { staff_id: 9, ..Default::default() }],
            has_full_access: true,
            active: true,
            deactivate_time: None,
            create_time: Some(prost_types::Timestamp::default()),
            update_time: Some(prost_types::Timestamp::default()),
            location: Some(pb::StudentLocation {
                presence: pb::Presence::GoneHome as i32,
                since: Some(prost_types::Timestamp { seconds: 5, nanos: 0 }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn full_access_sees_everything() {
        assert_eq!(student(full_record(), StudentAccess::Full), full_record());
    }

    #[test]
    fn limited_access_loses_exactly_the_sensitive_fields() {
        let got = student(full_record(), StudentAccess::Limited);
        let expected = pb::Student {
            birthday: None,
            extra_info: None,
            supervisor_notes: None,
            health_info: None,
            sick: None,
            sick_since: None,
            tag_id: None,
            guardian_contacts: None,
            has_full_access: false,
            location: Some(pb::StudentLocation { presence: pb::Presence::Absent as i32, ..Default::default() }),
            ..full_record()
        };
        assert_eq!(got, expected);
    }

    #[test]
    fn other_staff_see_the_room_but_not_where_else_a_student_is() {
        let at = |presence: pb::Presence, room: Option<i64>| pb::Student {
            location: Some(pb::StudentLocation {
                presence: presence as i32,
                room_id: room,
                room_name: room.map(|_| "Mensa".into()),
                since: Some(prost_types::Timestamp { seconds: 9, nanos: 0 }),
            }),
            ..full_record()
        };
        let seen = |s: pb::Student| student(s, StudentAccess::Limited).location.unwrap();
        assert_eq!(seen(at(pb::Presence::InRoom, Some(3))), at(pb::Presence::InRoom, Some(3)).location.unwrap());
        let transit = seen(at(pb::Presence::InTransit, None));
        assert_eq!((transit.presence, transit.since), (pb::Presence::Present as i32, None));
        let absent = seen(at(pb::Presence::Absent, None));
        assert_eq!((absent.presence, absent.since), (pb::Presence::Absent as i32, None));
    }

    #[test]
    fn a_guardian_without_access_keeps_only_name_and_preferences() {
        let full = pb::Guardian {
            id: 1,
            first_name: "Petra".into(),
            last_name: "Muster".into(),
            email: Some("p@example.org".into()),
            address_city: Some("Berlin".into()),
            notes: Some("n".into()),
            phone_numbers: vec![pb::GuardianPhoneNumber::default()],
            preferred_contact_method: Some(pb::ContactMethod::Phone as i32),
            has_full_access: true,
            ..Default::default()
        };
        assert_eq!(guardian(full.clone(), StudentAccess::Full), full);
        let limited = guardian(full.clone(), StudentAccess::Limited);
        let expected = pb::Guardian {
            email: None,
            address_city: None,
            notes: None,
            phone_numbers: vec![],
            has_full_access: false,
            ..full
        };
        assert_eq!(limited, expected);
    }

    #[test]
    fn a_students_person_is_redacted_like_the_student_others_are_not() {
        let p = pb::Person {
            id: 2,
            first_name: "Mia".into(),
            birthday: Some("2017-03-04".into()),
            tag_id: Some("04AABBCC".into()),
            ..Default::default()
        };
        let limited = person(p.clone(), Some(StudentAccess::Limited));
        assert_eq!((limited.birthday, limited.tag_id, limited.first_name.as_str()), (None, None, "Mia"));
        assert_eq!(person(p.clone(), Some(StudentAccess::Full)), p);
        assert_eq!(person(p.clone(), None), p);
    }
}
