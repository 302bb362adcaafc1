//! The handlers of the supervisor, combined-group, visit, attendance, pupil and analytics
//! RPCs: the caller from the verified token (read before the request is consumed), one
//! pooled connection, the module's function, the response. The tonic trait impl in
//! [`crate::service`] forwards to these. Logs carry ids only.

use chrono::{NaiveDate, Utc};
use phoenix_common::access::Caller;
use phoenix_common::authz::AuthContext;
use phoenix_common::time::business_date_in;
use phoenix_common::{Error, FieldViolations, Result};
use phoenix_proto::active::v1 as pb;
use tonic::Request;

use crate::service::ActiveApi;
use crate::{analytics, attendance, combined, convert, pupil, scope, supervisors, visits};

impl ActiveApi {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller> {
        Caller::of(request, &self.pool).await
    }

    fn today(&self) -> NaiveDate {
        business_date_in(Utc::now(), self.settings.timezone)
    }

    /// `JoinSession`.
    pub async fn join_session(&self, request: Request<pb::JoinSessionRequest>) -> Result<pb::JoinSessionResponse> {
        let caller = self.caller(&request).await?;
        let mut conn = self.conn().await?;
        let view = supervisors::join(&mut conn, &caller, request.into_inner(), self.today()).await?;
        tracing::info!(session = view.row.id, staff = caller.staff_id, "session joined");
        Ok(pb::JoinSessionResponse { session: Some(convert::session(view)) })
    }

    /// `LeaveSession`: someone else's supervision needs `groups:assign` on top.
    pub async fn leave_session(&self, request: Request<pb::LeaveSessionRequest>) -> Result<pb::LeaveSessionResponse> {
        let caller = self.caller(&request).await?;
        let may_assign = AuthContext::of(&request)?.has_permission("groups:assign");
        let (session, named) = supervisors::validate_leave(request.get_ref())?;
        let target = match named {
            Some(staff) if Some(staff) != caller.staff_id => {
                if !may_assign {
                    return Err(Error::PermissionDenied(
                        "missing permission groups:assign: ending another staff member's supervision needs it".into(),
                    ));
                }
                staff
            }
            _ => scope::staff_id(&caller, "leave sessions")?,
        };
        let mut conn = self.conn().await?;
        let view = supervisors::leave(&mut conn, session, target, self.today()).await?;
        tracing::info!(session, staff = target, "supervision ended");
        Ok(pb::LeaveSessionResponse { session: Some(convert::session(view)) })
    }

    /// `ClaimSession`.
    pub async fn claim_session(&self, request: Request<pb::ClaimSessionRequest>) -> Result<pb::ClaimSessionResponse> {
        let caller = self.caller(&request).await?;
        let mut conn = self.conn().await?;
        let view = supervisors::claim(&mut conn, &caller, request.into_inner(), self.today()).await?;
        tracing::info!(session = view.row.id, staff = caller.staff_id, "session claimed");
        Ok(pb::ClaimSessionResponse { session: Some(convert::session(view)) })
    }

    /// `UpdateSessionSupervisors`.
    pub async fn update_session_supervisors(
        &self,
        request: Request<pb::UpdateSessionSupervisorsRequest>,
    ) -> Result<pb::UpdateSessionSupervisorsResponse> {
        let mut conn = self.conn().await?;
        let view = supervisors::replace(&mut conn, request.into_inner(), self.today()).await?;
        tracing::info!(session = view.row.id, "supervisors replaced");
        Ok(pb::UpdateSessionSupervisorsResponse { session: Some(convert::session(view)) })
    }

    /// `CreateCombinedGroup`.
    pub async fn create_combined_group(
        &self,
        request: Request<pb::CreateCombinedGroupRequest>,
    ) -> Result<pb::CreateCombinedGroupResponse> {
        let caller = self.caller(&request).await?;
        let mut conn = self.conn().await?;
        let view = combined::create(&mut conn, &caller, request.into_inner(), Utc::now()).await?;
        tracing::info!(combined_group = view.row.id, sessions = view.session_ids.len(), "combined group created");
        Ok(pb::CreateCombinedGroupResponse { combined_group: Some(combined::to_pb(view)) })
    }

    /// `GetCombinedGroup`.
    pub async fn get_combined_group(
        &self,
        request: Request<pb::GetCombinedGroupRequest>,
    ) -> Result<pb::GetCombinedGroupResponse> {
        let mut conn = self.conn().await?;
        let view = combined::get(&mut conn, request.into_inner()).await?;
        Ok(pb::GetCombinedGroupResponse { combined_group: Some(combined::to_pb(view)) })
    }

    /// `ListCombinedGroups`.
    pub async fn list_combined_groups(
        &self,
        request: Request<pb::ListCombinedGroupsRequest>,
    ) -> Result<pb::ListCombinedGroupsResponse> {
        let mut conn = self.conn().await?;
        let (views, next_page_token, total_size) = combined::list(&mut conn, request.into_inner()).await?;
        Ok(pb::ListCombinedGroupsResponse {
            combined_groups: views.into_iter().map(combined::to_pb).collect(),
            next_page_token,
            total_size,
        })
    }

    /// `EndCombinedGroup`.
    pub async fn end_combined_group(
        &self,
        request: Request<pb::EndCombinedGroupRequest>,
    ) -> Result<pb::EndCombinedGroupResponse> {
        let mut conn = self.conn().await?;
        let view = combined::end(&mut conn, request.into_inner(), Utc::now()).await?;
        tracing::info!(combined_group = view.row.id, "combined group ended");
        Ok(pb::EndCombinedGroupResponse { combined_group: Some(combined::to_pb(view)) })
    }

    /// `AddSessionToCombinedGroup`.
    pub async fn add_session_to_combined_group(
        &self,
        request: Request<pb::AddSessionToCombinedGroupRequest>,
    ) -> Result<pb::AddSessionToCombinedGroupResponse> {
        let mut conn = self.conn().await?;
        let session = request.get_ref().session_id;
        let view = combined::add_session(&mut conn, request.into_inner()).await?;
        tracing::info!(combined_group = view.row.id, session, "session combined");
        Ok(pb::AddSessionToCombinedGroupResponse { combined_group: Some(combined::to_pb(view)) })
    }

    /// `RemoveSessionFromCombinedGroup`.
    pub async fn remove_session_from_combined_group(
        &self,
        request: Request<pb::RemoveSessionFromCombinedGroupRequest>,
    ) -> Result<pb::RemoveSessionFromCombinedGroupResponse> {
        let mut conn = self.conn().await?;
        let session = request.get_ref().session_id;
        let view = combined::remove_session(&mut conn, request.into_inner()).await?;
        tracing::info!(combined_group = view.row.id, session, "session uncombined");
        Ok(pb::RemoveSessionFromCombinedGroupResponse { combined_group: Some(combined::to_pb(view)) })
    }

    /// `GetVisit`.
    pub async fn get_visit(&self, request: Request<pb::GetVisitRequest>) -> Result<pb::GetVisitResponse> {
        let caller = self.caller(&request).await?;
        let id = positive("id", request.get_ref().id)?;
        let mut conn = self.conn().await?;
        let visit = visits::get(&mut conn, &caller, id, self.today()).await?;
        Ok(pb::GetVisitResponse { visit: Some(visits::to_pb(visit)) })
    }

    /// `ListVisits`.
    pub async fn list_visits(&self, request: Request<pb::ListVisitsRequest>) -> Result<pb::ListVisitsResponse> {
        let caller = self.caller(&request).await?;
        let mut conn = self.conn().await?;
        let (rows, next_page_token, total_size) =
            visits::list(&mut conn, &caller, request.into_inner(), self.settings.timezone, self.today()).await?;
        Ok(pb::ListVisitsResponse {
            visits: rows.into_iter().map(visits::to_pb).collect(),
            next_page_token,
            total_size,
        })
    }

    /// `CheckInStudent`.
    pub async fn check_in_student(
        &self,
        request: Request<pb::CheckInStudentRequest>,
    ) -> Result<pb::CheckInStudentResponse> {
        let caller = self.caller(&request).await?;
        let mut conn = self.conn().await?;
        let done =
            visits::check_in(&mut conn, &caller, request.into_inner(), self.settings.timezone, Utc::now()).await?;
        tracing::info!(
            visit = done.visit.id,
            student = done.visit.student_id,
            session = done.visit.session_id,
            closed_visit = done.closed_visit_id,
            staff = caller.staff_id,
            "checked in by hand"
        );
        Ok(pb::CheckInStudentResponse {
            visit: Some(visits::to_pb(done.visit)),
            closed_visit_id: done.closed_visit_id,
            arrived: done.arrived,
        })
    }

    /// `CheckOutStudent`.
    pub async fn check_out_student(
        &self,
        request: Request<pb::CheckOutStudentRequest>,
    ) -> Result<pb::CheckOutStudentResponse> {
        let caller = self.caller(&request).await?;
        let mut conn = self.conn().await?;
        let visit = visits::check_out(&mut conn, &caller, request.into_inner(), self.today(), Utc::now()).await?;
        tracing::info!(visit = visit.id, student = visit.student_id, staff = caller.staff_id, "checked out by hand");
        Ok(pb::CheckOutStudentResponse { visit: Some(visits::to_pb(visit)) })
    }

    /// `EndVisit`.
    pub async fn end_visit(&self, request: Request<pb::EndVisitRequest>) -> Result<pb::EndVisitResponse> {
        let caller = self.caller(&request).await?;
        let mut conn = self.conn().await?;
        let visit = visits::end(&mut conn, &caller, request.into_inner(), self.today(), Utc::now()).await?;
        tracing::info!(visit = visit.id, student = visit.student_id, staff = caller.staff_id, "visit ended");
        Ok(pb::EndVisitResponse { visit: Some(visits::to_pb(visit)) })
    }

    /// `GetAttendance`.
    pub async fn get_attendance(
        &self,
        request: Request<pb::GetAttendanceRequest>,
    ) -> Result<pb::GetAttendanceResponse> {
        let caller = self.caller(&request).await?;
        let mut conn = self.conn().await?;
        let day = attendance::get(&mut conn, &caller, request.into_inner(), self.today()).await?;
        Ok(pb::GetAttendanceResponse { attendance: Some(day) })
    }

    /// `ListAttendance`.
    pub async fn list_attendance(
        &self,
        request: Request<pb::ListAttendanceRequest>,
    ) -> Result<pb::ListAttendanceResponse> {
        let caller = self.caller(&request).await?;
        let mut conn = self.conn().await?;
        let (rows, next_page_token, total_size) =
            attendance::list(&mut conn, &caller, request.into_inner(), self.today()).await?;
        Ok(pb::ListAttendanceResponse { attendance: rows, next_page_token, total_size })
    }

    /// `CheckOutForDay`.
    pub async fn check_out_for_day(
        &self,
        request: Request<pb::CheckOutForDayRequest>,
    ) -> Result<pb::CheckOutForDayResponse> {
        let caller = self.caller(&request).await?;
        let mut conn = self.conn().await?;
        let done =
            attendance::check_out_for_day(&mut conn, &caller, request.into_inner(), self.settings.timezone, Utc::now())
                .await?;
        tracing::info!(
            student = done.attendance.student_id,
            closed_visit = done.closed_visit_id,
            staff = caller.staff_id,
            "checked out for the day"
        );
        Ok(pb::CheckOutForDayResponse { attendance: Some(done.attendance), closed_visit_id: done.closed_visit_id })
    }

    /// `GetStudentPresence`.
    pub async fn get_student_presence(
        &self,
        request: Request<pb::GetStudentPresenceRequest>,
    ) -> Result<pb::GetStudentPresenceResponse> {
        let caller = self.caller(&request).await?;
        let student = positive("student_id", request.get_ref().student_id)?;
        let mut conn = self.conn().await?;
        let presence = pupil::get(&mut conn, &caller, student, self.settings.timezone, Utc::now()).await?;
        Ok(pb::GetStudentPresenceResponse { presence: Some(presence) })
    }

    /// `GetActivityCounts`.
    pub async fn get_activity_counts(
        &self,
        _request: Request<pb::GetActivityCountsRequest>,
    ) -> Result<pb::GetActivityCountsResponse> {
        let mut conn = self.conn().await?;
        analytics::counts(&mut conn, self.today(), self.settings.timezone).await
    }

    /// `GetRoomUtilization`.
    pub async fn get_room_utilization(
        &self,
        request: Request<pb::GetRoomUtilizationRequest>,
    ) -> Result<pb::GetRoomUtilizationResponse> {
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        if req.room_id <= 0 {
            v.add("room_id", format!("must be a positive id, got {}", req.room_id));
        }
        let range =
            phoenix_common::validate::collect(analytics::range(&req.start_date, &req.end_date, self.today()), &mut v);
        v.into_result()?;
        let range = range.ok_or_else(|| Error::invalid("start_date", "is required"))?;
        let mut conn = self.conn().await?;
        analytics::room_utilization(&mut conn, req.room_id, range, self.settings.timezone, Utc::now()).await
    }
}

fn positive(field: &str, id: i64) -> Result<i64> {
    crate::validate::id(field, id)
}
