//! `phoenix.active.v1.ActiveService`: the service struct, [`METHODS`] and the tonic trait
//! impl, whose methods are the handlers: validate → authorise the resource ([`crate::scope`])
//! → one transaction in the domain module (`sessions`, `scan`, `supervisors`, `combined`,
//! `visits`, `attendance`, `student`, `analytics`) → convert. Logs carry ids only.

use chrono::{NaiveDate, Utc};
use phoenix_common::Reply;
use phoenix_common::access::Caller;
use phoenix_common::authz::{AuthContext, MethodTable, Requirement};
use phoenix_common::db::{self, DbPool, ReadPool};
use phoenix_common::settings::LiveSettings;
use phoenix_common::time::business_date_in;
use phoenix_common::validate::id;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::active_service_server::ActiveService;
use tonic::{Request, Response};

use crate::scan::batch::ScanCommitter;
use crate::{analytics, attendance, combined, convert, scope, sessions, student, supervisors, validate, visits};

/// The permission each RPC needs (`resource:action`, from the seed migration), for the shared
/// authorization layer to enforce before the handler runs. `ProcessScan` is for the gateway's
/// service credential only.
pub const METHODS: MethodTable = &[
    ("/phoenix.active.v1.ActiveService/StartSession", Requirement::Permission("groups:create")),
    ("/phoenix.active.v1.ActiveService/EndSession", Requirement::Permission("groups:update")),
    ("/phoenix.active.v1.ActiveService/GetSession", Requirement::Permission("groups:read")),
    ("/phoenix.active.v1.ActiveService/ListSessions", Requirement::Permission("groups:read")),
    ("/phoenix.active.v1.ActiveService/ProcessScan", Requirement::Permission("scans:process")),
    // Supervisors: staff join, leave and claim (groups:update); replacing the set, or ending
    // someone else's supervision, is an assignment (groups:assign).
    ("/phoenix.active.v1.ActiveService/JoinSession", Requirement::Permission("groups:update")),
    ("/phoenix.active.v1.ActiveService/LeaveSession", Requirement::Permission("groups:update")),
    ("/phoenix.active.v1.ActiveService/ClaimSession", Requirement::Permission("groups:update")),
    ("/phoenix.active.v1.ActiveService/UpdateSessionSupervisors", Requirement::Permission("groups:assign")),
    ("/phoenix.active.v1.ActiveService/CreateCombinedGroup", Requirement::Permission("groups:create")),
    ("/phoenix.active.v1.ActiveService/GetCombinedGroup", Requirement::Permission("groups:read")),
    ("/phoenix.active.v1.ActiveService/ListCombinedGroups", Requirement::Permission("groups:read")),
    ("/phoenix.active.v1.ActiveService/EndCombinedGroup", Requirement::Permission("groups:update")),
    ("/phoenix.active.v1.ActiveService/AddSessionToCombinedGroup", Requirement::Permission("groups:update")),
    ("/phoenix.active.v1.ActiveService/RemoveSessionFromCombinedGroup", Requirement::Permission("groups:update")),
    // Visits and attendance are the `visits:*` family (personal data; see crate::scope).
    ("/phoenix.active.v1.ActiveService/GetVisit", Requirement::Permission("visits:read")),
    ("/phoenix.active.v1.ActiveService/ListVisits", Requirement::Permission("visits:list")),
    ("/phoenix.active.v1.ActiveService/CheckInStudent", Requirement::Permission("visits:update")),
    ("/phoenix.active.v1.ActiveService/CheckOutStudent", Requirement::Permission("visits:update")),
    ("/phoenix.active.v1.ActiveService/EndVisit", Requirement::Permission("visits:update")),
    ("/phoenix.active.v1.ActiveService/GetAttendance", Requirement::Permission("visits:read")),
    ("/phoenix.active.v1.ActiveService/ListAttendance", Requirement::Permission("visits:list")),
    ("/phoenix.active.v1.ActiveService/CheckOutForDay", Requirement::Permission("visits:update")),
    ("/phoenix.active.v1.ActiveService/GetStudentPresence", Requirement::Permission("groups:read")),
    ("/phoenix.active.v1.ActiveService/GetActivityCounts", Requirement::Permission("groups:read")),
    ("/phoenix.active.v1.ActiveService/GetRoomUtilization", Requirement::Permission("groups:read")),
];

/// The active service.
#[derive(Clone)]
pub struct ActiveApi {
    pool: DbPool,
    /// The list and analytics RPCs read here (the read replica while it keeps up).
    read: ReadPool,
    /// Read live: a change through `ConfigService` applies to the next request.
    settings: LiveSettings,
    /// `ProcessScan`'s group commit.
    scans: ScanCommitter,
}

impl std::fmt::Debug for ActiveApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveApi").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl ActiveApi {
    /// A service on `pool`, reading the school settings live from `settings`, committing
    /// scans through `scans`.
    pub fn new(pool: DbPool, settings: LiveSettings, scans: ScanCommitter) -> Self {
        Self { read: ReadPool::primary(pool.clone()), pool, settings, scans }
    }

    /// The list and analytics RPCs read from `read` ([`ReadPool`]).
    pub fn with_reads(self, read: ReadPool) -> Self {
        Self { read, ..self }
    }

    /// The school's time zone.
    fn tz(&self) -> chrono_tz::Tz {
        self.settings.time_zone()
    }

    /// Who may end sessions, for `EndSession`, a forced `StartSession` and combined groups.
    async fn session_control<T>(&self, request: &Request<T>) -> phoenix_common::Result<scope::SessionControl> {
        let caller = Caller::of(request, &self.pool).await?;
        let may_manage = AuthContext::of(request)?.has_permission(scope::SESSIONS_MANAGE);
        Ok(scope::SessionControl { staff_id: caller.staff_id, may_manage })
    }

    /// The school's business date now.
    fn today(&self) -> NaiveDate {
        business_date_in(Utc::now(), self.tz())
    }
}

#[tonic::async_trait]
impl ActiveService for ActiveApi {
    async fn start_session(&self, request: Request<pb::StartSessionRequest>) -> Reply<pb::StartSessionResponse> {
        let control = self.session_control(&request).await?;
        let cmd = validate::start_session(request.into_inner(), validate::default_timeout(&self.settings))?;
        let mut conn = db::conn(&self.pool).await?;
        let (view, ended) = sessions::start(&mut conn, cmd, control, self.tz(), Utc::now()).await?;
        tracing::info!(
            session_id = view.row.id,
            room_id = view.row.room_id,
            ended_session_id = ended,
            "session started"
        );
        Ok(Response::new(pb::StartSessionResponse { session: Some(convert::session(view)), ended_session_id: ended }))
    }

    /// Only the session's current supervisors, or callers with `sessions:manage`.
    async fn end_session(&self, request: Request<pb::EndSessionRequest>) -> Reply<pb::EndSessionResponse> {
        let control = self.session_control(&request).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let (view, closed) = sessions::end(&mut conn, id, control, self.tz(), Utc::now()).await?;
        tracing::info!(session_id = id, closed_visits = closed, "session ended");
        Ok(Response::new(pb::EndSessionResponse {
            session: Some(convert::session(view)),
            closed_visit_count: closed as i64,
        }))
    }

    async fn get_session(&self, request: Request<pb::GetSessionRequest>) -> Reply<pb::GetSessionResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let view = sessions::get(&mut conn, id).await?;
        Ok(Response::new(pb::GetSessionResponse { session: Some(convert::session(view)) }))
    }

    async fn list_sessions(&self, request: Request<pb::ListSessionsRequest>) -> Reply<pb::ListSessionsResponse> {
        let cmd = validate::list_sessions(request.into_inner())?;
        let mut conn = self.read.conn().await?;
        let (views, next_page_token, total_size) = sessions::list(&mut conn, cmd).await?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: views.into_iter().map(convert::session).collect(),
            next_page_token,
            total_size,
        }))
    }

    async fn process_scan(&self, request: Request<pb::ProcessScanRequest>) -> Reply<pb::ProcessScanResponse> {
        let cmd = validate::process_scan(request.into_inner())?;
        let (device, scan_id) = (cmd.device_id.clone(), cmd.scan_id.clone());
        let result = self.scans.process(cmd).await?;
        tracing::debug!(
            %device, %scan_id, outcome = result.outcome.as_str(), code = result.code.as_str(),
            duplicate = result.duplicate, "scan processed"
        );
        Ok(Response::new(convert::scan_result(result)))
    }

    async fn join_session(&self, request: Request<pb::JoinSessionRequest>) -> Reply<pb::JoinSessionResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let cmd = validate::join_session(request.get_ref())?;
        let staff = scope::staff_id(&caller, "join sessions")?;
        let mut conn = db::conn(&self.pool).await?;
        let view = supervisors::join(&mut conn, staff, cmd, self.today()).await?;
        tracing::info!(session_id = view.row.id, staff_id = staff, "session joined");
        Ok(Response::new(pb::JoinSessionResponse { session: Some(convert::session(view)) }))
    }

    /// Someone else's supervision needs `groups:assign` on top of `groups:update`.
    async fn leave_session(&self, request: Request<pb::LeaveSessionRequest>) -> Reply<pb::LeaveSessionResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let may_assign = AuthContext::of(&request)?.has_permission("groups:assign");
        let cmd = validate::leave_session(request.get_ref())?;
        let staff = scope::leave_target(&caller, cmd.staff_id, may_assign)?;
        let mut conn = db::conn(&self.pool).await?;
        let view = supervisors::leave(&mut conn, cmd.session_id, staff, self.today()).await?;
        tracing::info!(session_id = cmd.session_id, staff_id = staff, "supervision ended");
        Ok(Response::new(pb::LeaveSessionResponse { session: Some(convert::session(view)) }))
    }

    async fn claim_session(&self, request: Request<pb::ClaimSessionRequest>) -> Reply<pb::ClaimSessionResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let session_id = id("session_id", request.get_ref().session_id)?;
        let staff = scope::staff_id(&caller, "claim sessions")?;
        let mut conn = db::conn(&self.pool).await?;
        let view = supervisors::claim(&mut conn, staff, session_id, self.today()).await?;
        tracing::info!(session_id, staff_id = staff, "session claimed");
        Ok(Response::new(pb::ClaimSessionResponse { session: Some(convert::session(view)) }))
    }

    async fn update_session_supervisors(
        &self,
        request: Request<pb::UpdateSessionSupervisorsRequest>,
    ) -> Reply<pb::UpdateSessionSupervisorsResponse> {
        let cmd = validate::update_session_supervisors(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let view = supervisors::replace(&mut conn, cmd, self.today()).await?;
        tracing::info!(session_id = view.row.id, "supervisors replaced");
        Ok(Response::new(pb::UpdateSessionSupervisorsResponse { session: Some(convert::session(view)) }))
    }

    async fn create_combined_group(
        &self,
        request: Request<pb::CreateCombinedGroupRequest>,
    ) -> Reply<pb::CreateCombinedGroupResponse> {
        let control = self.session_control(&request).await?;
        let cmd = validate::create_combined_group(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let view = combined::create(&mut conn, control, cmd, Utc::now()).await?;
        tracing::info!(combined_group_id = view.row.id, sessions = view.session_ids.len(), "combined group created");
        Ok(Response::new(pb::CreateCombinedGroupResponse { combined_group: Some(convert::combined_group(view)) }))
    }

    async fn get_combined_group(
        &self,
        request: Request<pb::GetCombinedGroupRequest>,
    ) -> Reply<pb::GetCombinedGroupResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let view = combined::get(&mut conn, id).await?;
        Ok(Response::new(pb::GetCombinedGroupResponse { combined_group: Some(convert::combined_group(view)) }))
    }

    async fn list_combined_groups(
        &self,
        request: Request<pb::ListCombinedGroupsRequest>,
    ) -> Reply<pb::ListCombinedGroupsResponse> {
        let (filter, page) = validate::list_combined_groups(request.into_inner())?;
        let mut conn = self.read.conn().await?;
        let (views, next_page_token, total_size) = combined::list(&mut conn, &filter, &page).await?;
        Ok(Response::new(pb::ListCombinedGroupsResponse {
            combined_groups: views.into_iter().map(convert::combined_group).collect(),
            next_page_token,
            total_size,
        }))
    }

    async fn end_combined_group(
        &self,
        request: Request<pb::EndCombinedGroupRequest>,
    ) -> Reply<pb::EndCombinedGroupResponse> {
        let control = self.session_control(&request).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let view = combined::end(&mut conn, id, control, Utc::now()).await?;
        tracing::info!(combined_group_id = id, "combined group ended");
        Ok(Response::new(pb::EndCombinedGroupResponse { combined_group: Some(convert::combined_group(view)) }))
    }

    async fn add_session_to_combined_group(
        &self,
        request: Request<pb::AddSessionToCombinedGroupRequest>,
    ) -> Reply<pb::AddSessionToCombinedGroupResponse> {
        let control = self.session_control(&request).await?;
        let req = request.get_ref();
        let (combined_group_id, session_id) = validate::combined_session(req.combined_group_id, req.session_id)?;
        let mut conn = db::conn(&self.pool).await?;
        let view = combined::add_session(&mut conn, combined_group_id, session_id, control).await?;
        tracing::info!(combined_group_id, session_id, "session combined");
        Ok(Response::new(pb::AddSessionToCombinedGroupResponse { combined_group: Some(convert::combined_group(view)) }))
    }

    async fn remove_session_from_combined_group(
        &self,
        request: Request<pb::RemoveSessionFromCombinedGroupRequest>,
    ) -> Reply<pb::RemoveSessionFromCombinedGroupResponse> {
        let control = self.session_control(&request).await?;
        let req = request.get_ref();
        let (combined_group_id, session_id) = validate::combined_session(req.combined_group_id, req.session_id)?;
        let mut conn = db::conn(&self.pool).await?;
        let view = combined::remove_session(&mut conn, combined_group_id, session_id, control).await?;
        tracing::info!(combined_group_id, session_id, "session uncombined");
        Ok(Response::new(pb::RemoveSessionFromCombinedGroupResponse {
            combined_group: Some(convert::combined_group(view)),
        }))
    }

    async fn get_visit(&self, request: Request<pb::GetVisitRequest>) -> Reply<pb::GetVisitResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let visit = visits::get(&mut conn, &caller, id, self.today()).await?;
        Ok(Response::new(pb::GetVisitResponse { visit: Some(convert::visit(visit)) }))
    }

    async fn list_visits(&self, request: Request<pb::ListVisitsRequest>) -> Reply<pb::ListVisitsResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let (filter, page) = validate::list_visits(request.into_inner())?;
        let mut conn = self.read.conn().await?;
        let (rows, next_page_token, total_size) =
            visits::list(&mut conn, &caller, &filter, &page, self.tz(), self.today()).await?;
        Ok(Response::new(pb::ListVisitsResponse {
            visits: rows.into_iter().map(convert::visit).collect(),
            next_page_token,
            total_size,
        }))
    }

    async fn check_in_student(&self, request: Request<pb::CheckInStudentRequest>) -> Reply<pb::CheckInStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let cmd = validate::check_in_student(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let done = visits::check_in(&mut conn, &caller, cmd, self.tz(), Utc::now()).await?;
        tracing::info!(
            visit_id = done.visit.id,
            student_id = done.visit.student_id,
            session_id = done.visit.session_id,
            closed_visit_id = done.closed_visit_id,
            staff_id = caller.staff_id,
            "checked in by hand"
        );
        Ok(Response::new(pb::CheckInStudentResponse {
            visit: Some(convert::visit(done.visit)),
            closed_visit_id: done.closed_visit_id,
            arrived: done.arrived,
        }))
    }

    async fn check_out_student(
        &self,
        request: Request<pb::CheckOutStudentRequest>,
    ) -> Reply<pb::CheckOutStudentResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let student_id = id("student_id", request.get_ref().student_id)?;
        let mut conn = db::conn(&self.pool).await?;
        let visit = visits::check_out(&mut conn, &caller, student_id, self.today(), Utc::now()).await?;
        tracing::info!(visit_id = visit.id, student_id, staff_id = caller.staff_id, "checked out by hand");
        Ok(Response::new(pb::CheckOutStudentResponse { visit: Some(convert::visit(visit)) }))
    }

    async fn end_visit(&self, request: Request<pb::EndVisitRequest>) -> Reply<pb::EndVisitResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let visit = visits::end(&mut conn, &caller, id, self.today(), Utc::now()).await?;
        tracing::info!(visit_id = id, student_id = visit.student_id, staff_id = caller.staff_id, "visit ended");
        Ok(Response::new(pb::EndVisitResponse { visit: Some(convert::visit(visit)) }))
    }

    async fn get_attendance(&self, request: Request<pb::GetAttendanceRequest>) -> Reply<pb::GetAttendanceResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let today = self.today();
        let (student_id, date) = validate::get_attendance(request.get_ref(), today)?;
        let mut conn = db::conn(&self.pool).await?;
        let day = attendance::get(&mut conn, &caller, student_id, date, today).await?;
        Ok(Response::new(pb::GetAttendanceResponse { attendance: Some(convert::attendance(day, date)) }))
    }

    async fn list_attendance(&self, request: Request<pb::ListAttendanceRequest>) -> Reply<pb::ListAttendanceResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let today = self.today();
        let (filter, page) = validate::list_attendance(request.into_inner(), today)?;
        let mut conn = self.read.conn().await?;
        let (rows, next_page_token, total_size) = attendance::list(&mut conn, &caller, &filter, &page, today).await?;
        Ok(Response::new(pb::ListAttendanceResponse {
            attendance: rows.into_iter().map(|r| convert::attendance(r, filter.date)).collect(),
            next_page_token,
            total_size,
        }))
    }

    async fn check_out_for_day(
        &self,
        request: Request<pb::CheckOutForDayRequest>,
    ) -> Reply<pb::CheckOutForDayResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let cmd = validate::check_out_for_day(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let done = attendance::check_out_for_day(&mut conn, &caller, cmd, self.tz(), Utc::now()).await?;
        tracing::info!(
            student_id = cmd.student_id,
            closed_visit_id = done.closed_visit_id,
            staff_id = caller.staff_id,
            "checked out for the day"
        );
        Ok(Response::new(pb::CheckOutForDayResponse {
            attendance: Some(convert::attendance(done.day, done.date)),
            closed_visit_id: done.closed_visit_id,
        }))
    }

    async fn get_student_presence(
        &self,
        request: Request<pb::GetStudentPresenceRequest>,
    ) -> Reply<pb::GetStudentPresenceResponse> {
        let caller = Caller::of(&request, &self.pool).await?;
        let student_id = id("student_id", request.get_ref().student_id)?;
        let mut conn = db::conn(&self.pool).await?;
        let presence = student::presence(&mut conn, &caller, student_id, self.tz(), Utc::now()).await?;
        Ok(Response::new(pb::GetStudentPresenceResponse { presence: Some(presence) }))
    }

    async fn get_activity_counts(
        &self,
        _request: Request<pb::GetActivityCountsRequest>,
    ) -> Reply<pb::GetActivityCountsResponse> {
        let mut conn = self.read.conn().await?;
        Ok(Response::new(analytics::counts(&mut conn, self.today(), self.tz()).await?))
    }

    async fn get_room_utilization(
        &self,
        request: Request<pb::GetRoomUtilizationRequest>,
    ) -> Reply<pb::GetRoomUtilizationResponse> {
        let cmd = validate::get_room_utilization(request.get_ref(), self.today())?;
        let mut conn = self.read.conn().await?;
        let utilization = analytics::room_utilization(&mut conn, cmd, self.tz(), Utc::now()).await?;
        Ok(Response::new(utilization))
    }
}
