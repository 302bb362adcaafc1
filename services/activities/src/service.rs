//! `phoenix.activities.v1.ActivitiesService`: the service struct, [`METHODS`] and the tonic
//! trait impl, whose methods are the handlers (validate → authorise → one transaction →
//! convert).

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use pb::activities_service_server::ActivitiesService;
use phoenix_common::access::Caller;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{self, DbPool};
use phoenix_common::{Error, Reply, Result, validate::id};
use phoenix_proto::activities::v1 as pb;
use tonic::{Request, Response};

use crate::repo::{self, ActivityFilter, ActivityRow, enrollment_lists};
use crate::{access, convert, enrollment, plan, validate};

/// The permission each RPC needs, checked by `Authorized` before the handler runs (strings
/// from the seed). Writes to an activity and its sub-resources are further limited by the
/// ownership rule in [`access`] (admin, creator or planned supervisor), which no permission
/// bypasses.
pub const METHODS: MethodTable = &[
    ("/phoenix.activities.v1.ActivitiesService/ListCategories", Requirement::Permission("activities:read")),
    ("/phoenix.activities.v1.ActivitiesService/CreateCategory", Requirement::Permission("activities:manage")),
    ("/phoenix.activities.v1.ActivitiesService/CreateActivity", Requirement::Permission("activities:create")),
    ("/phoenix.activities.v1.ActivitiesService/GetActivity", Requirement::Permission("activities:read")),
    ("/phoenix.activities.v1.ActivitiesService/ListActivities", Requirement::Permission("activities:read")),
    ("/phoenix.activities.v1.ActivitiesService/UpdateActivity", Requirement::Permission("activities:update")),
    ("/phoenix.activities.v1.ActivitiesService/DeleteActivity", Requirement::Permission("activities:delete")),
    ("/phoenix.activities.v1.ActivitiesService/ListAvailableActivities", Requirement::Permission("activities:read")),
    ("/phoenix.activities.v1.ActivitiesService/ListActivitySchedules", Requirement::Permission("activities:read")),
    ("/phoenix.activities.v1.ActivitiesService/GetActivitySchedule", Requirement::Permission("activities:read")),
    ("/phoenix.activities.v1.ActivitiesService/CreateActivitySchedule", Requirement::Permission("activities:update")),
    ("/phoenix.activities.v1.ActivitiesService/UpdateActivitySchedule", Requirement::Permission("activities:update")),
    ("/phoenix.activities.v1.ActivitiesService/DeleteActivitySchedule", Requirement::Permission("activities:update")),
    ("/phoenix.activities.v1.ActivitiesService/ListActivitySupervisors", Requirement::Permission("activities:read")),
    ("/phoenix.activities.v1.ActivitiesService/AddActivitySupervisor", Requirement::Permission("activities:assign")),
    ("/phoenix.activities.v1.ActivitiesService/UpdateActivitySupervisor", Requirement::Permission("activities:assign")),
    ("/phoenix.activities.v1.ActivitiesService/RemoveActivitySupervisor", Requirement::Permission("activities:assign")),
    ("/phoenix.activities.v1.ActivitiesService/EnrollStudent", Requirement::Permission("activities:enroll")),
    ("/phoenix.activities.v1.ActivitiesService/UnenrollStudent", Requirement::Permission("activities:enroll")),
    ("/phoenix.activities.v1.ActivitiesService/ReplaceEnrollments", Requirement::Permission("activities:enroll")),
    // Enrollment lists name pupils: staff only, narrowed by `access` (owners, own groups).
    ("/phoenix.activities.v1.ActivitiesService/ListActivityEnrollments", Requirement::Permission("activities:read")),
    ("/phoenix.activities.v1.ActivitiesService/ListStudentEnrollments", Requirement::Permission("activities:read")),
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

/// The activities service over a database pool.
#[derive(Clone)]
pub struct ActivitiesApi {
    pool: DbPool,
}

impl std::fmt::Debug for ActivitiesApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivitiesApi").finish_non_exhaustive()
    }
}

impl ActivitiesApi {
    /// A service answering from `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

/// The activity, or `NotFound`.
async fn activity_of(conn: &mut AsyncPgConnection, id: i64) -> Result<ActivityRow> {
    repo::find_activity(conn, id).await?.ok_or_else(|| Error::not_found("activity", id))
}

/// `rows` as messages with their supervisors, schedules and enrollment counts.
async fn full(conn: &mut AsyncPgConnection, rows: Vec<ActivityRow>) -> Result<Vec<pb::Activity>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let details = repo::activity_details(conn, &ids).await?;
    Ok(convert::activities(rows, details))
}

/// One activity as a message with its sub-resources.
async fn full_one(conn: &mut AsyncPgConnection, row: ActivityRow) -> Result<pb::Activity> {
    let id = row.id;
    full(conn, vec![row])
        .await?
        .pop()
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("activity {id} vanished while converting")))
}

#[tonic::async_trait]
impl ActivitiesService for ActivitiesApi {
    async fn list_categories(&self, request: Request<pb::ListCategoriesRequest>) -> Reply<pb::ListCategoriesResponse> {
        let page = validate::list_categories(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let (rows, total) = repo::list_categories(&mut conn, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListCategoriesResponse {
            categories: rows.into_iter().map(convert::category).collect(),
            next_page_token,
            total_size: convert::count(total),
        }))
    }

    async fn create_category(&self, request: Request<pb::CreateCategoryRequest>) -> Reply<pb::CreateCategoryResponse> {
        let new = validate::create_category(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async |c| {
                repo::insert_category(c, &new)
                    .await?
                    .ok_or_else(|| Error::AlreadyExists(format!("category {:?} already exists", new.name)))
            })
            .await?;
        tracing::info!(category_id = row.id, "category created");
        Ok(Response::new(pb::CreateCategoryResponse { category: Some(convert::category(row)) }))
    }

    async fn create_activity(&self, request: Request<pb::CreateActivityRequest>) -> Reply<pb::CreateActivityResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let new = validate::create_activity(request.into_inner())?;
        access::require_staff(&caller)?;
        let mut conn = db::conn(&self.pool).await?;
        let activity = conn
            .transaction::<_, Error, _>(async |c| {
                repo::check_refs(c, &new.refs).await?;
                let row = repo::insert_activity(c, &new, caller.staff_id).await?;
                full_one(c, row).await
            })
            .await?;
        tracing::info!(activity_id = activity.id, "activity created");
        Ok(Response::new(pb::CreateActivityResponse { activity: Some(activity) }))
    }

    async fn get_activity(&self, request: Request<pb::GetActivityRequest>) -> Reply<pb::GetActivityResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let row = activity_of(&mut conn, id).await?;
        Ok(Response::new(pb::GetActivityResponse { activity: Some(full_one(&mut conn, row).await?) }))
    }

    async fn list_activities(&self, request: Request<pb::ListActivitiesRequest>) -> Reply<pb::ListActivitiesResponse> {
        let (filter, page) = validate::list_activities(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let (rows, total) = repo::list_activities(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListActivitiesResponse {
            activities: full(&mut conn, rows).await?,
            next_page_token,
            total_size: convert::count(total),
        }))
    }

    async fn update_activity(&self, request: Request<pb::UpdateActivityRequest>) -> Reply<pb::UpdateActivityResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let change = validate::update_activity(request.into_inner())?;
        let id = change.id;
        let mut conn = db::conn(&self.pool).await?;
        let activity = conn
            .transaction::<_, Error, _>(async |c| {
                access::lock_for_change(c, &caller, id).await?;
                repo::check_refs(c, &change.refs).await?;
                if let Some(max) = change.changes.max_participants {
                    enrollment::check_capacity(c, id, max).await?;
                }
                repo::update_activity(c, id, &change.changes).await?;
                if let Some(set) = &change.supervisors {
                    repo::replace_supervisors(c, id, set).await?;
                }
                if let Some(set) = &change.schedules {
                    repo::replace_schedules(c, id, set).await?;
                }
                let row = activity_of(c, id).await?;
                full_one(c, row).await
            })
            .await?;
        tracing::info!(activity_id = id, "activity updated");
        Ok(Response::new(pb::UpdateActivityResponse { activity: Some(activity) }))
    }

    async fn delete_activity(&self, request: Request<pb::DeleteActivityRequest>) -> Reply<pb::DeleteActivityResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async |c| {
            // The row lock also holds off a session starting now: its insert needs a key-share
            // lock on this row, so it waits and then finds the activity gone.
            access::lock_for_change(c, &caller, id).await?;
            if let Some((session, room)) = repo::running_session(c, id).await? {
                return Err(Error::precondition(
                    reason::SESSION_RUNNING,
                    format!("session {session} of activity {id} is running in room {room}; end it first"),
                ));
            }
            repo::delete_activity(c, id).await
        })
        .await?;
        tracing::info!(activity_id = id, "activity deleted");
        Ok(Response::new(pb::DeleteActivityResponse {}))
    }

    async fn list_available_activities(
        &self,
        request: Request<pb::ListAvailableActivitiesRequest>,
    ) -> Reply<pb::ListAvailableActivitiesResponse> {
        let (student_id, page) = validate::list_available_activities(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        if !repo::exists(&mut conn, "users.students", student_id).await? {
            return Err(Error::not_found("student", student_id).into());
        }
        let filter = ActivityFilter { available_to_student: Some(student_id), ..Default::default() };
        let (rows, total) = repo::list_activities(&mut conn, &filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListAvailableActivitiesResponse {
            activities: full(&mut conn, rows).await?,
            next_page_token,
            total_size: convert::count(total),
        }))
    }

    async fn list_activity_schedules(
        &self,
        request: Request<pb::ListActivitySchedulesRequest>,
    ) -> Reply<pb::ListActivitySchedulesResponse> {
        let id = id("activity_id", request.get_ref().activity_id)?;
        let mut conn = db::conn(&self.pool).await?;
        activity_of(&mut conn, id).await?;
        let rows = repo::schedules_of(&mut conn, &[id]).await?;
        Ok(Response::new(pb::ListActivitySchedulesResponse {
            schedules: rows.into_iter().map(convert::schedule).collect(),
        }))
    }

    async fn get_activity_schedule(
        &self,
        request: Request<pb::GetActivityScheduleRequest>,
    ) -> Reply<pb::GetActivityScheduleResponse> {
        let (activity_id, schedule_id) = validate::get_activity_schedule(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        activity_of(&mut conn, activity_id).await?;
        let row = plan::schedule_of(&mut conn, activity_id, schedule_id).await?;
        Ok(Response::new(pb::GetActivityScheduleResponse { schedule: Some(convert::schedule(row)) }))
    }

    async fn create_activity_schedule(
        &self,
        request: Request<pb::CreateActivityScheduleRequest>,
    ) -> Reply<pb::CreateActivityScheduleResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let new = validate::create_activity_schedule(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async |c| {
                access::lock_for_change(c, &caller, new.activity_id).await?;
                plan::add_schedule(c, &new).await
            })
            .await?;
        tracing::info!(activity_id = row.activity_id, schedule_id = row.id, "activity schedule created");
        Ok(Response::new(pb::CreateActivityScheduleResponse { schedule: Some(convert::schedule(row)) }))
    }

    async fn update_activity_schedule(
        &self,
        request: Request<pb::UpdateActivityScheduleRequest>,
    ) -> Reply<pb::UpdateActivityScheduleResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let change = validate::update_activity_schedule(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async |c| {
                access::lock_for_change(c, &caller, change.activity_id).await?;
                plan::change_schedule(c, &change).await
            })
            .await?;
        tracing::info!(activity_id = row.activity_id, schedule_id = row.id, "activity schedule updated");
        Ok(Response::new(pb::UpdateActivityScheduleResponse { schedule: Some(convert::schedule(row)) }))
    }

    async fn delete_activity_schedule(
        &self,
        request: Request<pb::DeleteActivityScheduleRequest>,
    ) -> Reply<pb::DeleteActivityScheduleResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (activity_id, schedule_id) = validate::delete_activity_schedule(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async |c| {
            access::lock_for_change(c, &caller, activity_id).await?;
            plan::delete_schedule(c, activity_id, schedule_id).await
        })
        .await?;
        tracing::info!(activity_id, schedule_id, "activity schedule deleted");
        Ok(Response::new(pb::DeleteActivityScheduleResponse {}))
    }

    async fn list_activity_supervisors(
        &self,
        request: Request<pb::ListActivitySupervisorsRequest>,
    ) -> Reply<pb::ListActivitySupervisorsResponse> {
        let id = id("activity_id", request.get_ref().activity_id)?;
        let mut conn = db::conn(&self.pool).await?;
        activity_of(&mut conn, id).await?;
        let rows = repo::supervisors_of(&mut conn, id).await?;
        Ok(Response::new(pb::ListActivitySupervisorsResponse { supervisors: convert::supervisors(rows) }))
    }

    async fn add_activity_supervisor(
        &self,
        request: Request<pb::AddActivitySupervisorRequest>,
    ) -> Reply<pb::AddActivitySupervisorResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (activity_id, staff_id) = validate::add_activity_supervisor(request.get_ref())?;
        let is_primary = request.get_ref().is_primary;
        let mut conn = db::conn(&self.pool).await?;
        let rows = conn
            .transaction::<_, Error, _>(async |c| {
                access::lock_for_change(c, &caller, activity_id).await?;
                plan::add_supervisor(c, activity_id, staff_id, is_primary).await
            })
            .await?;
        tracing::info!(activity_id, staff_id, "activity supervisor added");
        Ok(Response::new(pb::AddActivitySupervisorResponse { supervisors: convert::supervisors(rows) }))
    }

    async fn update_activity_supervisor(
        &self,
        request: Request<pb::UpdateActivitySupervisorRequest>,
    ) -> Reply<pb::UpdateActivitySupervisorResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let change = validate::update_activity_supervisor(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let rows = conn
            .transaction::<_, Error, _>(async |c| {
                access::lock_for_change(c, &caller, change.activity_id).await?;
                plan::change_supervisor(c, &change).await
            })
            .await?;
        tracing::info!(activity_id = change.activity_id, staff_id = change.staff_id, "activity supervisor updated");
        Ok(Response::new(pb::UpdateActivitySupervisorResponse { supervisors: convert::supervisors(rows) }))
    }

    async fn remove_activity_supervisor(
        &self,
        request: Request<pb::RemoveActivitySupervisorRequest>,
    ) -> Reply<pb::RemoveActivitySupervisorResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (activity_id, staff_id) = validate::remove_activity_supervisor(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let rows = conn
            .transaction::<_, Error, _>(async |c| {
                access::lock_for_change(c, &caller, activity_id).await?;
                plan::remove_supervisor(c, activity_id, staff_id).await
            })
            .await?;
        tracing::info!(activity_id, staff_id, "activity supervisor removed");
        Ok(Response::new(pb::RemoveActivitySupervisorResponse { supervisors: convert::supervisors(rows) }))
    }

    async fn enroll_student(&self, request: Request<pb::EnrollStudentRequest>) -> Reply<pb::EnrollStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (activity_id, student_id) = validate::enroll_student(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let n = conn
            .transaction::<_, Error, _>(async |c| {
                let a = access::lock_for_change(c, &caller, activity_id).await?;
                enrollment::enroll(c, &a, student_id).await
            })
            .await?;
        tracing::info!(activity_id, student_id, "student enrolled");
        Ok(Response::new(pb::EnrollStudentResponse { enrolled_count: convert::count(n) }))
    }

    async fn unenroll_student(
        &self,
        request: Request<pb::UnenrollStudentRequest>,
    ) -> Reply<pb::UnenrollStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (activity_id, student_id) = validate::unenroll_student(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let n = conn
            .transaction::<_, Error, _>(async |c| {
                access::lock_for_change(c, &caller, activity_id).await?;
                enrollment::unenroll(c, activity_id, student_id).await
            })
            .await?;
        tracing::info!(activity_id, student_id, "student unenrolled");
        Ok(Response::new(pb::UnenrollStudentResponse { enrolled_count: convert::count(n) }))
    }

    async fn replace_enrollments(
        &self,
        request: Request<pb::ReplaceEnrollmentsRequest>,
    ) -> Reply<pb::ReplaceEnrollmentsResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let set = validate::replace_enrollments(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let student_ids = conn
            .transaction::<_, Error, _>(async |c| {
                let a = access::lock_for_change(c, &caller, set.activity_id).await?;
                enrollment::replace(c, &a, &set).await
            })
            .await?;
        tracing::info!(activity_id = set.activity_id, "enrollments replaced");
        Ok(Response::new(pb::ReplaceEnrollmentsResponse { student_ids }))
    }

    async fn list_activity_enrollments(
        &self,
        request: Request<pb::ListActivityEnrollmentsRequest>,
    ) -> Reply<pb::ListActivityEnrollmentsResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (activity_id, page) = validate::list_activity_enrollments(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let activity = activity_of(&mut conn, activity_id).await?;
        let groups = match access::enrolled_scope(&mut conn, &caller, &activity).await? {
            access::EnrolledScope::All => None,
            access::EnrolledScope::Groups(g) => Some(g),
        };
        let (rows, total) = enrollment_lists::enrolled_page(
            &mut conn,
            activity_id,
            groups.as_deref(),
            page.after_id()?,
            page.fetch_limit(),
        )
        .await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.student_id.to_string());
        Ok(Response::new(pb::ListActivityEnrollmentsResponse {
            enrollments: rows.into_iter().map(convert::activity_enrollment).collect(),
            next_page_token,
            total_size: convert::count(total),
        }))
    }

    async fn list_student_enrollments(
        &self,
        request: Request<pb::ListStudentEnrollmentsRequest>,
    ) -> Reply<pb::ListStudentEnrollmentsResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let student_id = id("student_id", request.get_ref().student_id)?;
        // Before the look-up: a caller without a staff record learns nothing about the id.
        access::require_staff_reader(&caller)?;
        let mut conn = db::conn(&self.pool).await?;
        let group = enrollment_lists::student_group(&mut conn, student_id).await?;
        let owned_by = match access::activity_scope(&mut conn, &caller, group).await? {
            access::ActivityScope::All => None,
            access::ActivityScope::OwnedBy(staff) => Some(staff),
        };
        let rows = enrollment_lists::of_student(&mut conn, student_id, owned_by).await?;
        Ok(Response::new(pb::ListStudentEnrollmentsResponse {
            enrollments: rows.into_iter().map(convert::student_enrollment).collect(),
        }))
    }
}
