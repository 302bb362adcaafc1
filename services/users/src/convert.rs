//! Rows → proto messages. Students are converted in full; [`crate::redact`] then cuts them
//! down to the caller's access.

use phoenix_common::convert::{format_date, timestamp};
use phoenix_proto::users::v1 as pb;

use crate::repo::{Card, GuardianContact, Person, StaffRecord, StudentRecord, Supervisor};

pub fn person(p: Person) -> pb::Person {
    pb::Person {
        id: p.id,
        first_name: p.first_name,
        last_name: p.last_name,
        birthday: p.birthday.map(format_date),
        tag_id: p.tag_id,
        account_id: p.account_id,
        create_time: Some(timestamp(p.created_at)),
        update_time: Some(timestamp(p.updated_at)),
    }
}

pub fn staff(r: StaffRecord) -> pb::Staff {
    let teacher = r.teacher;
    pb::Staff {
        id: r.staff.id,
        person_id: r.person.id,
        first_name: r.person.first_name,
        last_name: r.person.last_name,
        staff_notes: r.staff.staff_notes,
        is_teacher: teacher.is_some(),
        teacher_id: teacher.as_ref().map(|t| t.id),
        specialization: teacher.as_ref().and_then(|t| t.specialization.clone()),
        role: teacher.as_ref().and_then(|t| t.role.clone()),
        qualifications: teacher.as_ref().and_then(|t| t.qualifications.clone()),
        create_time: Some(timestamp(r.staff.created_at)),
        update_time: Some(timestamp(r.staff.updated_at)),
    }
}

/// The full student record (every field; redact before sending).
pub fn student(r: StudentRecord, contacts: Vec<GuardianContact>, supervisors: Vec<Supervisor>) -> pb::Student {
    let s = r.student;
    pb::Student {
        id: s.id,
        person_id: r.person.id,
        first_name: r.person.first_name,
        last_name: r.person.last_name,
        birthday: r.person.birthday.map(format_date),
        school_class: s.school_class,
        group_id: s.group_id,
        group_name: r.group_name,
        extra_info: s.extra_info,
        supervisor_notes: s.supervisor_notes,
        health_info: s.health_info,
        pickup_status: s.pickup_status,
        bus: s.bus,
        sick: Some(s.sick),
        sick_since: s.sick_since.map(timestamp),
        tag_id: r.person.tag_id,
        guardian_contacts: Some(pb::GuardianContacts {
            contacts: contacts
                .into_iter()
                .map(|c| pb::GuardianContact {
                    guardian_id: c.guardian_id,
                    first_name: c.first_name,
                    last_name: c.last_name,
                    relationship_type: c.relationship_type,
                    is_primary: c.is_primary,
                    is_emergency_contact: c.is_emergency_contact,
                    can_pickup: c.can_pickup,
                    email: c.email,
                    phone_numbers: c.phone_numbers,
                })
                .collect(),
        }),
        group_supervisors: supervisors
            .into_iter()
            .map(|s| pb::GroupSupervisor { staff_id: s.staff_id, first_name: s.first_name, last_name: s.last_name })
            .collect(),
        has_full_access: true,
        active: s.deactivated_at.is_none(),
        deactivate_time: s.deactivated_at.map(timestamp),
        create_time: Some(timestamp(s.created_at)),
        update_time: Some(timestamp(s.updated_at)),
    }
}

pub fn card(c: Card, holder: Option<i64>) -> pb::RfidCard {
    pb::RfidCard {
        tag_id: c.id,
        active: c.active,
        person_id: holder,
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
    }
}
