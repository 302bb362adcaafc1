//! The tonic handlers of `phoenix.activities.v1.ActivitiesService`.

use std::collections::BTreeSet;

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use pb::activities_service_server::ActivitiesService;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::caller::Caller;
use phoenix_common::convert::like_contains;
use phoenix_common::db::DbPool;
use phoenix_common::page::Page;
use phoenix_common::validate::{collect, mask_paths};
use phoenix_common::{Error, FieldViolations};
use phoenix_proto::activities::v1 as pb;
use tonic::{Request, Response, Status};

use crate::repo::{self, ActivityChanges, ActivityFilter, ActivityRow};
use crate::{out, validate};

macro_rules! methods {
    ($($rpc:literal => $perm:literal),* $(,)?) => {
        &[$((concat!("/phoenix.activities.v1.ActivitiesService/", $rpc), Requirement::Permission($perm))),*]
    };
}

/// The permission each RPC needs (checked by the shared auth layer; strings from the seed).
/// Writes to an activity and its sub-resources are further limited by the ownership rule
/// (admin, creator or planned supervisor), which no permission bypasses.
pub const METHODS: MethodTable = methods![
    "ListCategories" => "activities:read",
    "CreateCategory" => "activities:manage",
    "CreateActivity" => "activities:create",
    "GetActivity" => "activities:read",
    "ListActivities" => "activities:read",
    "UpdateActivity" => "activities:update",
    "DeleteActivity" => "activities:delete",
    "ListAvailableActivities" => "activities:read",
    "ListActivitySchedules" => "activities:read",
    "GetActivitySchedule" => "activities:read",
    "CreateActivitySchedule" => "activities:update",
    "UpdateActivitySchedule" => "activities:update",
    "DeleteActivitySchedule" => "activities:update",
    "ListActivitySupervisors" => "activities:read",
    "AddActivitySupervisor" => "activities:assign",
    "UpdateActivitySupervisor" => "activities:assign",
    "RemoveActivitySupervisor" => "activities:assign",
    "EnrollStudent" => "activities:enroll",
    "UnenrollStudent" => "activities:enroll",
    "ReplaceEnrollments" => "activities:enroll",
];

/// Failed-precondition reasons.
pub mod reason {
    /// No places left.
    pub const ACTIVITY_FULL: &str = "ACTIVITY_FULL";
    /// Not open for enrollment.
    pub const ACTIVITY_CLOSED: &str = "ACTIVITY_CLOSED";
    /// A room session of the activity is running.
    pub const SESSION_RUNNING: &str = "SESSION_RUNNING";
    /// The change would leave the activity without its primary supervisor.
    pub const PRIMARY_SUPERVISOR: &str = "PRIMARY_SUPERVISOR";
    /// `max_participants` would fall below the current enrollments.
    pub const ENROLLMENTS_EXCEED_CAPACITY: &str = "ENROLLMENTS_EXCEED_CAPACITY";
}

/// Fields `UpdateActivity` may change.
const ACTIVITY_FIELDS: &[&str] =
    &["name", "max_participants", "is_open", "category_id", "planned_room_id", "supervisors", "schedules"];
/// Fields `UpdateActivitySchedule` may change.
const SCHEDULE_FIELDS: &[&str] = &["weekday", "timeframe_id"];
/// Fields `UpdateActivitySupervisor` may change.
const SUPERVISOR_FIELDS: &[&str] = &["is_primary"];

/// The service state.
#[derive(Clone)]
pub struct ActivitiesServiceImpl {
    pool: DbPool,
}

impl std::fmt::Debug for ActivitiesServiceImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivitiesServiceImpl").finish_non_exhaustive()
    }
}

impl ActivitiesServiceImpl {
    /// A service on `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// Resource rule (reference §1.5 [R], §3.5): an activity and its sub-resources are changed
/// only by an admin (wildcard), its creator, or one of its planned supervisors.
/// `activities:manage` does not bypass it.
async fn ensure_can_modify(conn: &mut AsyncPgConnection, caller: &Caller, a: &ActivityRow) -> Result<(), Error> {
    if caller.is_admin {
        return Ok(());
    }
    if let Some(staff) = caller.staff_id
        && (a.created_by == Some(staff) || repo::supervisors_of(conn, a.id).await?.iter().any(|(s, _)| *s == staff))
    {
        return Ok(());
    }
    Err(Error::PermissionDenied(format!(
        "you can only modify activities that you created or supervise (activity {})",
        a.id
    )))
}

/// Locks the activity (serialising every write to it and its sub-resources) and checks the
/// caller may change it.
async fn lock_for_change(conn: &mut AsyncPgConnection, caller: &Caller, id: i64) -> Result<ActivityRow, Error> {
    let a = repo::lock_activity(conn, id).await?.ok_or_else(|| Error::not_found("activity", id))?;
    ensure_can_modify(conn, caller, &a).await?;
    Ok(a)
}

/// The activity, or `NotFound`.
async fn existing_activity(conn: &mut AsyncPgConnection, id: i64) -> Result<ActivityRow, Error> {
    repo::find_activity(conn, id).await?.ok_or_else(|| Error::not_found("activity", id))
}

/// Rows a request refers to by id. A missing one is the caller's mistake in that field:
/// `InvalidArgument` naming it (api.md "Errors").
#[derive(Default)]
struct References {
    category: Option<(String, i64)>,
    room: Option<(String, i64)>,
    staff: Vec<(String, i64)>,
    timeframes: Vec<(String, i64)>,
}

impl References {
    async fn check(self, conn: &mut AsyncPgConnection) -> Result<(), Error> {
        let mut v = FieldViolations::default();
        if let Some((field, id)) = self.category
            && !repo::exists(conn, "activities.categories", id).await?
        {
            v.add(field, format!("category {id} does not exist"));
        }
        if let Some((field, id)) = self.room
            && !repo::exists(conn, "facilities.rooms", id).await?
        {
            v.add(field, format!("room {id} does not exist"));
        }
        let ids: Vec<i64> = self.staff.iter().map(|(_, id)| *id).collect();
        let found = repo::existing_ids(conn, "users.staff", &ids).await?;
        for (field, id) in self.staff {
            if !found.contains(&id) {
                v.add(field, format!("staff {id} does not exist"));
            }
        }
        let ids: Vec<i64> = self.timeframes.iter().map(|(_, id)| *id).collect();
        let found = repo::existing_ids(conn, "schedule.timeframes", &ids).await?;
        for (field, id) in self.timeframes {
            if !found.contains(&id) {
                v.add(field, format!("timeframe {id} does not exist"));
            }
        }
        v.into_result()
    }

    fn timeframes_of(&mut self, prefix: &str, schedules: &[(i16, Option<i64>)]) {
        for (i, (_, t)) in schedules.iter().enumerate() {
            if let Some(t) = t {
                self.timeframes.push((format!("{prefix}[{i}].timeframe_id"), *t));
            }
        }
    }
}

fn full(a: &ActivityRow) -> Error {
    Error::precondition(reason::ACTIVITY_FULL, format!("activity {} is full ({} places)", a.id, a.max_participants))
}

fn closed(a: &ActivityRow) -> Error {
    Error::precondition(reason::ACTIVITY_CLOSED, format!("activity {} is not open for enrollment", a.id))
}

fn primary_refused(activity_id: i64, staff_id: i64, what: &str) -> Error {
    Error::precondition(
        reason::PRIMARY_SUPERVISOR,
        format!(
            "staff {staff_id} is the primary supervisor of activity {activity_id} and cannot be {what}; make another \
             supervisor primary first (or replace the whole set with UpdateActivity)"
        ),
    )
}

fn today() -> chrono::NaiveDate {
    phoenix_common::time::business_date(Utc::now())
}

fn count(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A positive id or an `InvalidArgument` naming `field`.
fn required_id(field: &str, raw: i64) -> Result<i64, Error> {
    let mut v = FieldViolations::default();
    validate::id(field, raw, &mut v);
    v.into_result()?;
    Ok(raw)
}

#[tonic::async_trait]
impl ActivitiesService for ActivitiesServiceImpl {
    async fn list_categories(&self, request: Request<pb::ListCategoriesRequest>) -> Reply<pb::ListCategoriesResponse> {
        let req = request.into_inner();
        let page = Page::parse(req.page_size, &req.page_token, "categories")?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let (mut rows, total) =
            repo::list_categories(&mut conn, page.after, page.fetch_limit()).await.map_err(Error::from)?;
        let next_page_token = page.finish(&mut rows, |r| r.id, "categories");
        Ok(Response::new(pb::ListCategoriesResponse {
            categories: rows.into_iter().map(out::category).collect(),
            next_page_token,
            total_size: count(total),
        }))
    }

    async fn create_category(&self, request: Request<pb::CreateCategoryRequest>) -> Reply<pb::CreateCategoryResponse> {
        let c = request.into_inner().category.ok_or_else(|| Error::invalid("category", "is required"))?;
        let mut v = FieldViolations::default();
        let name = validate::name("category.name", &c.name, &mut v);
        let color = validate::color("category.color", &c.color, &mut v);
        v.into_result()?;
        let description = Some(c.description.trim()).filter(|d| !d.is_empty());
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = conn
            .transaction::<_, Error, _>(async |conn| {
                repo::insert_category(conn, &name, description, color.as_deref())
                    .await?
                    .ok_or_else(|| Error::AlreadyExists(format!("category {name:?} already exists")))
            })
            .await?;
        Ok(Response::new(pb::CreateCategoryResponse { category: Some(out::category(row)) }))
    }

    async fn create_activity(&self, request: Request<pb::CreateActivityRequest>) -> Reply<pb::CreateActivityResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let a = req.activity.ok_or_else(|| Error::invalid("activity", "is required"))?;
        let mut v = FieldViolations::default();
        let name = validate::name("activity.name", &a.name, &mut v);
        validate::max_participants("activity.max_participants", a.max_participants, &mut v);
        validate::id("activity.category_id", a.category_id, &mut v);
        let room = validate::optional_id("activity.planned_room_id", a.planned_room_id, &mut v);
        let mut seen = BTreeSet::new();
        for (i, s) in req.supervisor_staff_ids.iter().enumerate() {
            validate::id(&format!("supervisor_staff_ids[{i}]"), *s, &mut v);
            if !seen.insert(*s) {
                v.add(format!("supervisor_staff_ids[{i}]"), format!("staff {s} is listed twice"));
            }
        }
        let schedules = validate::schedules("activity.schedules", &a.schedules, &mut v);
        v.into_result()?;
        if !caller.is_admin && caller.staff_id.is_none() {
            return Err(Error::PermissionDenied("only staff members can create activities".into()).into());
        }
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
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let created = conn
            .transaction::<_, Error, _>(async |conn| {
                refs.check(conn).await?;
                let new = repo::NewActivity {
                    name: &name,
                    max_participants: a.max_participants,
                    is_open: a.is_open,
                    category_id: a.category_id,
                    planned_room_id: room,
                    created_by: caller.staff_id,
                };
                let row = repo::insert_activity(conn, new, &req.supervisor_staff_ids).await?;
                repo::replace_schedules(conn, row.id, &schedules).await?;
                out::activity(conn, row).await
            })
            .await?;
        Ok(Response::new(pb::CreateActivityResponse { activity: Some(created) }))
    }

    async fn get_activity(&self, request: Request<pb::GetActivityRequest>) -> Reply<pb::GetActivityResponse> {
        let id = required_id("id", request.get_ref().id)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = existing_activity(&mut conn, id).await?;
        Ok(Response::new(pb::GetActivityResponse { activity: Some(out::activity(&mut conn, row).await?) }))
    }

    async fn list_activities(&self, request: Request<pb::ListActivitiesRequest>) -> Reply<pb::ListActivitiesResponse> {
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let name = req.name_contains.trim();
        if name.chars().count() > 100 {
            v.add("name_contains", "must be at most 100 characters");
        }
        let filter = ActivityFilter {
            category_id: validate::optional_id("category_id", req.category_id, &mut v),
            is_open: req.is_open,
            planned_room_id: validate::optional_id("planned_room_id", req.planned_room_id, &mut v),
            supervisor_staff_id: validate::optional_id("supervisor_staff_id", req.supervisor_staff_id, &mut v),
            name_like: (!name.is_empty()).then(|| like_contains(name)),
            available_to_student: None,
        };
        let filters = format!("activities {filter:?}");
        let page = collect(Page::parse(req.page_size, &req.page_token, &filters), &mut v);
        v.into_result()?;
        let Some(page) = page else { return Err(Error::invalid("page_token", "invalid").into()) };
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let (mut rows, total) =
            repo::list_activities(&mut conn, &filter, page.after, page.fetch_limit()).await.map_err(Error::from)?;
        let next_page_token = page.finish(&mut rows, |r| r.id, &filters);
        Ok(Response::new(pb::ListActivitiesResponse {
            activities: out::activities(&mut conn, rows).await?,
            next_page_token,
            total_size: count(total),
        }))
    }

    async fn update_activity(&self, request: Request<pb::UpdateActivityRequest>) -> Reply<pb::UpdateActivityResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let a = req.activity.ok_or_else(|| Error::invalid("activity", "is required"))?;
        let mut v = FieldViolations::default();
        let id = validate::id("activity.id", a.id, &mut v);
        let paths = collect(mask_paths(req.update_mask.as_ref(), ACTIVITY_FIELDS), &mut v).unwrap_or_default();
        let mut changes = ActivityChanges::default();
        let (mut supervisors, mut schedules) = (None, None);
        let mut refs = References::default();
        for path in paths {
            match path {
                "name" => changes.name = Some(validate::name("activity.name", &a.name, &mut v)),
                "max_participants" => {
                    changes.max_participants =
                        Some(validate::max_participants("activity.max_participants", a.max_participants, &mut v));
                }
                "is_open" => changes.is_open = Some(a.is_open),
                "category_id" => {
                    changes.category_id = Some(validate::id("activity.category_id", a.category_id, &mut v));
                    refs.category = Some(("activity.category_id".into(), a.category_id));
                }
                "planned_room_id" => {
                    let room = validate::optional_id("activity.planned_room_id", a.planned_room_id, &mut v);
                    changes.planned_room_id = Some(room);
                    refs.room = room.map(|r| ("activity.planned_room_id".into(), r));
                }
                "supervisors" => {
                    let set = validate::supervisors("activity.supervisors", &a.supervisors, &mut v);
                    refs.staff = set
                        .iter()
                        .enumerate()
                        .map(|(i, (s, _))| (format!("activity.supervisors[{i}].staff_id"), *s))
                        .collect();
                    supervisors = Some(set);
                }
                "schedules" => {
                    let set = validate::schedules("activity.schedules", &a.schedules, &mut v);
                    refs.timeframes_of("activity.schedules", &set);
                    schedules = Some(set);
                }
                _ => {}
            }
        }
        v.into_result()?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let updated = conn
            .transaction::<_, Error, _>(async |conn| {
                lock_for_change(conn, &caller, id).await?;
                refs.check(conn).await?;
                if let Some(max) = changes.max_participants {
                    let enrolled = repo::enrolled(conn, id).await?.len();
                    if enrolled > usize::try_from(max).unwrap_or(0) {
                        return Err(Error::precondition(
                            reason::ENROLLMENTS_EXCEED_CAPACITY,
                            format!(
                                "activity {id} has {enrolled} enrollments; unenroll students before lowering \
                                 max_participants to {max}"
                            ),
                        ));
                    }
                }
                repo::update_activity(conn, id, &changes).await?;
                if let Some(set) = &supervisors {
                    repo::replace_supervisors(conn, id, set).await?;
                }
                if let Some(set) = &schedules {
                    repo::replace_schedules(conn, id, set).await?;
                }
                let row = existing_activity(conn, id).await?;
                out::activity(conn, row).await
            })
            .await?;
        Ok(Response::new(pb::UpdateActivityResponse { activity: Some(updated) }))
    }

    async fn delete_activity(&self, request: Request<pb::DeleteActivityRequest>) -> Reply<pb::DeleteActivityResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = required_id("id", request.get_ref().id)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        conn.transaction::<_, Error, _>(async |conn| {
            // The row lock also holds off a session starting now: its insert needs a key-share
            // lock on this row, so it waits and then finds the activity gone.
            lock_for_change(conn, &caller, id).await?;
            if let Some((session, room)) = repo::running_session(conn, id).await? {
                return Err(Error::precondition(
                    reason::SESSION_RUNNING,
                    format!("session {session} of activity {id} is running in room {room}; end it first"),
                ));
            }
            repo::delete_activity(conn, id).await?;
            Ok(())
        })
        .await?;
        Ok(Response::new(pb::DeleteActivityResponse {}))
    }

    async fn list_available_activities(
        &self,
        request: Request<pb::ListAvailableActivitiesRequest>,
    ) -> Reply<pb::ListAvailableActivitiesResponse> {
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let student_id = validate::id("student_id", req.student_id, &mut v);
        let filters = format!("available {student_id}");
        let page = collect(Page::parse(req.page_size, &req.page_token, &filters), &mut v);
        v.into_result()?;
        let Some(page) = page else { return Err(Error::invalid("page_token", "invalid").into()) };
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        if !repo::exists(&mut conn, "users.students", student_id).await.map_err(Error::from)? {
            return Err(Error::not_found("student", student_id).into());
        }
        let filter = ActivityFilter { available_to_student: Some(student_id), ..Default::default() };
        let (mut rows, total) =
            repo::list_activities(&mut conn, &filter, page.after, page.fetch_limit()).await.map_err(Error::from)?;
        let next_page_token = page.finish(&mut rows, |r| r.id, &filters);
        Ok(Response::new(pb::ListAvailableActivitiesResponse {
            activities: out::activities(&mut conn, rows).await?,
            next_page_token,
            total_size: count(total),
        }))
    }

    async fn list_activity_schedules(
        &self,
        request: Request<pb::ListActivitySchedulesRequest>,
    ) -> Reply<pb::ListActivitySchedulesResponse> {
        let id = required_id("activity_id", request.get_ref().activity_id)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        existing_activity(&mut conn, id).await?;
        let rows = repo::schedules_of(&mut conn, &[id]).await.map_err(Error::from)?;
        Ok(Response::new(pb::ListActivitySchedulesResponse {
            schedules: rows.into_iter().map(out::schedule).collect(),
        }))
    }

    async fn get_activity_schedule(
        &self,
        request: Request<pb::GetActivityScheduleRequest>,
    ) -> Reply<pb::GetActivityScheduleResponse> {
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let activity_id = validate::id("activity_id", req.activity_id, &mut v);
        let schedule_id = validate::id("schedule_id", req.schedule_id, &mut v);
        v.into_result()?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        existing_activity(&mut conn, activity_id).await?;
        let row = repo::find_schedule(&mut conn, activity_id, schedule_id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::not_found("schedule of this activity", schedule_id))?;
        Ok(Response::new(pb::GetActivityScheduleResponse { schedule: Some(out::schedule(row)) }))
    }

    async fn create_activity_schedule(
        &self,
        request: Request<pb::CreateActivityScheduleRequest>,
    ) -> Reply<pb::CreateActivityScheduleResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let activity_id = validate::id("activity_id", req.activity_id, &mut v);
        let s = req.schedule.unwrap_or_default();
        let weekday = validate::weekday("schedule.weekday", s.weekday, &mut v);
        let timeframe = validate::optional_id("schedule.timeframe_id", s.timeframe_id, &mut v);
        v.into_result()?;
        let refs = References {
            timeframes: timeframe.map(|t| ("schedule.timeframe_id".to_owned(), t)).into_iter().collect(),
            ..Default::default()
        };
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = conn
            .transaction::<_, Error, _>(async |conn| {
                lock_for_change(conn, &caller, activity_id).await?;
                refs.check(conn).await?;
                let id = repo::insert_schedule(conn, activity_id, weekday, timeframe).await?.ok_or_else(|| {
                    Error::AlreadyExists(format!(
                        "activity {activity_id} already has a schedule on weekday {weekday} in timeframe {}",
                        timeframe.unwrap_or(0)
                    ))
                })?;
                repo::find_schedule(conn, activity_id, id)
                    .await?
                    .ok_or_else(|| Error::Internal(anyhow::anyhow!("schedule {id} vanished")))
            })
            .await?;
        Ok(Response::new(pb::CreateActivityScheduleResponse { schedule: Some(out::schedule(row)) }))
    }

    async fn update_activity_schedule(
        &self,
        request: Request<pb::UpdateActivityScheduleRequest>,
    ) -> Reply<pb::UpdateActivityScheduleResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let activity_id = validate::id("activity_id", req.activity_id, &mut v);
        let s = req.schedule.ok_or_else(|| Error::invalid("schedule", "is required"))?;
        let schedule_id = validate::id("schedule.id", s.id, &mut v);
        let paths = collect(mask_paths(req.update_mask.as_ref(), SCHEDULE_FIELDS), &mut v).unwrap_or_default();
        let (mut weekday, mut timeframe) = (None, None);
        for path in paths {
            match path {
                "weekday" => weekday = Some(validate::weekday("schedule.weekday", s.weekday, &mut v)),
                "timeframe_id" => {
                    timeframe = Some(validate::optional_id("schedule.timeframe_id", s.timeframe_id, &mut v));
                }
                _ => {}
            }
        }
        v.into_result()?;
        let refs = References {
            timeframes: timeframe.flatten().map(|t| ("schedule.timeframe_id".to_owned(), t)).into_iter().collect(),
            ..Default::default()
        };
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = conn
            .transaction::<_, Error, _>(async |conn| {
                lock_for_change(conn, &caller, activity_id).await?;
                let old = repo::find_schedule(conn, activity_id, schedule_id)
                    .await?
                    .ok_or_else(|| Error::not_found("schedule of this activity", schedule_id))?;
                refs.check(conn).await?;
                let weekday = weekday.unwrap_or(old.weekday);
                let timeframe = timeframe.unwrap_or(old.timeframe_id);
                if let Some(t) = timeframe
                    && repo::schedule_taken(conn, activity_id, weekday, t, schedule_id).await?
                {
                    return Err(Error::AlreadyExists(format!(
                        "activity {activity_id} already has a schedule on weekday {weekday} in timeframe {t}"
                    )));
                }
                repo::update_schedule(conn, schedule_id, weekday, timeframe).await?;
                repo::find_schedule(conn, activity_id, schedule_id)
                    .await?
                    .ok_or_else(|| Error::Internal(anyhow::anyhow!("schedule {schedule_id} vanished")))
            })
            .await?;
        Ok(Response::new(pb::UpdateActivityScheduleResponse { schedule: Some(out::schedule(row)) }))
    }

    async fn delete_activity_schedule(
        &self,
        request: Request<pb::DeleteActivityScheduleRequest>,
    ) -> Reply<pb::DeleteActivityScheduleResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let activity_id = validate::id("activity_id", req.activity_id, &mut v);
        let schedule_id = validate::id("schedule_id", req.schedule_id, &mut v);
        v.into_result()?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        conn.transaction::<_, Error, _>(async |conn| {
            lock_for_change(conn, &caller, activity_id).await?;
            if !repo::delete_schedule(conn, activity_id, schedule_id).await? {
                return Err(Error::not_found("schedule of this activity", schedule_id));
            }
            Ok(())
        })
        .await?;
        Ok(Response::new(pb::DeleteActivityScheduleResponse {}))
    }

    async fn list_activity_supervisors(
        &self,
        request: Request<pb::ListActivitySupervisorsRequest>,
    ) -> Reply<pb::ListActivitySupervisorsResponse> {
        let id = required_id("activity_id", request.get_ref().activity_id)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        existing_activity(&mut conn, id).await?;
        let rows = repo::supervisors_of(&mut conn, id).await.map_err(Error::from)?;
        Ok(Response::new(pb::ListActivitySupervisorsResponse { supervisors: out::supervisors(rows) }))
    }

    async fn add_activity_supervisor(
        &self,
        request: Request<pb::AddActivitySupervisorRequest>,
    ) -> Reply<pb::AddActivitySupervisorResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let activity_id = validate::id("activity_id", req.activity_id, &mut v);
        let staff_id = validate::id("staff_id", req.staff_id, &mut v);
        v.into_result()?;
        let refs = References { staff: vec![("staff_id".into(), staff_id)], ..Default::default() };
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let rows = conn
            .transaction::<_, Error, _>(async |conn| {
                lock_for_change(conn, &caller, activity_id).await?;
                refs.check(conn).await?;
                let current = repo::supervisors_of(conn, activity_id).await?;
                if current.iter().any(|(s, _)| *s == staff_id) {
                    return Err(Error::AlreadyExists(format!(
                        "staff {staff_id} is already a planned supervisor of activity {activity_id}"
                    )));
                }
                // The first supervisor is the primary one whatever the request says.
                repo::add_supervisor(conn, activity_id, staff_id, req.is_primary || current.is_empty()).await?;
                Ok(repo::supervisors_of(conn, activity_id).await?)
            })
            .await?;
        Ok(Response::new(pb::AddActivitySupervisorResponse { supervisors: out::supervisors(rows) }))
    }

    async fn update_activity_supervisor(
        &self,
        request: Request<pb::UpdateActivitySupervisorRequest>,
    ) -> Reply<pb::UpdateActivitySupervisorResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let activity_id = validate::id("activity_id", req.activity_id, &mut v);
        let s = req.supervisor.ok_or_else(|| Error::invalid("supervisor", "is required"))?;
        let staff_id = validate::id("supervisor.staff_id", s.staff_id, &mut v);
        let paths = collect(mask_paths(req.update_mask.as_ref(), SUPERVISOR_FIELDS), &mut v).unwrap_or_default();
        v.into_result()?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let rows = conn
            .transaction::<_, Error, _>(async |conn| {
                lock_for_change(conn, &caller, activity_id).await?;
                let current = repo::supervisors_of(conn, activity_id).await?;
                let &(_, is_primary) = current
                    .iter()
                    .find(|(id, _)| *id == staff_id)
                    .ok_or_else(|| Error::not_found("planned supervisor (staff id) of this activity", staff_id))?;
                if paths.contains(&"is_primary") {
                    match (is_primary, s.is_primary) {
                        (false, true) => repo::make_primary(conn, activity_id, staff_id).await?,
                        (true, false) => return Err(primary_refused(activity_id, staff_id, "un-marked")),
                        _ => {}
                    }
                }
                Ok(repo::supervisors_of(conn, activity_id).await?)
            })
            .await?;
        Ok(Response::new(pb::UpdateActivitySupervisorResponse { supervisors: out::supervisors(rows) }))
    }

    async fn remove_activity_supervisor(
        &self,
        request: Request<pb::RemoveActivitySupervisorRequest>,
    ) -> Reply<pb::RemoveActivitySupervisorResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let activity_id = validate::id("activity_id", req.activity_id, &mut v);
        let staff_id = validate::id("staff_id", req.staff_id, &mut v);
        v.into_result()?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let rows = conn
            .transaction::<_, Error, _>(async |conn| {
                lock_for_change(conn, &caller, activity_id).await?;
                let current = repo::supervisors_of(conn, activity_id).await?;
                let &(_, is_primary) = current
                    .iter()
                    .find(|(id, _)| *id == staff_id)
                    .ok_or_else(|| Error::not_found("planned supervisor (staff id) of this activity", staff_id))?;
                if is_primary {
                    return Err(primary_refused(activity_id, staff_id, "removed"));
                }
                repo::remove_supervisor(conn, activity_id, staff_id).await?;
                Ok(repo::supervisors_of(conn, activity_id).await?)
            })
            .await?;
        Ok(Response::new(pb::RemoveActivitySupervisorResponse { supervisors: out::supervisors(rows) }))
    }

    async fn enroll_student(&self, request: Request<pb::EnrollStudentRequest>) -> Reply<pb::EnrollStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let (activity_id, student_id) =
            (validate::id("activity_id", req.activity_id, &mut v), validate::id("student_id", req.student_id, &mut v));
        v.into_result()?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let n = conn
            .transaction::<_, Error, _>(async |conn| {
                let a = lock_for_change(conn, &caller, activity_id).await?;
                if !repo::exists(conn, "users.students", student_id).await? {
                    return Err(Error::invalid("student_id", format!("student {student_id} does not exist")));
                }
                let enrolled = repo::enrolled(conn, activity_id).await?;
                if enrolled.contains(&student_id) {
                    return Err(Error::AlreadyExists(format!(
                        "student {student_id} is already enrolled in activity {activity_id}"
                    )));
                }
                if !a.is_open {
                    return Err(closed(&a));
                }
                if enrolled.len() >= usize::try_from(a.max_participants).unwrap_or(0) {
                    return Err(full(&a));
                }
                repo::insert_enrollment(conn, activity_id, student_id, today()).await?;
                Ok(enrolled.len() + 1)
            })
            .await?;
        Ok(Response::new(pb::EnrollStudentResponse { enrolled_count: i32::try_from(n).unwrap_or(i32::MAX) }))
    }

    async fn unenroll_student(
        &self,
        request: Request<pb::UnenrollStudentRequest>,
    ) -> Reply<pb::UnenrollStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let (activity_id, student_id) =
            (validate::id("activity_id", req.activity_id, &mut v), validate::id("student_id", req.student_id, &mut v));
        v.into_result()?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let n = conn
            .transaction::<_, Error, _>(async |conn| {
                lock_for_change(conn, &caller, activity_id).await?;
                if repo::delete_enrollments(conn, activity_id, &[student_id]).await? == 0 {
                    return Err(Error::not_found("enrollment of student", student_id));
                }
                Ok(repo::enrolled(conn, activity_id).await?.len())
            })
            .await?;
        Ok(Response::new(pb::UnenrollStudentResponse { enrolled_count: i32::try_from(n).unwrap_or(i32::MAX) }))
    }

    async fn replace_enrollments(
        &self,
        request: Request<pb::ReplaceEnrollmentsRequest>,
    ) -> Reply<pb::ReplaceEnrollmentsResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let activity_id = validate::id("activity_id", req.activity_id, &mut v);
        let mut wanted = BTreeSet::new();
        for (i, s) in req.student_ids.iter().enumerate() {
            validate::id(&format!("student_ids[{i}]"), *s, &mut v);
            if !wanted.insert(*s) {
                v.add(format!("student_ids[{i}]"), format!("student {s} is listed twice"));
            }
        }
        v.into_result()?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let ids = conn
            .transaction::<_, Error, _>(async |conn| {
                let a = lock_for_change(conn, &caller, activity_id).await?;
                let wanted_ids: Vec<i64> = wanted.iter().copied().collect();
                let found = repo::existing_ids(conn, "users.students", &wanted_ids).await?;
                let mut v = FieldViolations::default();
                for (i, s) in req.student_ids.iter().enumerate() {
                    if !found.contains(s) {
                        v.add(format!("student_ids[{i}]"), format!("student {s} does not exist"));
                    }
                }
                v.into_result()?;
                let current: BTreeSet<i64> = repo::enrolled(conn, activity_id).await?.into_iter().collect();
                let added: Vec<i64> = wanted.difference(&current).copied().collect();
                // Closed activities may still shrink; only adding students needs is_open.
                if !added.is_empty() && !a.is_open {
                    return Err(closed(&a));
                }
                if wanted.len() > usize::try_from(a.max_participants).unwrap_or(0) {
                    return Err(full(&a));
                }
                let removed: Vec<i64> = current.difference(&wanted).copied().collect();
                repo::delete_enrollments(conn, activity_id, &removed).await?;
                let day = today();
                for s in added {
                    repo::insert_enrollment(conn, activity_id, s, day).await?;
                }
                Ok(repo::enrolled(conn, activity_id).await?)
            })
            .await?;
        Ok(Response::new(pb::ReplaceEnrollmentsResponse { student_ids: ids }))
    }
}
