//! Requests → typed commands, before any I/O. Every
//! violation names the request field; all are reported at once. "Today" is passed in, so
//! the date rules are pure and unit-tested.

use chrono::NaiveDate;
use phoenix_common::page::PageRequest;
use phoenix_common::validate::{
    Update, finish, optional_id, optional_text, page, parse_date, required, required_id, required_text, update,
};
use phoenix_common::{FieldViolations, Result};
use phoenix_proto::education::v1 as pb;

use crate::repo::{GroupFields, GroupFilter, SubstitutionFields, SubstitutionFilter};

/// Updatable fields of a group.
pub const GROUP_FIELDS: &[&str] = &["name", "room_id", "teacher_ids"];
/// Updatable fields of a substitution.
pub const SUBSTITUTION_FIELDS: &[&str] =
    &["regular_staff_id", "substitute_staff_id", "start_date", "end_date", "reason"];

// ---- groups ---------------------------------------------------------------------------

fn teacher_ids(ids: &[i64], v: &mut FieldViolations) -> Vec<i64> {
    let mut out = Vec::new();
    for id in ids {
        if *id <= 0 {
            v.add("group.teacher_ids", format!("must be positive teacher ids, got {id}"));
        } else if !out.contains(id) {
            out.push(*id);
        }
    }
    out
}

/// A new group.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGroup {
    /// Columns.
    pub fields: GroupFields,
    /// Its leading teachers (deduplicated).
    pub teacher_ids: Vec<i64>,
}

/// CreateGroup → new group.
pub fn create_group(req: pb::CreateGroupRequest) -> Result<NewGroup> {
    let g = required("group", req.group)?;
    let mut v = FieldViolations::default();
    let fields = GroupFields {
        name: required_text("group.name", &g.name, &mut v),
        room_id: optional_id("group.room_id", g.room_id, &mut v),
    };
    let teacher_ids = teacher_ids(&g.teacher_ids, &mut v);
    v.into_result()?;
    Ok(NewGroup { fields, teacher_ids })
}

/// UpdateGroup → id + mask.
pub fn update_group(req: pb::UpdateGroupRequest) -> Result<Update<pb::Group>> {
    let g = required("group", req.group)?;
    update("group.id", g.id, g, req.update_mask.as_ref(), GROUP_FIELDS)
}

/// The stored group `f` with the masked changes of `u` applied, and the new teacher set if
/// masked.
pub fn apply_group(u: &Update<pb::Group>, mut f: GroupFields) -> Result<(GroupFields, Option<Vec<i64>>)> {
    let g = &u.message;
    let mut v = FieldViolations::default();
    let mut teachers = None;
    for path in &u.paths {
        match *path {
            "name" => f.name = required_text("group.name", &g.name, &mut v),
            "room_id" => f.room_id = optional_id("group.room_id", g.room_id, &mut v),
            "teacher_ids" => teachers = Some(teacher_ids(&g.teacher_ids, &mut v)),
            _ => {}
        }
    }
    v.into_result()?;
    Ok((f, teachers))
}

/// ListGroups → filter + page.
pub fn list_groups(req: pb::ListGroupsRequest) -> Result<(GroupFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let filter = GroupFilter {
        name_contains: optional_text(req.name_contains),
        room_id: optional_id("room_id", req.room_id, &mut v),
        teacher_id: optional_id("teacher_id", req.teacher_id, &mut v),
    };
    let page = page("groups", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    let page = finish(v, page)?;
    Ok((filter, page))
}

/// AddGroupTeacher / RemoveGroupTeacher → (group, teacher).
pub fn group_teacher(group_id: i64, teacher_id: i64) -> Result<(i64, i64)> {
    let mut v = FieldViolations::default();
    required_id("group_id", group_id, &mut v);
    required_id("teacher_id", teacher_id, &mut v);
    v.into_result()?;
    Ok((group_id, teacher_id))
}

// ---- substitutions --------------------------------------------------------------------

/// The date rules: `end ≥ start`; a start or end that
/// is set or changed must not lie before `today` (Berlin).
fn check_period(
    start: NaiveDate,
    end: NaiveDate,
    today: NaiveDate,
    check_start: bool,
    check_end: bool,
    v: &mut FieldViolations,
) {
    if check_start && start < today {
        v.add("substitution.start_date", format!("must not be in the past (today is {today}), got {start}"));
    }
    if check_end && end < today {
        v.add("substitution.end_date", format!("must not be in the past (today is {today}), got {end}"));
    }
    if end < start {
        v.add("substitution.end_date", format!("must not be before start_date {start}, got {end}"));
    }
}

fn distinct_staff(f: &SubstitutionFields, v: &mut FieldViolations) {
    if f.regular_staff_id == Some(f.substitute_staff_id) {
        v.add("substitution.substitute_staff_id", "must differ from regular_staff_id");
    }
}

/// CreateSubstitution → the new row (never a transfer).
pub fn create_substitution(req: pb::CreateSubstitutionRequest, today: NaiveDate) -> Result<SubstitutionFields> {
    let s = required("substitution", req.substitution)?;
    let mut v = FieldViolations::default();
    let group_id = required_id("substitution.group_id", s.group_id, &mut v);
    let substitute_staff_id = required_id("substitution.substitute_staff_id", s.substitute_staff_id, &mut v);
    let regular_staff_id = optional_id("substitution.regular_staff_id", s.regular_staff_id, &mut v);
    let start = parse_date("substitution.start_date", &s.start_date, &mut v);
    let end = parse_date("substitution.end_date", &s.end_date, &mut v);
    let fields = match (start, end) {
        (Some(start_date), Some(end_date)) => {
            check_period(start_date, end_date, today, true, true, &mut v);
            let f = SubstitutionFields {
                group_id,
                regular_staff_id,
                substitute_staff_id,
                start_date,
                end_date,
                reason: optional_text(s.reason),
                is_transfer: false,
            };
            distinct_staff(&f, &mut v);
            Some(f)
        }
        _ => None,
    };
    finish(v, fields)
}

/// UpdateSubstitution → id + mask.
pub fn update_substitution(req: pb::UpdateSubstitutionRequest) -> Result<Update<pb::Substitution>> {
    let s = required("substitution", req.substitution)?;
    update("substitution.id", s.id, s, req.update_mask.as_ref(), SUBSTITUTION_FIELDS)
}

/// The stored substitution `f` with the masked changes of `u` applied and the rules checked.
pub fn apply_substitution(
    u: &Update<pb::Substitution>,
    mut f: SubstitutionFields,
    today: NaiveDate,
) -> Result<SubstitutionFields> {
    let s = &u.message;
    let mut v = FieldViolations::default();
    let (mut start_changed, mut end_changed) = (false, false);
    for path in &u.paths {
        match *path {
            "regular_staff_id" => {
                f.regular_staff_id = optional_id("substitution.regular_staff_id", s.regular_staff_id, &mut v)
            }
            "substitute_staff_id" => {
                f.substitute_staff_id = required_id("substitution.substitute_staff_id", s.substitute_staff_id, &mut v)
            }
            "start_date" => {
                if let Some(d) = parse_date("substitution.start_date", &s.start_date, &mut v) {
                    start_changed = d != f.start_date;
                    f.start_date = d;
                }
            }
            "end_date" => {
                if let Some(d) = parse_date("substitution.end_date", &s.end_date, &mut v) {
                    end_changed = d != f.end_date;
                    f.end_date = d;
                }
            }
            "reason" => f.reason = optional_text(s.reason.clone()),
            _ => {}
        }
    }
    check_period(f.start_date, f.end_date, today, start_changed, end_changed, &mut v);
    distinct_staff(&f, &mut v);
    v.into_result()?;
    Ok(f)
}

/// ListSubstitutions → filter + page. An explicit `SUBSTITUTION_KIND_UNSPECIFIED` is
/// rejected rather than read as "both".
pub fn list_substitutions(req: pb::ListSubstitutionsRequest) -> Result<(SubstitutionFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let transfers = match req.kind.map(pb::SubstitutionKind::try_from) {
        None => None,
        Some(Ok(pb::SubstitutionKind::Substitution)) => Some(false),
        Some(Ok(pb::SubstitutionKind::Transfer)) => Some(true),
        Some(Ok(pb::SubstitutionKind::Unspecified)) => {
            v.add(
                "kind",
                "must be SUBSTITUTION_KIND_SUBSTITUTION or SUBSTITUTION_KIND_TRANSFER (leave unset for both)",
            );
            None
        }
        Some(Err(_)) => {
            v.add("kind", format!("unknown value {}", req.kind.unwrap_or_default()));
            None
        }
    };
    let filter = SubstitutionFilter {
        group_id: optional_id("group_id", req.group_id, &mut v),
        substitute_staff_id: optional_id("substitute_staff_id", req.substitute_staff_id, &mut v),
        active_on: optional_text(req.active_on).and_then(|d| parse_date("active_on", &d, &mut v)),
        transfers,
    };
    let page = page("substitutions", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    let page = finish(v, page)?;
    Ok((filter, page))
}

/// TransferGroup → (group, target staff).
pub fn transfer(req: pb::TransferGroupRequest) -> Result<(i64, i64)> {
    let mut v = FieldViolations::default();
    required_id("group_id", req.group_id, &mut v);
    required_id("target_staff_id", req.target_staff_id, &mut v);
    v.into_result()?;
    Ok((req.group_id, req.target_staff_id))
}

/// CancelTransfer → (group, substitution).
pub fn cancel_transfer(req: pb::CancelTransferRequest) -> Result<(i64, i64)> {
    let mut v = FieldViolations::default();
    required_id("group_id", req.group_id, &mut v);
    required_id("substitution_id", req.substitution_id, &mut v);
    v.into_result()?;
    Ok((req.group_id, req.substitution_id))
}

#[cfg(test)]
mod tests {

    use phoenix_common::validate::fields_of;

    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn sub(start: &str, end: &str) -> pb::CreateSubstitutionRequest {
        pb::CreateSubstitutionRequest {
            substitution: Some(pb::Substitution {
                group_id: 1,
                substitute_staff_id: 2,
                start_date: start.into(),
                end_date: end.into(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_substitution_starts_today_or_later_and_ends_on_or_after_its_start() {
        let today = day("2026-03-10");
        let ok = create_substitution(sub("2026-03-10", "2026-03-10"), today).unwrap();
        assert_eq!((ok.start_date, ok.end_date, ok.is_transfer), (today, today, false));
        assert_eq!(
            fields_of(create_substitution(sub("2026-03-09", "2026-03-12"), today).unwrap_err()),
            ["substitution.start_date"]
        );
        assert_eq!(
            fields_of(create_substitution(sub("2026-03-12", "2026-03-11"), today).unwrap_err()),
            ["substitution.end_date"]
        );
        assert_eq!(
            fields_of(create_substitution(sub("10.03.2026", ""), today).unwrap_err()),
            ["substitution.start_date", "substitution.end_date"]
        );
    }

    #[test]
    fn required_ids_and_distinct_staff() {
        let today = day("2026-03-10");
        let mut req = sub("2026-03-10", "2026-03-11");
        if let Some(s) = req.substitution.as_mut() {
            s.group_id = 0;
            s.substitute_staff_id = 0;
        }
        assert_eq!(
            fields_of(create_substitution(req, today).unwrap_err()),
            ["substitution.group_id", "substitution.substitute_staff_id"]
        );
        let mut same = sub("2026-03-10", "2026-03-11");
        if let Some(s) = same.substitution.as_mut() {
            s.regular_staff_id = Some(2);
        }
        assert_eq!(fields_of(create_substitution(same, today).unwrap_err()), ["substitution.substitute_staff_id"]);
    }

    #[test]
    fn an_ongoing_substitution_can_be_extended_but_not_moved_into_the_past() {
        let today = day("2026-03-10");
        let stored = SubstitutionFields {
            group_id: 1,
            regular_staff_id: None,
            substitute_staff_id: 2,
            start_date: day("2026-03-05"),
            end_date: day("2026-03-12"),
            reason: None,
            is_transfer: false,
        };
        let mk = |paths: &[&str], start: &str, end: &str| {
            update_substitution(pb::UpdateSubstitutionRequest {
                substitution: Some(pb::Substitution {
                    id: 9,
                    start_date: start.into(),
                    end_date: end.into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
            })
            .unwrap()
        };
        // The start lies in the past but is unchanged: extending the end is fine.
        let f = apply_substitution(&mk(&["end_date"], "", "2026-03-20"), stored.clone(), today).unwrap();
        assert_eq!(f.end_date, day("2026-03-20"));
        assert_eq!(
            fields_of(apply_substitution(&mk(&["start_date"], "2026-03-01", ""), stored.clone(), today).unwrap_err()),
            ["substitution.start_date"]
        );
        assert_eq!(
            fields_of(apply_substitution(&mk(&["end_date"], "", "2026-03-09"), stored, today).unwrap_err()),
            ["substitution.end_date"]
        );
    }

    #[test]
    fn an_explicit_unspecified_kind_is_rejected() {
        let req = pb::ListSubstitutionsRequest { kind: Some(0), ..Default::default() };
        assert_eq!(fields_of(list_substitutions(req).unwrap_err()), ["kind"]);
        let req = pb::ListSubstitutionsRequest { kind: Some(7), ..Default::default() };
        assert_eq!(fields_of(list_substitutions(req).unwrap_err()), ["kind"]);
        let (f, _) = list_substitutions(pb::ListSubstitutionsRequest { kind: Some(2), ..Default::default() }).unwrap();
        assert_eq!(f.transfers, Some(true));
    }

    #[test]
    fn group_teachers_are_positive_and_deduplicated() {
        let g = create_group(pb::CreateGroupRequest {
            group: Some(pb::Group { name: " Füchse ".into(), teacher_ids: vec![3, 3, 4], ..Default::default() }),
        })
        .unwrap();
        assert_eq!((g.fields.name.as_str(), g.teacher_ids), ("Füchse", vec![3, 4]));
        let bad = create_group(pb::CreateGroupRequest {
            group: Some(pb::Group { name: "".into(), teacher_ids: vec![-1], room_id: Some(0), ..Default::default() }),
        });
        assert_eq!(fields_of(bad.unwrap_err()), ["group.name", "group.room_id", "group.teacher_ids"]);
    }
}
