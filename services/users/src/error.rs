//! Database errors of users writes → caller-facing errors, by constraint name. Handlers
//! check references first for clear messages; these mappings cover races.

use phoenix_common::Error;
use phoenix_common::convert::violated_constraint;

/// Maps an error of a person insert or update; `prefix` is the request message (`person`, …).
pub fn person_write(err: diesel::result::Error, prefix: &str) -> Error {
    match violated_constraint(&err) {
        Some("uq_users_persons_account_id") => {
            Error::AlreadyExists("this account is already linked to another person".into())
        }
        Some("fk_users_persons_account_id") => Error::invalid(format!("{prefix}.account_id"), "no such account"),
        Some("uq_users_persons_tag_id") => card_race(),
        _ => err.into(),
    }
}

/// Maps an error of a staff insert.
pub fn staff_insert(err: diesel::result::Error, person_id: i64) -> Error {
    match violated_constraint(&err) {
        Some("uq_users_staff_person_id") => {
            Error::AlreadyExists(format!("person {person_id} is already a staff member"))
        }
        Some("fk_users_staff_person_id") => {
            Error::invalid("staff.person_id", format!("person {person_id} does not exist"))
        }
        _ => err.into(),
    }
}

/// Maps an error of a student insert or update.
pub fn student_write(err: diesel::result::Error) -> Error {
    match violated_constraint(&err) {
        Some("fk_users_students_group_id") => Error::invalid("student.group_id", "no such group"),
        _ => err.into(),
    }
}

/// Maps an error of a card assignment.
pub fn card_write(err: diesel::result::Error) -> Error {
    match violated_constraint(&err) {
        Some("uq_users_persons_tag_id") => card_race(),
        _ => err.into(),
    }
}

fn card_race() -> Error {
    Error::Aborted("the card was assigned concurrently; retry".into())
}

/// Maps an error of a guardian insert or update.
pub fn guardian_write(err: diesel::result::Error) -> Error {
    match violated_constraint(&err) {
        Some("uq_users_guardians_lower_email") => {
            Error::AlreadyExists("another guardian already has this e-mail address".into())
        }
        _ => err.into(),
    }
}

/// Maps an error of a link insert or update.
pub fn link_write(err: diesel::result::Error, student_id: i64, guardian_id: i64) -> Error {
    match violated_constraint(&err) {
        Some("uq_users_student_guardians_student_guardian") => {
            Error::AlreadyExists(format!("guardian {guardian_id} is already linked to student {student_id}"))
        }
        Some("uq_users_student_guardians_primary_per_student") => {
            Error::Aborted("the primary guardian changed concurrently; retry".into())
        }
        _ => err.into(),
    }
}

/// Maps an error of a phone number insert or update.
pub fn phone_write(err: diesel::result::Error) -> Error {
    match violated_constraint(&err) {
        Some("uq_users_guardian_phone_numbers_primary_per_guardian") => {
            Error::Aborted("the primary number changed concurrently; retry".into())
        }
        _ => err.into(),
    }
}

/// Maps an error of a pickup exception insert or update.
pub fn exception_write(err: diesel::result::Error) -> Error {
    match violated_constraint(&err) {
        Some("uq_schedule_student_pickup_exceptions_student_date") => {
            Error::AlreadyExists("the student already has an exception on that day".into())
        }
        _ => err.into(),
    }
}
