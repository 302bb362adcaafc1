//! The tonic handlers of `phoenix.schedule.v1.ScheduleService`.

use chrono::Utc;
use diesel_async::AsyncConnection;
use pb::schedule_service_server::ScheduleService;
use phoenix_common::authz::{MethodTable, Requirement};
use phoenix_common::db::DbPool;
use phoenix_common::page::Page;
use phoenix_common::{Error, FieldViolations};
use phoenix_proto::schedule::v1 as pb;
use tonic::{Request, Response, Status};

use crate::recurrence::{self, MAX_RANGE_DAYS};
use crate::repo::{self, DateframeRow, TimeframeRow};
use crate::slots::{self, Window};
use crate::{classes, convert, validate};

/// The permission each RPC needs (the reference §1.6: schedule RPCs reuse the activities
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

/// The business time zone (the `system.time_zone` setting's default).
const BUSINESS_TZ: chrono_tz::Tz = chrono_tz::Europe::Berlin;

/// The service state.
#[derive(Clone)]
pub struct ScheduleServiceImpl {
    pool: DbPool,
}

impl std::fmt::Debug for ScheduleServiceImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduleServiceImpl").finish_non_exhaustive()
    }
}

impl ScheduleServiceImpl {
    /// A service on `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    /// Every weekly booking of a room on a weekday (`NotFound` for an unknown room).
    async fn bookings(&self, room_id: i64, weekday: u8) -> Result<Vec<classes::Booking>, Error> {
        let mut conn = self.pool.get().await?;
        if !repo::room_exists(&mut conn, room_id).await? {
            return Err(Error::not_found("room", room_id));
        }
        classes::bookings(&mut conn, room_id, i16::from(weekday)).await
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn positive_id(field: &str, id: i64) -> Result<i64, Error> {
    if id > 0 { Ok(id) } else { Err(Error::invalid(field, format!("must be a positive id, got {id}"))) }
}

#[tonic::async_trait]
impl ScheduleService for ScheduleServiceImpl {
    async fn create_recurrence_pattern(
        &self,
        request: Request<pb::CreateRecurrencePatternRequest>,
    ) -> Reply<pb::CreateRecurrencePatternResponse> {
        let p = request
            .into_inner()
            .recurrence_pattern
            .ok_or_else(|| Error::invalid("recurrence_pattern", "is required"))?;
        let mut v = FieldViolations::default();
        let rule = validate::rule("recurrence_pattern.", &p, &mut v);
        v.into_result()?;
        let rule = rule.ok_or_else(|| Error::invalid("recurrence_pattern", "invalid"))?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = conn
            .transaction::<_, Error, _>(async |conn| Ok(repo::insert_pattern(conn, convert::new_pattern(&rule)).await?))
            .await?;
        Ok(Response::new(pb::CreateRecurrencePatternResponse { recurrence_pattern: Some(convert::pattern(row)) }))
    }

    async fn get_recurrence_pattern(
        &self,
        request: Request<pb::GetRecurrencePatternRequest>,
    ) -> Reply<pb::GetRecurrencePatternResponse> {
        let id = positive_id("id", request.get_ref().id)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = repo::find_pattern(&mut conn, id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::not_found("recurrence pattern", id))?;
        Ok(Response::new(pb::GetRecurrencePatternResponse { recurrence_pattern: Some(convert::pattern(row)) }))
    }

    async fn list_recurrence_patterns(
        &self,
        request: Request<pb::ListRecurrencePatternsRequest>,
    ) -> Reply<pb::ListRecurrencePatternsResponse> {
        let req = request.into_inner();
        let page = Page::parse(req.page_size, &req.page_token, "patterns")?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let mut rows = repo::list_patterns(&mut conn, page.after, page.fetch_limit()).await.map_err(Error::from)?;
        let total = repo::count_patterns(&mut conn).await.map_err(Error::from)?;
        let next_page_token = page.finish(&mut rows, |r| r.id, "patterns");
        Ok(Response::new(pb::ListRecurrencePatternsResponse {
            recurrence_patterns: rows.into_iter().map(convert::pattern).collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn delete_recurrence_pattern(
        &self,
        request: Request<pb::DeleteRecurrencePatternRequest>,
    ) -> Reply<pb::DeleteRecurrencePatternResponse> {
        let id = positive_id("id", request.get_ref().id)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        conn.transaction::<_, Error, _>(async |conn| {
            if repo::delete_pattern(conn, id).await? { Ok(()) } else { Err(Error::not_found("recurrence pattern", id)) }
        })
        .await?;
        Ok(Response::new(pb::DeleteRecurrencePatternResponse {}))
    }

    async fn expand_recurrence(
        &self,
        request: Request<pb::ExpandRecurrenceRequest>,
    ) -> Reply<pb::ExpandRecurrenceResponse> {
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        let start = validate::date("start_date", &req.start_date, &mut v);
        let end = validate::date("end_date", &req.end_date, &mut v);
        if let (Some(s), Some(e)) = (start, end) {
            let days = (e - s).num_days();
            if days < 0 {
                v.add("end_date", "must not be before start_date");
            } else if days > MAX_RANGE_DAYS {
                v.add("end_date", format!("range must be at most {MAX_RANGE_DAYS} days, got {days}"));
            }
        }
        let time = (!req.time_of_day.trim().is_empty())
            .then(|| validate::time("time_of_day", &req.time_of_day, &mut v))
            .flatten();
        let tz = if req.time_zone.trim().is_empty() {
            BUSINESS_TZ
        } else {
            req.time_zone.trim().parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
                v.add("time_zone", format!("must be an IANA time zone, got {:?}", req.time_zone));
                BUSINESS_TZ
            })
        };
        let inline = match &req.pattern {
            Some(pb::expand_recurrence_request::Pattern::Rule(p)) => validate::rule("rule.", p, &mut v),
            Some(pb::expand_recurrence_request::Pattern::PatternId(id)) if *id <= 0 => {
                v.add("pattern_id", format!("must be a positive id, got {id}"));
                None
            }
            Some(pb::expand_recurrence_request::Pattern::PatternId(_)) => None,
            None => {
                v.add("pattern", "set pattern_id or rule");
                None
            }
        };
        v.into_result()?;
        let (Some(start), Some(end)) = (start, end) else { return Err(Error::invalid("start_date", "invalid").into()) };
        let rule = match (inline, req.pattern) {
            (Some(rule), _) => rule,
            (None, Some(pb::expand_recurrence_request::Pattern::PatternId(id))) => {
                let mut conn = self.pool.get().await.map_err(Error::from)?;
                let row = repo::find_pattern(&mut conn, id)
                    .await
                    .map_err(Error::from)?
                    .ok_or_else(|| Error::not_found("recurrence pattern", id))?;
                let mut v = FieldViolations::default();
                let rule = validate::rule("", &convert::pattern(row), &mut v);
                rule.ok_or_else(|| Error::Internal(anyhow::anyhow!("stored pattern {id} is invalid: {v}")))?
            }
            _ => return Err(Error::invalid("pattern", "set pattern_id or rule").into()),
        };
        let events = recurrence::expand(&rule, start, end)
            .into_iter()
            .map(|d| pb::Event {
                date: d.to_string(),
                start_time: time.map(|t| convert::timestamp(recurrence::at_local_time(d, t, tz).to_utc())),
            })
            .collect();
        Ok(Response::new(pb::ExpandRecurrenceResponse { events }))
    }

    async fn create_timeframe(
        &self,
        request: Request<pb::CreateTimeframeRequest>,
    ) -> Reply<pb::CreateTimeframeResponse> {
        let tf = request.into_inner().timeframe.ok_or_else(|| Error::invalid("timeframe", "is required"))?;
        let mut v = FieldViolations::default();
        let start = tf.start_time.as_ref().and_then(convert::from_timestamp);
        if start.is_none() {
            v.add("timeframe.start_time", "is required");
        }
        let end = tf.end_time.as_ref().and_then(convert::from_timestamp);
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            v.add("timeframe.end_time", "must be after start_time");
        }
        v.into_result()?;
        let Some(start_time) = start else { return Err(Error::invalid("timeframe.start_time", "is required").into()) };
        let row = TimeframeRow {
            id: 0,
            start_time,
            end_time: end,
            is_active: tf.is_active,
            description: Some(tf.description.trim().to_owned()).filter(|d| !d.is_empty()),
        };
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = conn.transaction::<_, Error, _>(async |conn| Ok(repo::insert_timeframe(conn, row).await?)).await?;
        Ok(Response::new(pb::CreateTimeframeResponse { timeframe: Some(convert::timeframe(row)) }))
    }

    async fn list_timeframes(&self, request: Request<pb::ListTimeframesRequest>) -> Reply<pb::ListTimeframesResponse> {
        let req = request.into_inner();
        let filters = format!("active_only={}", req.active_only);
        let page = Page::parse(req.page_size, &req.page_token, &filters)?;
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let (mut rows, total) = repo::list_timeframes(&mut conn, req.active_only, page.after, page.fetch_limit())
            .await
            .map_err(Error::from)?;
        let next_page_token = page.finish(&mut rows, |r| r.id, &filters);
        Ok(Response::new(pb::ListTimeframesResponse {
            timeframes: rows.into_iter().map(convert::timeframe).collect(),
            next_page_token,
            total_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn create_dateframe(
        &self,
        request: Request<pb::CreateDateframeRequest>,
    ) -> Reply<pb::CreateDateframeResponse> {
        let df = request.into_inner().dateframe.ok_or_else(|| Error::invalid("dateframe", "is required"))?;
        let mut v = FieldViolations::default();
        let start = validate::date("dateframe.start_date", &df.start_date, &mut v);
        let end = validate::date("dateframe.end_date", &df.end_date, &mut v);
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            v.add("dateframe.end_date", "must not be before start_date");
        }
        v.into_result()?;
        let (Some(start), Some(end)) = (start, end) else { return Err(Error::invalid("dateframe", "invalid").into()) };
        let row = DateframeRow {
            id: 0,
            start_date: repo::date_to_ts(start),
            end_date: repo::date_to_ts(end),
            name: Some(df.name.trim().to_owned()).filter(|d| !d.is_empty()),
            description: Some(df.description.trim().to_owned()).filter(|d| !d.is_empty()),
        };
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = conn.transaction::<_, Error, _>(async |conn| Ok(repo::insert_dateframe(conn, row).await?)).await?;
        Ok(Response::new(pb::CreateDateframeResponse { dateframe: Some(convert::dateframe(row)) }))
    }

    async fn get_current_dateframe(
        &self,
        request: Request<pb::GetCurrentDateframeRequest>,
    ) -> Reply<pb::GetCurrentDateframeResponse> {
        let raw = request.into_inner().date;
        let day = if raw.trim().is_empty() {
            Utc::now().with_timezone(&BUSINESS_TZ).date_naive()
        } else {
            let mut v = FieldViolations::default();
            let d = validate::date("date", &raw, &mut v);
            v.into_result()?;
            d.ok_or_else(|| Error::invalid("date", "invalid"))?
        };
        let mut conn = self.pool.get().await.map_err(Error::from)?;
        let row = repo::dateframe_containing(&mut conn, day)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::not_found("dateframe containing", day))?;
        Ok(Response::new(pb::GetCurrentDateframeResponse { dateframe: Some(convert::dateframe(row)) }))
    }

    async fn create_class_schedule(
        &self,
        request: Request<pb::CreateClassScheduleRequest>,
    ) -> Reply<pb::CreateClassScheduleResponse> {
        let class_schedule = classes::create(&self.pool, request.into_inner()).await?;
        Ok(Response::new(pb::CreateClassScheduleResponse { class_schedule: Some(class_schedule) }))
    }

    async fn get_class_schedule(
        &self,
        request: Request<pb::GetClassScheduleRequest>,
    ) -> Reply<pb::GetClassScheduleResponse> {
        let class_schedule = classes::get(&self.pool, request.get_ref().id).await?;
        Ok(Response::new(pb::GetClassScheduleResponse { class_schedule: Some(class_schedule) }))
    }

    async fn list_class_schedules(
        &self,
        request: Request<pb::ListClassSchedulesRequest>,
    ) -> Reply<pb::ListClassSchedulesResponse> {
        Ok(Response::new(classes::list(&self.pool, request.into_inner()).await?))
    }

    async fn update_class_schedule(
        &self,
        request: Request<pb::UpdateClassScheduleRequest>,
    ) -> Reply<pb::UpdateClassScheduleResponse> {
        let class_schedule = classes::update(&self.pool, request.into_inner()).await?;
        Ok(Response::new(pb::UpdateClassScheduleResponse { class_schedule: Some(class_schedule) }))
    }

    async fn delete_class_schedule(
        &self,
        request: Request<pb::DeleteClassScheduleRequest>,
    ) -> Reply<pb::DeleteClassScheduleResponse> {
        classes::delete(&self.pool, request.get_ref().id).await?;
        Ok(Response::new(pb::DeleteClassScheduleResponse {}))
    }

    async fn check_room_conflict(
        &self,
        request: Request<pb::CheckRoomConflictRequest>,
    ) -> Reply<pb::CheckRoomConflictResponse> {
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        if req.room_id <= 0 {
            v.add("room_id", format!("must be a positive id, got {}", req.room_id));
        }
        let weekday = validate::weekday("weekday", req.weekday, &mut v);
        let start = validate::time("start_time", &req.start_time, &mut v);
        let end = validate::time("end_time", &req.end_time, &mut v);
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            v.add("end_time", "must be after start_time");
        }
        v.into_result()?;
        let (Some(weekday), Some(start), Some(end)) = (weekday, start, end) else {
            return Err(Error::invalid("weekday", "invalid").into());
        };
        let asked = Window { start, end };
        let conflicts: Vec<_> = self
            .bookings(req.room_id, weekday)
            .await?
            .into_iter()
            .filter(|b| b.window.overlaps(&asked))
            .map(|b| b.message)
            .collect();
        Ok(Response::new(pb::CheckRoomConflictResponse { has_conflict: !conflicts.is_empty(), conflicts }))
    }

    async fn find_free_slots(&self, request: Request<pb::FindFreeSlotsRequest>) -> Reply<pb::FindFreeSlotsResponse> {
        let req = request.into_inner();
        let mut v = FieldViolations::default();
        if req.room_id <= 0 {
            v.add("room_id", format!("must be a positive id, got {}", req.room_id));
        }
        let weekday = validate::weekday("weekday", req.weekday, &mut v);
        if !(1..=1440).contains(&req.duration_minutes) {
            v.add("duration_minutes", format!("must be 1..=1440, got {}", req.duration_minutes));
        }
        let or_default = |raw: &str, d: &str| if raw.trim().is_empty() { d.to_owned() } else { raw.to_owned() };
        let day_start = validate::time("day_start", &or_default(&req.day_start, "08:00"), &mut v);
        let day_end = validate::time("day_end", &or_default(&req.day_end, "18:00"), &mut v);
        if let (Some(s), Some(e)) = (day_start, day_end)
            && e <= s
        {
            v.add("day_end", "must be after day_start");
        }
        v.into_result()?;
        let (Some(weekday), Some(start), Some(end)) = (weekday, day_start, day_end) else {
            return Err(Error::invalid("weekday", "invalid").into());
        };
        let busy: Vec<Window> = self.bookings(req.room_id, weekday).await?.into_iter().map(|b| b.window).collect();
        let slots = slots::free_windows(Window { start, end }, &busy, i64::from(req.duration_minutes))
            .into_iter()
            .map(|w| pb::Slot {
                start_time: w.start.format("%H:%M").to_string(),
                end_time: w.end.format("%H:%M").to_string(),
            })
            .collect();
        Ok(Response::new(pb::FindFreeSlotsResponse { slots }))
    }
}
