//! The tonic handlers of `phoenix.activities.v1.ActivitiesService`.

use std::collections::BTreeSet;

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use pb::activities_service_server::ActivitiesService;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::caller::Caller;
use phoenix_common::db::DbPool;
use phoenix_common::page::Page;
use phoenix_common::{Error, FieldViolations};
use phoenix_proto::activities::v1 as pb;
use tonic::{Request, Response, Status};

use crate::repo::{self, ActivityRow, CategoryRow};
use crate::validate;

/// The permission each RPC needs (checked by the shared auth layer; strings from the seed).
pub const METHODS: MethodTable = &[
    ("/phoenix.activities.v1.ActivitiesService/ListCategories", Requirement::Permission("activities:read")),
    ("/phoenix.activities.v1.ActivitiesService/CreateCategory", Requirement::Permission("activities:manage")),
    ("/phoenix.activities.v1.ActivitiesService/CreateActivity", Requirement::Permission("activities:create")),
    ("/phoenix.activities.v1.ActivitiesService/GetActivity", Requirement::Permission("activities:read")),
    ("/phoenix.activities.v1.ActivitiesService/EnrollStudent", Requirement::Permission("activities:enroll")),
    ("/phoenix.activities.v1.ActivitiesService/UnenrollStudent", Requirement::Permission("activities:enroll")),
    ("/phoenix.activities.v1.ActivitiesService/ReplaceEnrollments", Requirement::Permission("activities:enroll")),
];

/// Failed-precondition reasons.
pub mod reason {
    /// No places left.
    pub const ACTIVITY_FULL: &str = "ACTIVITY_FULL";
    /// Not open for enrollment.
    pub const ACTIVITY_CLOSED: &str = "ACTIVITY_CLOSED";
}

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

fn category(row: CategoryRow) -> pb::Category {
    pb::Category {
        id: row.id,
        name: row.name,
        description: row.description.unwrap_or_default(),
        color: row.color.unwrap_or_default(),
    }
}

async fn activity(conn: &mut AsyncPgConnection, row: ActivityRow) -> Result<pb::Activity, Error> {
    let supervisors = repo::supervisors_of(conn, row.id).await?;
    let enrolled = repo::enrolled(conn, row.id).await?;
    Ok(pb::Activity {
        id: row.id,
        name: row.name,
        max_participants: row.max_participants,
        is_open: row.is_open,
        category_id: row.category_id,
        planned_room_id: row.planned_room_id.unwrap_or(0),
        created_by_staff_id: row.created_by,
        supervisors: supervisors
            .into_iter()
            .map(|(staff_id, is_primary)| pb::Supervisor { staff_id, is_primary })
            .collect(),
        enrolled_count: i32::try_from(enrolled.len()).unwrap_or(i32::MAX),
    })
}

/// Resource rule (reference §1.5 [R]): an activity and its sub-resources are changed only by
/// an admin, its creator, or one of its planned supervisors.
async fn ensure_can_modify(conn: &mut AsyncPgConnection, caller: &Caller, a: &ActivityRow) -> Result<(), Error> {
    if caller.is_admin {
        return Ok(());
    }
    let Some(staff) = caller.staff_id else {
        return Err(Error::PermissionDenied("only staff may change activities".into()));
    };
    if a.created_by == Some(staff) || repo::supervisors_of(conn, a.id).await?.iter().any(|(s, _)| *s == staff) {
        return Ok(());
    }
    Err(Error::PermissionDenied(format!("you can only change activities you created or supervise (activity {})", a.id)))
}

/// Locks the activity and checks the caller may change it.
async fn lock_for_change(conn: &mut AsyncPgConnection, caller: &Caller, id: i64) -> Result<ActivityRow, Error> {
    let a = repo::lock_activity(conn, id).await?.ok_or_else(|| Error::not_found("activity", id))?;
    ensure_can_modify(conn, caller, &a).await?;
    Ok(a)
}

fn full(a: &ActivityRow) -> Error {
    Error::precondition(reason::ACTIVITY_FULL, format!("activity {} is full ({} places)", a.id, a.max_participants))
}

fn closed(a: &ActivityRow) -> Error {
    Error::precondition(reason::ACTIVITY_CLOSED, format!("activity {} is not open for enrollment", a.id))
}

fn today() -> chrono::NaiveDate {
    Utc::now().with_timezone(&chrono_tz::Europe::Berlin).date_naive()
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
            categories: rows.into_iter().map(category).collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn create_category(&self, request: Request<pb::CreateCategoryRequest>) -> Reply<pb::CreateCategoryResponse> {
        let c = request.into_inner().category.ok_or_else(|| Error::invalid("category", "is required"))?;
        let mut v = FieldViolations::default();
        let name = c.name.trim().to_owned();
        if name.is_empty() {
            v.add("category.name", "must not be empty");
        }
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
        Ok(Response::new(pb::CreateCategoryResponse { category: Some(category(row)) }))
    }

    async fn create_activity(&self, request: Request<pb::CreateActivityRequest>) -> Reply<pb::CreateActivityResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let a = req.activity.ok_or_else(|| Error::invalid("activity", "is required"))?;
        let mut v = FieldViolations::default();
        let name = a.name.trim().to_owned();
        if name.is_empty() {
            v.add("activity.name", "must not be empty");
        }
        if a.max_participants <= 0 {
            v.add("activity.max_participants", format!("must be > 0, got {}", a.max_participants));
        }
        validate::id("activity.category_id", a.category_id, &mut v);
        if a.planned_room_id < 0 {
            v.add("activity.planned_room_id", "must be a positive id or 0 for none");
        }
        let mut seen = BTreeSet::new();
        for (i, s) in req.supervisor_staff_ids.iter().enumerate() {
            validate::id(&format!("supervisor_staff_ids[{i}]"), *s, &mut v);
            if !seen.insert(*s) {
                v.add(format!("supervisor_staff_ids[{i}]"), format!("staff {s} is listed twice"));
            }
        }
        v.into_result()?;
        if !caller.is_admin && caller.staff_id.is_none() {
            return Err(Error::PermissionDenied("only staff members can create activities".into()).into());
        }
        let room = (a.planned_room_id > 0).then_some(a.planned_room_id);
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let out = conn
            .transaction::<_, Error, _>(async |conn| {
                // Referenced rows are request fields: a missing one is InvalidArgument naming it.
                let mut v = FieldViolations::default();
                if !repo::exists(conn, "activities.categories", a.category_id).await? {
                    v.add("activity.category_id", format!("category {} does not exist", a.category_id));
                }
                if let Some(room) = room
                    && !repo::exists(conn, "facilities.rooms", room).await?
                {
                    v.add("activity.planned_room_id", format!("room {room} does not exist"));
                }
                let found = repo::existing_ids(conn, "users.staff", &req.supervisor_staff_ids).await?;
                for (i, s) in req.supervisor_staff_ids.iter().enumerate() {
                    if !found.contains(s) {
                        v.add(format!("supervisor_staff_ids[{i}]"), format!("staff {s} does not exist"));
                    }
                }
                v.into_result()?;
                let new = repo::NewActivity {
                    name: &name,
                    max_participants: a.max_participants,
                    is_open: a.is_open,
                    category_id: a.category_id,
                    planned_room_id: room,
                    created_by: caller.staff_id,
                };
                let row = repo::insert_activity(conn, new, &req.supervisor_staff_ids).await?;
                activity(conn, row).await
            })
            .await?;
        Ok(Response::new(pb::CreateActivityResponse { activity: Some(out) }))
    }

    async fn get_activity(&self, request: Request<pb::GetActivityRequest>) -> Reply<pb::GetActivityResponse> {
        let mut v = FieldViolations::default();
        let id = validate::id("id", request.get_ref().id, &mut v);
        v.into_result()?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = repo::find_activity(&mut conn, id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::not_found("activity", id))?;
        Ok(Response::new(pb::GetActivityResponse { activity: Some(activity(&mut conn, row).await?) }))
    }

    async fn enroll_student(&self, request: Request<pb::EnrollStudentRequest>) -> Reply<pb::EnrollStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let (activity_id, student_id) =
            (validate::id("activity_id", req.activity_id, &mut v), validate::id("student_id", req.student_id, &mut v));
        v.into_result()?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let count = conn
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
        Ok(Response::new(pb::EnrollStudentResponse { enrolled_count: i32::try_from(count).unwrap_or(i32::MAX) }))
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
        let count = conn
            .transaction::<_, Error, _>(async |conn| {
                lock_for_change(conn, &caller, activity_id).await?;
                if repo::delete_enrollments(conn, activity_id, &[student_id]).await? == 0 {
                    return Err(Error::not_found("enrollment of student", student_id));
                }
                Ok(repo::enrolled(conn, activity_id).await?.len())
            })
            .await?;
        Ok(Response::new(pb::UnenrollStudentResponse { enrolled_count: i32::try_from(count).unwrap_or(i32::MAX) }))
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
