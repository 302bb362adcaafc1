//! `phoenix.active.v1.ReportService`: the service struct, [`METHODS`] and the tonic trait
//! impl, whose methods are the handlers: validate → authorise and read one snapshot
//! ([`crate::reports`], the rules of [`crate::scope`]) → stream the file in chunks.

use std::pin::Pin;

use chrono::Utc;
use phoenix_common::Reply;
use phoenix_common::access::Caller;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{DbPool, ReadPool};
use phoenix_common::settings::LiveSettings;
use phoenix_common::time::business_date_in;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::report_service_server::ReportService;
use tonic::{Request, Response, Status};

use crate::reports::{self, Report};

/// The permission each RPC needs: the attendance report is a list of attendance
/// (`visits:list`), the room report a view of the sessions (`groups:read`); both for staff
/// and admins only (the resource rule).
pub const METHODS: MethodTable = &[
    ("/phoenix.active.v1.ReportService/AttendanceReport", Requirement::Permission("visits:list")),
    ("/phoenix.active.v1.ReportService/RoomReport", Requirement::Permission("groups:read")),
];

/// The report service.
#[derive(Clone)]
pub struct ReportApi {
    pool: DbPool,
    /// Reports read here (the read replica while it keeps up).
    read: ReadPool,
    settings: LiveSettings,
}

impl std::fmt::Debug for ReportApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportApi").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl ReportApi {
    /// A service on `pool`, business dates in the school's time zone of `settings`.
    pub fn new(pool: DbPool, settings: LiveSettings) -> Self {
        Self { read: ReadPool::primary(pool.clone()), pool, settings }
    }

    /// Reports read from `read` ([`ReadPool`]).
    pub fn with_reads(self, read: ReadPool) -> Self {
        Self { read, ..self }
    }
}

/// A rendered report as a stream of `T`s, one chunk each.
pub type ReportStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

fn stream<T: Send + 'static>(report: Report, wrap: fn(pb::ReportChunk) -> T) -> ReportStream<T> {
    Box::pin(tokio_stream::iter(report.chunks().into_iter().map(move |c| Ok(wrap(c)))))
}

#[tonic::async_trait]
impl ReportService for ReportApi {
    type AttendanceReportStream = ReportStream<pb::AttendanceReportResponse>;
    type RoomReportStream = ReportStream<pb::RoomReportResponse>;

    async fn attendance_report(
        &self,
        request: Request<pb::AttendanceReportRequest>,
    ) -> Reply<Self::AttendanceReportStream> {
        let caller = Caller::of(&request, &self.pool).await?;
        let cmd = reports::attendance::validate(request.get_ref())?;
        let tz = self.settings.time_zone();
        let mut conn = self.read.conn().await?;
        let report = reports::attendance::build(&mut conn, &caller, cmd, tz, business_date_in(Utc::now(), tz)).await?;
        tracing::info!(
            group_id = cmd.group,
            bytes = report.bytes.len(),
            staff_id = caller.staff_id,
            "attendance report"
        );
        Ok(Response::new(stream(report, |chunk| pb::AttendanceReportResponse { chunk: Some(chunk) })))
    }

    async fn room_report(&self, request: Request<pb::RoomReportRequest>) -> Reply<Self::RoomReportStream> {
        let caller = Caller::of(&request, &self.pool).await?;
        let cmd = reports::rooms::validate(request.get_ref())?;
        let mut conn = self.read.conn().await?;
        let report = reports::rooms::build(&mut conn, &caller, cmd, self.settings.time_zone(), Utc::now()).await?;
        tracing::info!(room_id = cmd.room, bytes = report.bytes.len(), staff_id = caller.staff_id, "room report");
        Ok(Response::new(stream(report, |chunk| pb::RoomReportResponse { chunk: Some(chunk) })))
    }
}
