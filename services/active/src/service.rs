//! The tonic implementation of `phoenix.active.v1.ActiveService`: validate → (authorise,
//! see [`METHODS`]) → one transaction per write → repo → convert. The handlers of the
//! supervisor, combined-group, visit, attendance and analytics RPCs are in
//! `handlers.rs`.

use chrono::Utc;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{DbConn, DbPool};
use phoenix_common::{Error, Result};
use phoenix_proto::active::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::scan::{self, ScanSettings};
use crate::{convert, sessions, validate};

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
    pub(crate) pool: DbPool,
    pub(crate) settings: ScanSettings,
}

impl std::fmt::Debug for ActiveApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveApi").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl ActiveApi {
    /// A service on `pool`.
    pub fn new(pool: DbPool, settings: ScanSettings) -> Self {
        Self { pool, settings }
    }

    pub(crate) async fn conn(&self) -> Result<DbConn<'_>> {
        Ok(self.pool.get().await?)
    }

    /// `StartSession`.
    pub async fn start_session(&self, req: pb::StartSessionRequest) -> Result<pb::StartSessionResponse> {
        let cmd = validate::start_session(req)?;
        let mut conn = self.conn().await?;
        let (view, ended) = sessions::start(&mut conn, cmd, self.settings.timezone, Utc::now()).await?;
        tracing::info!(session = view.row.id, room = view.row.room_id, ended_session = ended, "session started");
        Ok(pb::StartSessionResponse { session: Some(convert::session(view)), ended_session_id: ended })
    }

    /// `EndSession`.
    pub async fn end_session(&self, req: pb::EndSessionRequest) -> Result<pb::EndSessionResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        let (view, closed) = sessions::end(&mut conn, id, self.settings.timezone, Utc::now()).await?;
        tracing::info!(session = id, closed_visits = closed, "session ended");
        Ok(pb::EndSessionResponse { session: Some(convert::session(view)), closed_visit_count: closed as i64 })
    }

    /// `GetSession`.
    pub async fn get_session(&self, req: pb::GetSessionRequest) -> Result<pb::GetSessionResponse> {
        let id = validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        Ok(pb::GetSessionResponse { session: Some(convert::session(sessions::get(&mut conn, id).await?)) })
    }

    /// `ListSessions`.
    pub async fn list_sessions(&self, req: pb::ListSessionsRequest) -> Result<pb::ListSessionsResponse> {
        let cmd = validate::list_sessions(req)?;
        let mut conn = self.conn().await?;
        let (views, next_page_token, total_size) = sessions::list(&mut conn, cmd).await?;
        Ok(pb::ListSessionsResponse {
            sessions: views.into_iter().map(convert::session).collect(),
            next_page_token,
            total_size,
        })
    }

    /// `ProcessScan`.
    pub async fn process_scan(&self, req: pb::ProcessScanRequest) -> Result<pb::ProcessScanResponse> {
        let cmd = validate::process_scan(req)?;
        let (device, scan_id) = (cmd.device_id.clone(), cmd.scan_id.clone());
        let mut conn = self.conn().await?;
        let result = scan::process(&mut conn, self.settings, cmd, Utc::now()).await?;
        tracing::debug!(
            %device, %scan_id, outcome = result.outcome.as_str(), code = result.code.as_str(),
            duplicate = result.duplicate, "scan processed"
        );
        Ok(convert::scan_result(result))
    }
}

fn status(e: Error) -> Status {
    e.into()
}

#[tonic::async_trait]
impl pb::active_service_server::ActiveService for ActiveApi {
    #[instrument(skip_all, fields(room = request.get_ref().room_id))]
    async fn start_session(
        &self,
        request: Request<pb::StartSessionRequest>,
    ) -> Result<Response<pb::StartSessionResponse>, Status> {
        self.start_session(request.into_inner()).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all, fields(session = request.get_ref().id))]
    async fn end_session(
        &self,
        request: Request<pb::EndSessionRequest>,
    ) -> Result<Response<pb::EndSessionResponse>, Status> {
        self.end_session(request.into_inner()).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all, fields(session = request.get_ref().id))]
    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::GetSessionResponse>, Status> {
        self.get_session(request.into_inner()).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        self.list_sessions(request.into_inner()).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all, fields(device = %request.get_ref().device_id))]
    async fn process_scan(
        &self,
        request: Request<pb::ProcessScanRequest>,
    ) -> Result<Response<pb::ProcessScanResponse>, Status> {
        self.process_scan(request.into_inner()).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn join_session(
        &self,
        request: Request<pb::JoinSessionRequest>,
    ) -> Result<Response<pb::JoinSessionResponse>, Status> {
        self.join_session(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn leave_session(
        &self,
        request: Request<pb::LeaveSessionRequest>,
    ) -> Result<Response<pb::LeaveSessionResponse>, Status> {
        self.leave_session(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn claim_session(
        &self,
        request: Request<pb::ClaimSessionRequest>,
    ) -> Result<Response<pb::ClaimSessionResponse>, Status> {
        self.claim_session(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn update_session_supervisors(
        &self,
        request: Request<pb::UpdateSessionSupervisorsRequest>,
    ) -> Result<Response<pb::UpdateSessionSupervisorsResponse>, Status> {
        self.update_session_supervisors(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn create_combined_group(
        &self,
        request: Request<pb::CreateCombinedGroupRequest>,
    ) -> Result<Response<pb::CreateCombinedGroupResponse>, Status> {
        self.create_combined_group(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn get_combined_group(
        &self,
        request: Request<pb::GetCombinedGroupRequest>,
    ) -> Result<Response<pb::GetCombinedGroupResponse>, Status> {
        self.get_combined_group(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn list_combined_groups(
        &self,
        request: Request<pb::ListCombinedGroupsRequest>,
    ) -> Result<Response<pb::ListCombinedGroupsResponse>, Status> {
        self.list_combined_groups(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn end_combined_group(
        &self,
        request: Request<pb::EndCombinedGroupRequest>,
    ) -> Result<Response<pb::EndCombinedGroupResponse>, Status> {
        self.end_combined_group(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn add_session_to_combined_group(
        &self,
        request: Request<pb::AddSessionToCombinedGroupRequest>,
    ) -> Result<Response<pb::AddSessionToCombinedGroupResponse>, Status> {
        self.add_session_to_combined_group(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn remove_session_from_combined_group(
        &self,
        request: Request<pb::RemoveSessionFromCombinedGroupRequest>,
    ) -> Result<Response<pb::RemoveSessionFromCombinedGroupResponse>, Status> {
        self.remove_session_from_combined_group(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn get_visit(&self, request: Request<pb::GetVisitRequest>) -> Result<Response<pb::GetVisitResponse>, Status> {
        self.get_visit(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn list_visits(
        &self,
        request: Request<pb::ListVisitsRequest>,
    ) -> Result<Response<pb::ListVisitsResponse>, Status> {
        self.list_visits(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn check_in_student(
        &self,
        request: Request<pb::CheckInStudentRequest>,
    ) -> Result<Response<pb::CheckInStudentResponse>, Status> {
        self.check_in_student(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn check_out_student(
        &self,
        request: Request<pb::CheckOutStudentRequest>,
    ) -> Result<Response<pb::CheckOutStudentResponse>, Status> {
        self.check_out_student(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn end_visit(&self, request: Request<pb::EndVisitRequest>) -> Result<Response<pb::EndVisitResponse>, Status> {
        self.end_visit(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn get_attendance(
        &self,
        request: Request<pb::GetAttendanceRequest>,
    ) -> Result<Response<pb::GetAttendanceResponse>, Status> {
        self.get_attendance(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn list_attendance(
        &self,
        request: Request<pb::ListAttendanceRequest>,
    ) -> Result<Response<pb::ListAttendanceResponse>, Status> {
        self.list_attendance(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn check_out_for_day(
        &self,
        request: Request<pb::CheckOutForDayRequest>,
    ) -> Result<Response<pb::CheckOutForDayResponse>, Status> {
        self.check_out_for_day(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn get_student_presence(
        &self,
        request: Request<pb::GetStudentPresenceRequest>,
    ) -> Result<Response<pb::GetStudentPresenceResponse>, Status> {
        self.get_student_presence(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn get_activity_counts(
        &self,
        request: Request<pb::GetActivityCountsRequest>,
    ) -> Result<Response<pb::GetActivityCountsResponse>, Status> {
        self.get_activity_counts(request).await.map(Response::new).map_err(status)
    }

    #[instrument(skip_all)]
    async fn get_room_utilization(
        &self,
        request: Request<pb::GetRoomUtilizationRequest>,
    ) -> Result<Response<pb::GetRoomUtilizationResponse>, Status> {
        self.get_room_utilization(request).await.map(Response::new).map_err(status)
    }
}
