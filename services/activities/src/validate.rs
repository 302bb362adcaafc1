//! Requests → typed commands, pure, before any I/O. Every violation names its request field
//! (`activity.schedules[2].weekday`), all of them at once.

use std::collections::BTreeSet;

use phoenix_common::page::PageRequest;
use phoenix_common::validate::{collect, finish, mask_paths, optional_id, page, required, required_id};
use phoenix_common::{FieldViolations, Result};
use phoenix_proto::activities::v1 as pb;

use crate::repo::{ActivityChanges, ActivityFilter};

/// Fields `UpdateActivity` may change.
pub const ACTIVITY_FIELDS: &[&str] =
    &["name", "max_participants", "is_open", "category_id", "planned_room_id", "supervisors", "schedules"];
/// Fields `UpdateActivitySchedule` may change.
pub const SCHEDULE_FIELDS: &[&str] = &["weekday", "timeframe_id"];
/// Fields `UpdateActivitySupervisor` may change.
pub const SUPERVISOR_FIELDS: &[&str] = &["is_primary"];

/// A weekly slot: ISO weekday and optional timeframe.
pub type Slot = (i16, Option<i64>);

/// Rows a request refers to by id, each with the request field that named it. A missing
/// one is the caller's mistake in that field: `InvalidArgument` naming it (docs/error-reasons.md),
/// checked by `repo::check_refs` inside the write's transaction.
#[derive(Debug, Default)]
pub struct References {
    /// The category.
    pub category: Option<(String, i64)>,
    /// The planned room.
    pub room: Option<(String, i64)>,
    /// Staff members.
    pub staff: Vec<(String, i64)>,
    /// Timeframes.
    pub timeframes: Vec<(String, i64)>,
}

impl References {
    fn timeframes_of(&mut self, prefix: &str, schedules: &[Slot]) {
        for (i, (_, t)) in schedules.iter().enumerate() {
            if let Some(t) = t {
                self.timeframes.push((format!("{prefix}[{i}].timeframe_id"), *t));
            }
        }
    }

    fn timeframe(field: &str, timeframe: Option<i64>) -> Self {
        Self { timeframes: timeframe.map(|t| (field.to_owned(), t)).into_iter().collect(), ..Self::default() }
    }
}

/// `CreateCategory`.
#[derive(Debug)]
pub struct NewCategory {
    /// Trimmed name.
    pub name: String,
    /// Text, `None` when blank.
    pub description: Option<String>,
    /// `#RGB` / `#RRGGBB`.
    pub color: Option<String>,
}

/// `CreateActivity`.
#[derive(Debug)]
pub struct NewActivity {
    /// Trimmed name.
    pub name: String,
    /// Places.
    pub max_participants: i32,
    /// Open for enrollment.
    pub is_open: bool,
    /// Category.
    pub category_id: i64,
    /// Planned room.
    pub planned_room_id: Option<i64>,
    /// Planned supervisors, the first one primary.
    pub supervisor_staff_ids: Vec<i64>,
    /// Weekly slots.
    pub schedules: Vec<Slot>,
    /// What must exist.
    pub refs: References,
}

/// `UpdateActivity`: the masked column changes and the sub-resource sets to replace.
#[derive(Debug)]
pub struct ActivityUpdate {
    /// The activity.
    pub id: i64,
    /// Changed columns.
    pub changes: ActivityChanges,
    /// The new planned supervisors (staff id, primary), when masked.
    pub supervisors: Option<Vec<(i64, bool)>>,
    /// The new weekly slots, when masked.
    pub schedules: Option<Vec<Slot>>,
    /// What must exist.
    pub refs: References,
}

/// `CreateActivitySchedule`.
#[derive(Debug)]
pub struct NewSchedule {
    /// The activity.
    pub activity_id: i64,
    /// The slot.
    pub slot: Slot,
    /// What must exist.
    pub refs: References,
}

/// `UpdateActivitySchedule`: `None` keeps the stored value.
#[derive(Debug)]
pub struct ScheduleUpdate {
    /// The activity.
    pub activity_id: i64,
    /// The schedule.
    pub schedule_id: i64,
    /// New weekday.
    pub weekday: Option<i16>,
    /// New timeframe (`Some(None)` clears it).
    pub timeframe: Option<Option<i64>>,
    /// What must exist.
    pub refs: References,
}

/// `UpdateActivitySupervisor`.
#[derive(Debug)]
pub struct SupervisorUpdate {
    /// The activity.
    pub activity_id: i64,
    /// The supervisor.
    pub staff_id: i64,
    /// New primary flag, when masked.
    pub is_primary: Option<bool>,
}

/// `ReplaceEnrollments`.
#[derive(Debug)]
pub struct EnrollmentSet {
    /// The activity.
    pub activity_id: i64,
    /// The students as requested (for naming fields).
    pub requested: Vec<i64>,
    /// The wanted set.
    pub wanted: BTreeSet<i64>,
}

/// `#RGB` / `#RRGGBB`, a missing `#` added (as for rooms and categories).
fn color(field: &str, raw: &str, v: &mut FieldViolations) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let hex = raw.strip_prefix('#').unwrap_or(raw);
    if (hex.len() == 3 || hex.len() == 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(format!("#{hex}"))
    } else {
        v.add(field, format!("must be a hex color #RGB or #RRGGBB, got {raw:?}"));
        None
    }
}

/// An optional reference in the proto's form: 0 means none.
fn reference(field: &str, raw: i64, v: &mut FieldViolations) -> Option<i64> {
    optional_id(field, (raw != 0).then_some(raw), v).filter(|id| *id > 0)
}

/// ISO weekday 1 (Monday) ..= 7 (Sunday).
fn weekday(field: &str, raw: i32, v: &mut FieldViolations) -> i16 {
    match i16::try_from(raw) {
        Ok(d @ 1..=7) => d,
        _ => {
            v.add(field, format!("invalid weekday: must be 1 (Monday) ..= 7 (Sunday), got {raw}"));
            0
        }
    }
}

/// A non-blank name, trimmed.
fn name(field: &str, raw: &str, v: &mut FieldViolations) -> String {
    let name = raw.trim().to_owned();
    if name.is_empty() {
        v.add(field, "must not be empty");
    }
    name
}

/// Places, > 0.
fn max_participants(field: &str, raw: i32, v: &mut FieldViolations) -> i32 {
    if raw <= 0 {
        v.add(field, format!("must be > 0, got {raw}"));
    }
    raw
}

/// Ids of `list` (field `prefix[i]`), each positive and at most once.
fn distinct_ids(prefix: &str, what: &str, list: &[i64], v: &mut FieldViolations) -> BTreeSet<i64> {
    let mut seen = BTreeSet::new();
    for (i, id) in list.iter().enumerate() {
        required_id(&format!("{prefix}[{i}]"), *id, v);
        if !seen.insert(*id) {
            v.add(format!("{prefix}[{i}]"), format!("{what} {id} is listed twice"));
        }
    }
    seen
}

/// A complete set of weekly schedules (`prefix` e.g. `activity.schedules`): each weekday
/// valid, each (weekday, timeframe) at most once.
fn schedules(prefix: &str, list: &[pb::ActivitySchedule], v: &mut FieldViolations) -> Vec<Slot> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let weekday = weekday(&format!("{prefix}[{i}].weekday"), s.weekday, v);
        let timeframe = reference(&format!("{prefix}[{i}].timeframe_id"), s.timeframe_id, v);
        if let Some(t) = timeframe
            && !seen.insert((weekday, t))
        {
            v.add(format!("{prefix}[{i}]"), format!("weekday {weekday} in timeframe {t} is listed twice"));
        }
        out.push((weekday, timeframe));
    }
    out
}

/// A complete set of planned supervisors (`prefix` e.g. `activity.supervisors`): each staff
/// member at most once, exactly one primary unless the set is empty.
fn supervisors(prefix: &str, list: &[pb::Supervisor], v: &mut FieldViolations) -> Vec<(i64, bool)> {
    let mut seen = BTreeSet::new();
    for (i, s) in list.iter().enumerate() {
        required_id(&format!("{prefix}[{i}].staff_id"), s.staff_id, v);
        if !seen.insert(s.staff_id) {
            v.add(format!("{prefix}[{i}].staff_id"), format!("staff {} is listed twice", s.staff_id));
        }
    }
    let primaries = list.iter().filter(|s| s.is_primary).count();
    if !list.is_empty() && primaries != 1 {
        v.add(prefix, format!("exactly one supervisor must be primary, got {primaries}"));
    }
    list.iter().map(|s| (s.staff_id, s.is_primary)).collect()
}

/// Two ids addressing a sub-resource of an activity, both checked before either fails.
fn pair(first: (&str, i64), second: (&str, i64)) -> Result<(i64, i64)> {
    let mut v = FieldViolations::default();
    required_id(first.0, first.1, &mut v);
    required_id(second.0, second.1, &mut v);
    v.into_result()?;
    Ok((first.1, second.1))
}

/// `ListCategories`.
pub fn list_categories(req: &pb::ListCategoriesRequest) -> Result<PageRequest> {
    PageRequest::parse("categories", "", req.page_size, &req.page_token)
}

/// `CreateCategory`.
pub fn create_category(req: pb::CreateCategoryRequest) -> Result<NewCategory> {
    let c = required("category", req.category)?;
    let mut v = FieldViolations::default();
    let name = name("category.name", &c.name, &mut v);
    let color = color("category.color", &c.color, &mut v);
    v.into_result()?;
    let description = Some(c.description.trim().to_owned()).filter(|d| !d.is_empty());
    Ok(NewCategory { name, description, color })
}

/// `CreateActivity`.
pub fn create_activity(req: pb::CreateActivityRequest) -> Result<NewActivity> {
    let a = required("activity", req.activity)?;
    let mut v = FieldViolations::default();
    let name = name("activity.name", &a.name, &mut v);
    max_participants("activity.max_participants", a.max_participants, &mut v);
    required_id("activity.category_id", a.category_id, &mut v);
    let room = reference("activity.planned_room_id", a.planned_room_id, &mut v);
    distinct_ids("supervisor_staff_ids", "staff", &req.supervisor_staff_ids, &mut v);
    let schedules = schedules("activity.schedules", &a.schedules, &mut v);
    v.into_result()?;
    let mut refs = References {
        category: Some(("activity.category_id".into(), a.category_id)),
        room: room.map(|r| ("activity.planned_room_id".into(), r)),
        staff: req
            .supervisor_staff_ids
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("supervisor_staff_ids[{i}]"), *s))
            .collect(),
        ..Default::default()
    };
    refs.timeframes_of("activity.schedules", &schedules);
    Ok(NewActivity {
        name,
        max_participants: a.max_participants,
        is_open: a.is_open,
        category_id: a.category_id,
        planned_room_id: room,
        supervisor_staff_ids: req.supervisor_staff_ids,
        schedules,
        refs,
    })
}

/// `ListActivities`: the filter and the page.
pub fn list_activities(req: &pb::ListActivitiesRequest) -> Result<(ActivityFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let name = req.name_contains.trim();
    if name.chars().count() > 100 {
        v.add("name_contains", "must be at most 100 characters");
    }
    let filter = ActivityFilter {
        category_id: reference("category_id", req.category_id, &mut v),
        is_open: req.is_open,
        planned_room_id: reference("planned_room_id", req.planned_room_id, &mut v),
        supervisor_staff_id: reference("supervisor_staff_id", req.supervisor_staff_id, &mut v),
        name_like: (!name.is_empty()).then(|| phoenix_common::convert::like_contains(name)),
        available_to_student: None,
    };
    let page = page("activities", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    Ok((filter, finish(v, page)?))
}

/// `ListAvailableActivities`: the student and the page.
pub fn list_available_activities(req: &pb::ListAvailableActivitiesRequest) -> Result<(i64, PageRequest)> {
    let mut v = FieldViolations::default();
    let student_id = required_id("student_id", req.student_id, &mut v);
    let page = page("available activities", &student_id.to_string(), req.page_size, &req.page_token, &mut v);
    Ok((student_id, finish(v, page)?))
}

/// `ListActivityEnrollments`: the activity id and the page.
pub fn list_activity_enrollments(req: &pb::ListActivityEnrollmentsRequest) -> Result<(i64, PageRequest)> {
    let mut v = FieldViolations::default();
    let activity_id = required_id("activity_id", req.activity_id, &mut v);
    let page = page("activity enrollments", &activity_id.to_string(), req.page_size, &req.page_token, &mut v);
    Ok((activity_id, finish(v, page)?))
}

/// `UpdateActivity`.
pub fn update_activity(req: pb::UpdateActivityRequest) -> Result<ActivityUpdate> {
    let a = required("activity", req.activity)?;
    let mut v = FieldViolations::default();
    let id = required_id("activity.id", a.id, &mut v);
    let paths = collect(mask_paths(req.update_mask.as_ref(), ACTIVITY_FIELDS), &mut v).unwrap_or_default();
    let mut changes = ActivityChanges::default();
    let (mut supervisor_set, mut schedule_set) = (None, None);
    let mut refs = References::default();
    for path in paths {
        match path {
            "name" => changes.name = Some(name("activity.name", &a.name, &mut v)),
            "max_participants" => {
                changes.max_participants =
                    Some(max_participants("activity.max_participants", a.max_participants, &mut v));
            }
            "is_open" => changes.is_open = Some(a.is_open),
            "category_id" => {
                changes.category_id = Some(required_id("activity.category_id", a.category_id, &mut v));
                refs.category = Some(("activity.category_id".into(), a.category_id));
            }
            "planned_room_id" => {
                let room = reference("activity.planned_room_id", a.planned_room_id, &mut v);
                changes.planned_room_id = Some(room);
                refs.room = room.map(|r| ("activity.planned_room_id".into(), r));
            }
            "supervisors" => {
                let set = supervisors("activity.supervisors", &a.supervisors, &mut v);
                refs.staff = set
                    .iter()
                    .enumerate()
                    .map(|(i, (s, _))| (format!("activity.supervisors[{i}].staff_id"), *s))
                    .collect();
                supervisor_set = Some(set);
            }
            "schedules" => {
                let set = schedules("activity.schedules", &a.schedules, &mut v);
                refs.timeframes_of("activity.schedules", &set);
                schedule_set = Some(set);
            }
            _ => {}
        }
    }
    v.into_result()?;
    Ok(ActivityUpdate { id, changes, supervisors: supervisor_set, schedules: schedule_set, refs })
}

/// `GetActivitySchedule`: (activity id, schedule id).
pub fn get_activity_schedule(req: &pb::GetActivityScheduleRequest) -> Result<(i64, i64)> {
    pair(("activity_id", req.activity_id), ("schedule_id", req.schedule_id))
}

/// `DeleteActivitySchedule`: (activity id, schedule id).
pub fn delete_activity_schedule(req: &pb::DeleteActivityScheduleRequest) -> Result<(i64, i64)> {
    pair(("activity_id", req.activity_id), ("schedule_id", req.schedule_id))
}

/// `CreateActivitySchedule` (the schedule message may be left out: weekday 0 is named).
pub fn create_activity_schedule(req: pb::CreateActivityScheduleRequest) -> Result<NewSchedule> {
    let mut v = FieldViolations::default();
    let activity_id = required_id("activity_id", req.activity_id, &mut v);
    let s = req.schedule.unwrap_or_default();
    let weekday = weekday("schedule.weekday", s.weekday, &mut v);
    let timeframe = reference("schedule.timeframe_id", s.timeframe_id, &mut v);
    v.into_result()?;
    Ok(NewSchedule {
        activity_id,
        slot: (weekday, timeframe),
        refs: References::timeframe("schedule.timeframe_id", timeframe),
    })
}

/// `UpdateActivitySchedule`.
pub fn update_activity_schedule(req: pb::UpdateActivityScheduleRequest) -> Result<ScheduleUpdate> {
    let mut v = FieldViolations::default();
    let activity_id = required_id("activity_id", req.activity_id, &mut v);
    let s = required("schedule", req.schedule)?;
    let schedule_id = required_id("schedule.id", s.id, &mut v);
    let paths = collect(mask_paths(req.update_mask.as_ref(), SCHEDULE_FIELDS), &mut v).unwrap_or_default();
    let (mut new_weekday, mut timeframe) = (None, None);
    for path in paths {
        match path {
            "weekday" => new_weekday = Some(weekday("schedule.weekday", s.weekday, &mut v)),
            "timeframe_id" => timeframe = Some(reference("schedule.timeframe_id", s.timeframe_id, &mut v)),
            _ => {}
        }
    }
    v.into_result()?;
    Ok(ScheduleUpdate {
        activity_id,
        schedule_id,
        weekday: new_weekday,
        timeframe,
        refs: References::timeframe("schedule.timeframe_id", timeframe.flatten()),
    })
}

/// `AddActivitySupervisor`: (activity id, staff id).
pub fn add_activity_supervisor(req: &pb::AddActivitySupervisorRequest) -> Result<(i64, i64)> {
    pair(("activity_id", req.activity_id), ("staff_id", req.staff_id))
}

/// `RemoveActivitySupervisor`: (activity id, staff id).
pub fn remove_activity_supervisor(req: &pb::RemoveActivitySupervisorRequest) -> Result<(i64, i64)> {
    pair(("activity_id", req.activity_id), ("staff_id", req.staff_id))
}

/// `UpdateActivitySupervisor`.
pub fn update_activity_supervisor(req: pb::UpdateActivitySupervisorRequest) -> Result<SupervisorUpdate> {
    let mut v = FieldViolations::default();
    let activity_id = required_id("activity_id", req.activity_id, &mut v);
    let s = required("supervisor", req.supervisor)?;
    let staff_id = required_id("supervisor.staff_id", s.staff_id, &mut v);
    let paths = collect(mask_paths(req.update_mask.as_ref(), SUPERVISOR_FIELDS), &mut v).unwrap_or_default();
    v.into_result()?;
    Ok(SupervisorUpdate { activity_id, staff_id, is_primary: paths.contains(&"is_primary").then_some(s.is_primary) })
}

/// `EnrollStudent`: (activity id, student id).
pub fn enroll_student(req: &pb::EnrollStudentRequest) -> Result<(i64, i64)> {
    pair(("activity_id", req.activity_id), ("student_id", req.student_id))
}

/// `UnenrollStudent`: (activity id, student id).
pub fn unenroll_student(req: &pb::UnenrollStudentRequest) -> Result<(i64, i64)> {
    pair(("activity_id", req.activity_id), ("student_id", req.student_id))
}

/// `ReplaceEnrollments`.
pub fn replace_enrollments(req: pb::ReplaceEnrollmentsRequest) -> Result<EnrollmentSet> {
    let mut v = FieldViolations::default();
    let activity_id = required_id("activity_id", req.activity_id, &mut v);
    let wanted = distinct_ids("student_ids", "student", &req.student_ids, &mut v);
    v.into_result()?;
    Ok(EnrollmentSet { activity_id, requested: req.student_ids, wanted })
}

#[cfg(test)]
mod tests {
    use phoenix_common::validate::fields_of;

    use super::*;

    #[test]
    fn colors() {
        let mut v = FieldViolations::default();
        assert_eq!(color("c", "7ED321", &mut v).as_deref(), Some("#7ED321"));
        assert_eq!(color("c", "#abc", &mut v).as_deref(), Some("#abc"));
        assert_eq!(color("c", "", &mut v), None);
        assert!(v.clone().into_result().is_ok());
        assert_eq!(color("c", "#12", &mut v), None);
        assert!(v.into_result().is_err());
    }

    #[test]
    fn references_zero_is_none_and_negative_is_named() {
        let mut v = FieldViolations::default();
        assert_eq!(reference("r", 0, &mut v), None);
        assert_eq!(reference("r", 4, &mut v), Some(4));
        assert!(v.clone().into_result().is_ok());
        assert_eq!(reference("r", -1, &mut v), None);
        assert_eq!(fields_of(v), ["r"]);
    }

    #[test]
    fn supervisor_sets_need_exactly_one_primary() {
        let sup = |staff_id, is_primary| pb::Supervisor { staff_id, is_primary };
        let mut v = FieldViolations::default();
        assert_eq!(supervisors("s", &[sup(1, false), sup(2, true)], &mut v), [(1, false), (2, true)]);
        assert!(supervisors("s", &[], &mut v).is_empty());
        assert!(v.into_result().is_ok());
        let mut v = FieldViolations::default();
        supervisors("s", &[sup(1, true), sup(1, true)], &mut v);
        assert_eq!(fields_of(v), ["s[1].staff_id", "s"]);
        let mut v = FieldViolations::default();
        supervisors("s", &[sup(1, false)], &mut v);
        assert_eq!(fields_of(v), ["s"]);
    }

    #[test]
    fn schedule_sets_check_weekdays_and_duplicates() {
        let s = |weekday, timeframe_id| pb::ActivitySchedule { weekday, timeframe_id, ..Default::default() };
        let mut v = FieldViolations::default();
        assert_eq!(schedules("x", &[s(1, 0), s(1, 0), s(7, 3)], &mut v), [(1, None), (1, None), (7, Some(3))]);
        assert!(v.into_result().is_ok());
        let mut v = FieldViolations::default();
        schedules("x", &[s(0, 3), s(8, -1), s(2, 3), s(2, 3)], &mut v);
        assert_eq!(fields_of(v), ["x[0].weekday", "x[1].weekday", "x[1].timeframe_id", "x[3]"]);
    }

    #[test]
    fn sub_resource_ids_are_checked_together() {
        let Err(phoenix_common::Error::InvalidArgument(v)) = pair(("a", 0), ("b", -1)) else { panic!("accepted") };
        assert_eq!(fields_of(v), ["a", "b"]);
    }
}
