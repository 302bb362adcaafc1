//! Rows → proto messages.

use std::collections::HashMap;

use chrono::NaiveDate;
use phoenix_common::convert::format_date;
use phoenix_common::time::to_timestamp;
use phoenix_proto::education::v1 as pb;

use crate::repo::{GroupRecord, SubstitutionRow};

/// A group with its room name, teachers and pupil count.
pub fn group(r: GroupRecord) -> pb::Group {
    pb::Group {
        id: r.group.id,
        name: r.group.name,
        room_id: r.group.room_id,
        room_name: r.room_name,
        teacher_ids: r.teachers.iter().map(|t| t.teacher_id).collect(),
        teachers: r
            .teachers
            .into_iter()
            .map(|t| pb::GroupTeacher {
                teacher_id: t.teacher_id,
                staff_id: t.staff_id,
                first_name: t.first_name,
                last_name: t.last_name,
            })
            .collect(),
        student_count: i32::try_from(r.student_count).unwrap_or(i32::MAX),
        create_time: Some(to_timestamp(r.group.created_at)),
        update_time: Some(to_timestamp(r.group.updated_at)),
    }
}

/// A substitution; `group_names` from [`crate::repo::group_names`], `today` decides `active`.
pub fn substitution(s: SubstitutionRow, group_names: &HashMap<i64, String>, today: NaiveDate) -> pb::Substitution {
    let group_name = group_names.get(&s.group_id).cloned().unwrap_or_default();
    let kind = if s.is_transfer { pb::SubstitutionKind::Transfer } else { pb::SubstitutionKind::Substitution };
    pb::Substitution {
        id: s.id,
        group_id: s.group_id,
        group_name,
        regular_staff_id: s.regular_staff_id,
        substitute_staff_id: s.substitute_staff_id,
        start_date: format_date(s.start_date),
        end_date: format_date(s.end_date),
        reason: s.reason,
        duration_days: i32::try_from((s.end_date - s.start_date).num_days() + 1).unwrap_or(i32::MAX),
        active: s.start_date <= today && today <= s.end_date,
        kind: kind as i32,
        create_time: Some(to_timestamp(s.created_at)),
        update_time: Some(to_timestamp(s.updated_at)),
    }
}
