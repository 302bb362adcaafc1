//! Database errors of education writes → caller-facing errors, by constraint name. Handlers
//! check references first for clear messages; these mappings cover races.

use phoenix_common::Error;
use phoenix_common::convert::violated_constraint;

/// Maps an error of a group insert or update.
pub fn group_write(err: diesel::result::Error, name: &str) -> Error {
    match violated_constraint(&err) {
        Some("uq_education_groups_name") => Error::AlreadyExists(format!("a group named {name:?} already exists")),
        Some("fk_education_groups_room_id") => Error::invalid("group.room_id", "no such room"),
        Some("fk_education_group_teacher_teacher_id") => Error::invalid("group.teacher_ids", "no such teacher"),
        _ => err.into(),
    }
}

/// Maps an error of writing a group's teacher set (`group.teacher_ids`).
pub fn group_teachers_write(err: diesel::result::Error) -> Error {
    match violated_constraint(&err) {
        Some("fk_education_group_teacher_teacher_id") => Error::invalid("group.teacher_ids", "no such teacher"),
        _ => err.into(),
    }
}

/// Maps an error of adding one group teacher.
pub fn group_teacher_insert(err: diesel::result::Error, group_id: i64, teacher_id: i64) -> Error {
    match violated_constraint(&err) {
        Some("uq_education_group_teacher_group_teacher") => {
            Error::AlreadyExists(format!("teacher {teacher_id} already leads group {group_id}"))
        }
        Some("fk_education_group_teacher_teacher_id") => Error::invalid("teacher_id", "no such teacher"),
        _ => err.into(),
    }
}

/// Maps an error of a substitution insert or update.
pub fn substitution_write(err: diesel::result::Error) -> Error {
    match violated_constraint(&err) {
        Some("uq_education_group_substitution_transfer") => {
            Error::AlreadyExists("this staff member already covers the group from that day".into())
        }
        Some("fk_education_group_substitution_group_id") => Error::invalid("substitution.group_id", "no such group"),
        Some("fk_education_group_substitution_substitute_staff_id") => {
            Error::invalid("substitution.substitute_staff_id", "no such staff member")
        }
        Some("fk_education_group_substitution_regular_staff_id") => {
            Error::invalid("substitution.regular_staff_id", "no such staff member")
        }
        _ => err.into(),
    }
}
