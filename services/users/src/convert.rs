//! Rows → proto messages. Students are converted in full; [`crate::redact`] then cuts them
//! down to the caller's access.

use phoenix_common::convert::format_date;
use phoenix_common::time::{to_timestamp, to_timestamp_opt};
use phoenix_proto::users::v1 as pb;

use crate::children::ChildDay;
use crate::enums;
use crate::repo::care::{ConsentRow, ExceptionRow, NoteRow, ScheduleRow};
use crate::repo::family::{ChildRow, VisitRow};
use crate::repo::guardians::{GuardianRow, Link, PhoneRow};
use crate::repo::students::Presence;
use crate::repo::{Card, GuardianContact, Person, StaffRecord, StudentRecord, Supervisor};
use crate::validate::care::{format_time, renewal_required};

pub fn person(p: Person) -> pb::Person {
    pb::Person {
        id: p.id,
        first_name: p.first_name,
        last_name: p.last_name,
        birthday: p.birthday.map(format_date),
        tag_id: p.tag_id,
        account_id: p.account_id,
        create_time: Some(to_timestamp(p.created_at)),
        update_time: Some(to_timestamp(p.updated_at)),
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
        create_time: Some(to_timestamp(r.staff.created_at)),
        update_time: Some(to_timestamp(r.staff.updated_at)),
    }
}

/// The full student record (every field; redact before sending).
pub fn student(
    r: StudentRecord,
    contacts: Vec<GuardianContact>,
    supervisors: Vec<Supervisor>,
    presence: Presence,
) -> pb::Student {
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
        sick_since: to_timestamp_opt(s.sick_since),
        tag_id: r.person.tag_id,
        guardian_contacts: Some(pb::GuardianContacts {
            contacts: contacts
                .into_iter()
                .map(|c| pb::GuardianContact {
                    guardian_id: c.guardian_id,
                    first_name: c.first_name,
                    last_name: c.last_name,
                    relationship_type: crate::enums::relationship_from_db(&c.relationship_type) as i32,
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
        deactivate_time: to_timestamp_opt(s.deactivated_at),
        create_time: Some(to_timestamp(s.created_at)),
        update_time: Some(to_timestamp(s.updated_at)),
        location: Some(location(presence)),
    }
}

fn location(p: Presence) -> pb::StudentLocation {
    let (presence, room_id, room_name, since) = match p {
        Presence::Absent => (pb::Presence::Absent, None, None, None),
        Presence::InRoom { room_id, room_name, since } => {
            (pb::Presence::InRoom, Some(room_id), Some(room_name), Some(since))
        }
        Presence::InTransit { since } => (pb::Presence::InTransit, None, None, Some(since)),
        Presence::GoneHome { since } => (pb::Presence::GoneHome, None, None, Some(since)),
    };
    pb::StudentLocation { presence: presence as i32, room_id, room_name, since: to_timestamp_opt(since) }
}

pub fn card(c: Card, holder: Option<i64>) -> pb::RfidCard {
    pb::RfidCard {
        tag_id: c.id,
        active: c.active,
        person_id: holder,
        create_time: Some(to_timestamp(c.created_at)),
        update_time: Some(to_timestamp(c.updated_at)),
    }
}

/// The full guardian record (redact before sending).
pub fn guardian(g: GuardianRow, phones: Vec<PhoneRow>) -> pb::Guardian {
    pb::Guardian {
        id: g.id,
        first_name: g.first_name,
        last_name: g.last_name,
        email: g.email,
        address_street: g.address_street,
        address_city: g.address_city,
        address_postal_code: g.address_postal_code,
        account_id: g.account_id,
        preferred_contact_method: Some(enums::contact_from_db(&g.preferred_contact_method) as i32),
        language_preference: Some(g.language_preference),
        occupation: g.occupation,
        employer: g.employer,
        notes: g.notes,
        phone_numbers: phones.into_iter().map(phone).collect(),
        has_full_access: true,
        create_time: Some(to_timestamp(g.created_at)),
        update_time: Some(to_timestamp(g.updated_at)),
    }
}

pub fn phone(p: PhoneRow) -> pb::GuardianPhoneNumber {
    pb::GuardianPhoneNumber {
        id: p.id,
        guardian_id: p.guardian_id,
        phone_number: p.phone_number,
        phone_type: Some(enums::phone_type_from_db(&p.phone_type) as i32),
        label: p.label,
        is_primary: p.is_primary,
        priority: p.priority,
        create_time: Some(to_timestamp(p.created_at)),
        update_time: Some(to_timestamp(p.updated_at)),
    }
}

pub fn link((l, first, last): Link) -> pb::StudentGuardian {
    pb::StudentGuardian {
        id: l.id,
        student_id: l.student_id,
        guardian_id: l.guardian_id,
        guardian_first_name: first,
        guardian_last_name: last,
        relationship_type: enums::relationship_from_db(&l.relationship_type) as i32,
        is_primary: l.is_primary,
        is_emergency_contact: l.is_emergency_contact,
        can_pickup: l.can_pickup,
        pickup_notes: l.pickup_notes,
        emergency_priority: l.emergency_priority,
        create_time: Some(to_timestamp(l.created_at)),
        update_time: Some(to_timestamp(l.updated_at)),
    }
}

/// A stored consent; renewal is judged at `now`, not when it was written.
pub fn consent(c: ConsentRow, now: chrono::DateTime<chrono::Utc>) -> pb::PrivacyConsent {
    pb::PrivacyConsent {
        id: Some(c.id),
        student_id: c.student_id,
        policy_version: c.policy_version,
        accepted: c.accepted,
        accept_time: to_timestamp_opt(c.accepted_at),
        expire_time: to_timestamp_opt(c.expires_at),
        duration_days: c.duration_days,
        renewal_required: renewal_required(c.accepted, c.expires_at, now),
        data_retention_days: c.data_retention_days,
        details_json: c.details.map(|d| d.to_string()),
        create_time: Some(to_timestamp(c.created_at)),
        update_time: Some(to_timestamp(c.updated_at)),
    }
}

/// The consent reported when none was accepted (none: no consent, the default retention).
pub fn default_consent(student_id: i64) -> pb::PrivacyConsent {
    pb::PrivacyConsent {
        student_id,
        policy_version: "1.0".into(),
        accepted: false,
        renewal_required: true,
        data_retention_days: 30,
        ..Default::default()
    }
}

pub fn schedule(s: ScheduleRow) -> pb::PickupScheduleEntry {
    pb::PickupScheduleEntry { weekday: i32::from(s.weekday), pickup_time: format_time(s.pickup_time), notes: s.notes }
}

pub fn exception(e: ExceptionRow) -> pb::PickupException {
    pb::PickupException {
        id: e.id,
        student_id: e.student_id,
        exception_date: format_date(e.exception_date),
        pickup_time: e.pickup_time.map(format_time),
        reason: e.reason,
        create_time: Some(to_timestamp(e.created_at)),
        update_time: Some(to_timestamp(e.updated_at)),
    }
}

pub fn note(n: NoteRow) -> pb::PickupNote {
    pb::PickupNote {
        id: n.id,
        student_id: n.student_id,
        note_date: format_date(n.note_date),
        content: n.content,
        create_time: Some(to_timestamp(n.created_at)),
        update_time: Some(to_timestamp(n.updated_at)),
    }
}

/// One of a guardian's children.
pub fn child(c: ChildRow) -> pb::Child {
    pb::Child {
        student_id: c.student_id,
        first_name: c.first_name,
        last_name: c.last_name,
        school_class: c.school_class,
        group_name: c.group_name.unwrap_or_default(),
        relationship_type: enums::relationship_from_db(&c.relationship_type) as i32,
    }
}

/// A child's day as their guardian sees it.
pub fn child_presence(student_id: i64, d: ChildDay) -> pb::ChildPresence {
    pb::ChildPresence {
        student_id,
        state: d.state as i32,
        since: to_timestamp_opt(d.since),
        room_name: d.room_name.unwrap_or_default(),
        today_visits: d.visits.into_iter().map(child_visit).collect(),
    }
}

fn child_visit(v: VisitRow) -> pb::ChildVisit {
    pb::ChildVisit {
        room_name: v.room_name,
        activity_name: v.activity_name.unwrap_or_default(),
        entry_time: Some(to_timestamp(v.entry_time)),
        exit_time: to_timestamp_opt(v.exit_time),
    }
}
