//! `phoenix.schedule.v1.ScheduleService`: the service struct, [`METHODS`] and the tonic
//! trait impl, whose methods are the handlers (validate → one transaction → convert).

use diesel_async::AsyncConnection as _;
use pb::schedule_service_server::ScheduleService;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::{self, DbPool};
use phoenix_common::validate::id;
use phoenix_common::{Error, Reply, time};
use phoenix_proto::schedule::v1 as pb;
use tonic::{Request, Response};

use crate::recurrence;
use crate::slots::{self, Window};
use crate::validate::PatternRef;
use crate::{classes, convert, repo, validate};

/// The permission each RPC needs (schedule RPCs reuse the activities
/// strings, except the current dateframe which is `schedules:read`; class schedules, new in
/// Phoenix, use the `schedules:*` strings of the seed).
pub const METHODS: MethodTable = &[
    ("/phoenix.schedule.v1.ScheduleService/CreateRecurrencePattern", Requirement::Permission("activities:create")),
    ("/phoenix.schedule.v1.ScheduleService/GetRecurrencePattern", Requirement::Permission("activities:read")),
    ("/phoenix.schedule.v1.ScheduleService/ListRecurrencePatterns", Requirement::Permission("activities:read")),
    ("/phoenix.schedule.v1.ScheduleService/DeleteRecurrencePattern", Requirement::Permission("activities:delete")),
    ("/phoenix.schedule.v1.ScheduleService/ExpandRecurrence", Requirement::Permission("activities:read")),
    ("/phoenix.schedule.v1.ScheduleService/CreateTimeframe", Requirement::Permission("activities:create")),
    ("/phoenix.schedule.v1.ScheduleService/ListTimeframes", Requirement::Permission("activities:read")),
    ("/phoenix.schedule.v1.ScheduleService/CreateDateframe", Requirement::Permission("activities:create")),
    ("/phoenix.schedule.v1.ScheduleService/GetCurrentDateframe", Requirement::Permission("schedules:read")),
    ("/phoenix.schedule.v1.ScheduleService/CreateClassSchedule", Requirement::Permission("schedules:create")),
    ("/phoenix.schedule.v1.ScheduleService/GetClassSchedule", Requirement::Permission("schedules:read")),
    ("/phoenix.schedule.v1.ScheduleService/ListClassSchedules", Requirement::Permission("schedules:read")),
    ("/phoenix.schedule.v1.ScheduleService/UpdateClassSchedule", Requirement::Permission("schedules:update")),
    ("/phoenix.schedule.v1.ScheduleService/DeleteClassSchedule", Requirement::Permission("schedules:delete")),
    ("/phoenix.schedule.v1.ScheduleService/CheckRoomConflict", Requirement::Permission("activities:read")),
    ("/phoenix.schedule.v1.ScheduleService/FindFreeSlots", Requirement::Permission("activities:read")),
];

/// The schedule service over a database pool.
#[derive(Clone)]
pub struct ScheduleApi {
    pool: DbPool,
}

impl std::fmt::Debug for ScheduleApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduleApi").finish_non_exhaustive()
    }
}

impl ScheduleApi {
    /// A service answering from `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

#[tonic::async_trait]
impl ScheduleService for ScheduleApi {
    async fn create_recurrence_pattern(
        &self,
        request: Request<pb::CreateRecurrencePatternRequest>,
    ) -> Reply<pb::CreateRecurrencePatternResponse> {
        let rule = validate::create_recurrence_pattern(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn
            .transaction::<_, Error, _>(async |c| repo::insert_pattern(c, convert::new_pattern(&rule)).await)
            .await?;
        tracing::info!(recurrence_pattern_id = row.id, "recurrence pattern created");
        Ok(Response::new(pb::CreateRecurrencePatternResponse { recurrence_pattern: Some(convert::pattern(row)) }))
    }

    async fn get_recurrence_pattern(
        &self,
        request: Request<pb::GetRecurrencePatternRequest>,
    ) -> Reply<pb::GetRecurrencePatternResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let row = repo::find_pattern(&mut conn, id).await?.ok_or_else(|| Error::not_found("recurrence pattern", id))?;
        Ok(Response::new(pb::GetRecurrencePatternResponse { recurrence_pattern: Some(convert::pattern(row)) }))
    }

    async fn list_recurrence_patterns(
        &self,
        request: Request<pb::ListRecurrencePatternsRequest>,
    ) -> Reply<pb::ListRecurrencePatternsResponse> {
        let page = validate::list_recurrence_patterns(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let rows = repo::list_patterns(&mut conn, page.after_id()?, page.fetch_limit()).await?;
        let total = repo::count_patterns(&mut conn).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListRecurrencePatternsResponse {
            recurrence_patterns: rows.into_iter().map(convert::pattern).collect(),
            next_page_token,
            total_size: convert::count(total),
        }))
    }

    async fn delete_recurrence_pattern(
        &self,
        request: Request<pb::DeleteRecurrencePatternRequest>,
    ) -> Reply<pb::DeleteRecurrencePatternResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async |c| {
            if repo::delete_pattern(c, id).await? { Ok(()) } else { Err(Error::not_found("recurrence pattern", id)) }
        })
        .await?;
        tracing::info!(recurrence_pattern_id = id, "recurrence pattern deleted");
        Ok(Response::new(pb::DeleteRecurrencePatternResponse {}))
    }

    async fn expand_recurrence(
        &self,
        request: Request<pb::ExpandRecurrenceRequest>,
    ) -> Reply<pb::ExpandRecurrenceResponse> {
        let ask = validate::expand_recurrence(request.into_inner())?;
        let rule = match ask.pattern {
            PatternRef::Rule(rule) => rule,
            PatternRef::Stored(id) => {
                let mut conn = db::conn(&self.pool).await?;
                let row = repo::find_pattern(&mut conn, id)
                    .await?
                    .ok_or_else(|| Error::not_found("recurrence pattern", id))?;
                validate::stored_rule(id, &convert::pattern(row))?
            }
        };
        let events = recurrence::expand(&rule, ask.start, ask.end)
            .into_iter()
            .map(|d| pb::Event {
                date: d.to_string(),
                start_time: ask.time.map(|t| time::to_timestamp(recurrence::at_local_time(d, t, ask.tz).to_utc())),
            })
            .collect();
        Ok(Response::new(pb::ExpandRecurrenceResponse { events }))
    }

    async fn create_timeframe(
        &self,
        request: Request<pb::CreateTimeframeRequest>,
    ) -> Reply<pb::CreateTimeframeResponse> {
        let new = validate::create_timeframe(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn.transaction::<_, Error, _>(async |c| repo::insert_timeframe(c, new).await).await?;
        tracing::info!(timeframe_id = row.id, "timeframe created");
        Ok(Response::new(pb::CreateTimeframeResponse { timeframe: Some(convert::timeframe(row)) }))
    }

    async fn list_timeframes(&self, request: Request<pb::ListTimeframesRequest>) -> Reply<pb::ListTimeframesResponse> {
        let (active_only, page) = validate::list_timeframes(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let (rows, total) = repo::list_timeframes(&mut conn, active_only, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListTimeframesResponse {
            timeframes: rows.into_iter().map(convert::timeframe).collect(),
            next_page_token,
            total_size: convert::count(total),
        }))
    }

    async fn create_dateframe(
        &self,
        request: Request<pb::CreateDateframeRequest>,
    ) -> Reply<pb::CreateDateframeResponse> {
        let new = validate::create_dateframe(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn.transaction::<_, Error, _>(async |c| repo::insert_dateframe(c, new).await).await?;
        tracing::info!(dateframe_id = row.id, "dateframe created");
        Ok(Response::new(pb::CreateDateframeResponse { dateframe: Some(convert::dateframe(row)) }))
    }

    async fn get_current_dateframe(
        &self,
        request: Request<pb::GetCurrentDateframeRequest>,
    ) -> Reply<pb::GetCurrentDateframeResponse> {
        let day = validate::get_current_dateframe(request.get_ref())?.unwrap_or_else(time::business_today);
        let mut conn = db::conn(&self.pool).await?;
        let row = repo::dateframe_containing(&mut conn, day)
            .await?
            .ok_or_else(|| Error::not_found("dateframe containing", day))?;
        Ok(Response::new(pb::GetCurrentDateframeResponse { dateframe: Some(convert::dateframe(row)) }))
    }

    async fn create_class_schedule(
        &self,
        request: Request<pb::CreateClassScheduleRequest>,
    ) -> Reply<pb::CreateClassScheduleResponse> {
        let draft = validate::create_class_schedule(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn.transaction::<_, Error, _>(async |c| classes::create(c, draft).await).await?;
        tracing::info!(class_schedule_id = row.id, "class schedule created");
        Ok(Response::new(pb::CreateClassScheduleResponse { class_schedule: Some(convert::class_schedule(row)) }))
    }

    async fn get_class_schedule(
        &self,
        request: Request<pb::GetClassScheduleRequest>,
    ) -> Reply<pb::GetClassScheduleResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        let row = repo::find_class_schedule(&mut conn, id, false)
            .await?
            .ok_or_else(|| Error::not_found("class schedule", id))?;
        Ok(Response::new(pb::GetClassScheduleResponse { class_schedule: Some(convert::class_schedule(row)) }))
    }

    async fn list_class_schedules(
        &self,
        request: Request<pb::ListClassSchedulesRequest>,
    ) -> Reply<pb::ListClassSchedulesResponse> {
        let (filter, page) = validate::list_class_schedules(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let (rows, total) = repo::list_class_schedules(&mut conn, filter, page.after_id()?, page.fetch_limit()).await?;
        let (rows, next_page_token) = page.finish(rows, |r| r.id.to_string());
        Ok(Response::new(pb::ListClassSchedulesResponse {
            class_schedules: rows.into_iter().map(convert::class_schedule).collect(),
            next_page_token,
            total_size: convert::count(total),
        }))
    }

    async fn update_class_schedule(
        &self,
        request: Request<pb::UpdateClassScheduleRequest>,
    ) -> Reply<pb::UpdateClassScheduleResponse> {
        let update = validate::update_class_schedule(request.into_inner())?;
        let mut conn = db::conn(&self.pool).await?;
        let row = conn.transaction::<_, Error, _>(async |c| classes::update(c, &update).await).await?;
        tracing::info!(class_schedule_id = row.id, "class schedule updated");
        Ok(Response::new(pb::UpdateClassScheduleResponse { class_schedule: Some(convert::class_schedule(row)) }))
    }

    async fn delete_class_schedule(
        &self,
        request: Request<pb::DeleteClassScheduleRequest>,
    ) -> Reply<pb::DeleteClassScheduleResponse> {
        let id = id("id", request.get_ref().id)?;
        let mut conn = db::conn(&self.pool).await?;
        conn.transaction::<_, Error, _>(async |c| {
            if repo::delete_class_schedule(c, id).await? { Ok(()) } else { Err(Error::not_found("class schedule", id)) }
        })
        .await?;
        tracing::info!(class_schedule_id = id, "class schedule deleted");
        Ok(Response::new(pb::DeleteClassScheduleResponse {}))
    }

    async fn check_room_conflict(
        &self,
        request: Request<pb::CheckRoomConflictRequest>,
    ) -> Reply<pb::CheckRoomConflictResponse> {
        let ask = validate::check_room_conflict(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let conflicts: Vec<_> = classes::bookings_of_room(&mut conn, ask.room_id, ask.weekday)
            .await?
            .into_iter()
            .filter(|b| b.window.overlaps(&ask.window))
            .map(|b| b.message)
            .collect();
        Ok(Response::new(pb::CheckRoomConflictResponse { has_conflict: !conflicts.is_empty(), conflicts }))
    }

    async fn find_free_slots(&self, request: Request<pb::FindFreeSlotsRequest>) -> Reply<pb::FindFreeSlotsResponse> {
        let (ask, minutes) = validate::find_free_slots(request.get_ref())?;
        let mut conn = db::conn(&self.pool).await?;
        let busy: Vec<Window> = classes::bookings_of_room(&mut conn, ask.room_id, ask.weekday)
            .await?
            .into_iter()
            .map(|b| b.window)
            .collect();
        let slots = slots::free_windows(ask.window, &busy, minutes)
            .into_iter()
            .map(|w| pb::Slot { start_time: convert::hhmm(w.start), end_time: convert::hhmm(w.end) })
            .collect();
        Ok(Response::new(pb::FindFreeSlotsResponse { slots }))
    }
}
