//! Class schedules (an education group and/or an activity in a room on a weekday in a
//! timeframe) and the weekly bookings of a room they share with activities' schedules.

use chrono::{DateTime, NaiveTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use phoenix_common::db::DbPool;
use phoenix_common::page::Page;
use phoenix_common::time::BUSINESS_TZ;
use phoenix_common::validate::{collect, mask_paths};
use phoenix_common::{Error, FieldViolations};
use phoenix_proto::schedule::v1 as pb;

use crate::repo::{self, ClassScheduleFilter, ClassScheduleRow, ClassScheduleValues};
use crate::slots::Window;
use crate::validate;

/// Failed-precondition reason: the room is booked at an overlapping time on that weekday.
pub const ROOM_CONFLICT: &str = "ROOM_CONFLICT";

/// Fields `UpdateClassSchedule` may change.
const FIELDS: &[&str] = &["education_group_id", "activity_id", "room_id", "weekday", "timeframe_id", "description"];
/// Fields whose change moves the schedule in the room plan (and so is conflict-checked).
const PLACEMENT: &[&str] = &["activity_id", "room_id", "weekday", "timeframe_id"];

const MAX_DESCRIPTION: usize = 1000;

fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

/// A weekly booking of a room.
#[derive(Debug, Clone)]
pub(crate) struct Booking {
    /// As the API shows it.
    pub(crate) message: pb::RoomBooking,
    /// The local window it occupies.
    pub(crate) window: Window,
}

impl Booking {
    fn describe(&self) -> String {
        let b = &self.message;
        let time = format!("{}–{}", b.start_time, b.end_time);
        if b.class_schedule_id != 0 {
            let who: Vec<String> = [
                (b.education_group_id != 0).then(|| format!("education group {}", b.education_group_id)),
                (b.activity_id != 0).then(|| format!("activity {}", b.activity_id)),
            ]
            .into_iter()
            .flatten()
            .collect();
            format!("class schedule {} ({}) {time}", b.class_schedule_id, who.join(", "))
        } else {
            format!("weekly schedule {} of activity {} {time}", b.activity_schedule_id, b.activity_id)
        }
    }
}

/// Every weekly booking of a room on a weekday, by start: class schedules in it, and the
/// weekly schedules (with a timeframe) of activities planned in it. An activity timeframe
/// without an end blocks the rest of the day (better no slot than a double booking).
pub(crate) async fn bookings(conn: &mut AsyncPgConnection, room_id: i64, weekday: i16) -> Result<Vec<Booking>, Error> {
    let local = |t: DateTime<Utc>| t.with_timezone(&BUSINESS_TZ).time();
    let end_of_day = NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN);
    let mut out: Vec<Booking> = repo::activity_bookings(conn, room_id, weekday)
        .await?
        .into_iter()
        .map(|(schedule_id, activity_id, name, start, end)| {
            let window = Window { start: local(start), end: end.map(local).unwrap_or(end_of_day) };
            let message = pb::RoomBooking {
                activity_id,
                activity_name: name,
                start_time: hhmm(window.start),
                end_time: hhmm(window.end),
                activity_schedule_id: schedule_id,
                ..Default::default()
            };
            Booking { message, window }
        })
        .collect();
    for (row, group_name, activity_name) in repo::class_bookings(conn, room_id, weekday).await? {
        let window = Window { start: row.start_time, end: row.end_time };
        let message = pb::RoomBooking {
            activity_id: row.activity_id.unwrap_or(0),
            activity_name: activity_name.unwrap_or_default(),
            start_time: hhmm(window.start),
            end_time: hhmm(window.end),
            class_schedule_id: row.id,
            activity_schedule_id: 0,
            education_group_id: row.group_id.unwrap_or(0),
            education_group_name: group_name.unwrap_or_default(),
        };
        out.push(Booking { message, window });
    }
    out.sort_by_key(|b| (b.window, b.message.class_schedule_id, b.message.activity_schedule_id));
    Ok(out)
}

pub(crate) fn message(row: ClassScheduleRow) -> pb::ClassSchedule {
    pb::ClassSchedule {
        id: row.id,
        education_group_id: row.group_id.unwrap_or(0),
        activity_id: row.activity_id.unwrap_or(0),
        room_id: row.room_id.unwrap_or(0),
        weekday: i32::from(row.weekday),
        timeframe_id: row.timeframe_id.unwrap_or(0),
        start_time: hhmm(row.start_time),
        end_time: hhmm(row.end_time),
        description: row.description.unwrap_or_default(),
    }
}

fn optional_id(field: &str, raw: i64, v: &mut FieldViolations) -> Option<i64> {
    if raw < 0 {
        v.add(field, format!("must be a positive id or 0 for none, got {raw}"));
    }
    (raw > 0).then_some(raw)
}

fn required_id(field: &str, raw: i64, v: &mut FieldViolations) -> i64 {
    if raw <= 0 {
        v.add(field, format!("is required: a positive id, got {raw}"));
    }
    raw
}

/// A class schedule being written: the stored values (or defaults), the masked request
/// fields applied on top, and which paths the request set.
struct Draft {
    values: ClassScheduleValues,
    paths: Vec<&'static str>,
}

impl Draft {
    /// Applies `paths` of `c` to `values`, collecting violations.
    /// `merged`: `values` are the final values (not a blank for validating the fields alone),
    /// so the rule "a group, an activity or both" applies.
    fn new(
        mut values: ClassScheduleValues,
        c: &pb::ClassSchedule,
        paths: Vec<&'static str>,
        merged: bool,
        v: &mut FieldViolations,
    ) -> Self {
        for path in &paths {
            match *path {
                "education_group_id" => {
                    values.group_id = optional_id("class_schedule.education_group_id", c.education_group_id, v);
                }
                "activity_id" => values.activity_id = optional_id("class_schedule.activity_id", c.activity_id, v),
                "room_id" => values.room_id = Some(required_id("class_schedule.room_id", c.room_id, v)),
                "weekday" => {
                    values.weekday = validate::weekday("class_schedule.weekday", c.weekday, v).map_or(0, i16::from);
                }
                "timeframe_id" => {
                    values.timeframe_id = Some(required_id("class_schedule.timeframe_id", c.timeframe_id, v));
                }
                "description" => {
                    let d = c.description.trim();
                    if d.chars().count() > MAX_DESCRIPTION {
                        v.add("class_schedule.description", format!("must be at most {MAX_DESCRIPTION} characters"));
                    }
                    values.description = (!d.is_empty()).then(|| d.to_owned());
                }
                _ => {}
            }
        }
        let ids_named = v.iter().any(|(f, _)| f.ends_with(".education_group_id") || f.ends_with(".activity_id"));
        if merged && !ids_named && values.group_id.is_none() && values.activity_id.is_none() {
            for f in ["class_schedule.education_group_id", "class_schedule.activity_id"] {
                v.add(f, "set education_group_id, activity_id or both");
            }
        }
        Self { values, paths }
    }

    fn sets(&self, path: &str) -> bool {
        self.paths.contains(&path)
    }

    /// Checks the rows the request names (`InvalidArgument` naming the field when one is
    /// missing) and copies the timeframe's local window.
    async fn resolve(&mut self, conn: &mut AsyncPgConnection) -> Result<(), Error> {
        let mut v = FieldViolations::default();
        if self.sets("education_group_id")
            && let Some(g) = self.values.group_id
            && !repo::exists(conn, "education.groups", g).await?
        {
            v.add("class_schedule.education_group_id", format!("education group {g} does not exist"));
        }
        if self.sets("activity_id")
            && let Some(a) = self.values.activity_id
            && !repo::exists(conn, "activities.activities", a).await?
        {
            v.add("class_schedule.activity_id", format!("activity {a} does not exist"));
        }
        if self.sets("room_id")
            && let Some(r) = self.values.room_id
            && !repo::room_exists(conn, r).await?
        {
            v.add("class_schedule.room_id", format!("room {r} does not exist"));
        }
        if self.sets("timeframe_id")
            && let Some(t) = self.values.timeframe_id
        {
            let field = "class_schedule.timeframe_id";
            match repo::find_timeframe(conn, t).await? {
                None => v.add(field, format!("timeframe {t} does not exist")),
                Some(tf) => match tf.end_time {
                    None => v.add(field, format!("timeframe {t} has no end time")),
                    Some(end) => {
                        let (s, e) = (tf.start_time.with_timezone(&BUSINESS_TZ), end.with_timezone(&BUSINESS_TZ));
                        if s.date_naive() != e.date_naive() || e.time() <= s.time() {
                            v.add(field, format!("timeframe {t} must start and end on the same local day"));
                        } else {
                            (self.values.start_time, self.values.end_time) = (s.time(), e.time());
                        }
                    }
                },
            }
        }
        v.into_result()
    }

    /// `AlreadyExists` for the group's second schedule at the same weekday and start;
    /// `ROOM_CONFLICT` when the room is booked at an overlapping time (checked only when the
    /// schedule moves: a booking added later by an activity must not block editing a text).
    async fn check_conflicts(&self, conn: &mut AsyncPgConnection, id: i64) -> Result<(), Error> {
        let s = &self.values;
        if let Some(g) = s.group_id
            && let Some(other) = repo::group_slot_taken(conn, g, s.weekday, s.start_time, id).await?
        {
            return Err(Error::AlreadyExists(format!(
                "education group {g} already has class schedule {other} on weekday {} at {}",
                s.weekday,
                hhmm(s.start_time)
            )));
        }
        let Some(room) = s.room_id else { return Ok(()) };
        if !PLACEMENT.iter().any(|p| self.sets(p)) {
            return Ok(());
        }
        repo::lock_room(conn, room).await?;
        let mine = Window { start: s.start_time, end: s.end_time };
        let clash = bookings(conn, room, s.weekday).await?.into_iter().find(|b| {
            let m = &b.message;
            let itself = m.class_schedule_id == id && id != 0;
            // The same activity's own weekly schedule describes the same hours, not a rival.
            let own_activity = m.class_schedule_id == 0 && s.activity_id == Some(m.activity_id);
            !itself && !own_activity && b.window.overlaps(&mine)
        });
        match clash {
            Some(b) => Err(Error::precondition(
                ROOM_CONFLICT,
                format!(
                    "room {room} is booked on weekday {} {}–{} by {}",
                    s.weekday,
                    hhmm(s.start_time),
                    hhmm(s.end_time),
                    b.describe()
                ),
            )),
            None => Ok(()),
        }
    }
}

fn empty_values() -> ClassScheduleValues {
    ClassScheduleValues {
        group_id: None,
        activity_id: None,
        room_id: None,
        weekday: 0,
        timeframe_id: None,
        start_time: NaiveTime::MIN,
        end_time: NaiveTime::MIN,
        description: None,
    }
}

fn positive(field: &str, id: i64) -> Result<i64, Error> {
    if id > 0 { Ok(id) } else { Err(Error::invalid(field, format!("must be a positive id, got {id}"))) }
}

pub(crate) async fn create(pool: &DbPool, req: pb::CreateClassScheduleRequest) -> Result<pb::ClassSchedule, Error> {
    let c = req.class_schedule.ok_or_else(|| Error::invalid("class_schedule", "is required"))?;
    let mut v = FieldViolations::default();
    let mut draft = Draft::new(empty_values(), &c, FIELDS.to_vec(), true, &mut v);
    v.into_result()?;
    let mut conn = pool.get().await?;
    let row = conn
        .transaction::<_, Error, _>(async |conn| {
            draft.resolve(conn).await?;
            draft.check_conflicts(conn, 0).await?;
            Ok(repo::insert_class_schedule(conn, &draft.values).await?)
        })
        .await?;
    Ok(message(row))
}

pub(crate) async fn get(pool: &DbPool, id: i64) -> Result<pb::ClassSchedule, Error> {
    let id = positive("id", id)?;
    let mut conn = pool.get().await?;
    let row =
        repo::find_class_schedule(&mut conn, id, false).await?.ok_or_else(|| Error::not_found("class schedule", id))?;
    Ok(message(row))
}

pub(crate) async fn list(
    pool: &DbPool,
    req: pb::ListClassSchedulesRequest,
) -> Result<pb::ListClassSchedulesResponse, Error> {
    let mut v = FieldViolations::default();
    let weekday = match req.weekday {
        0 => None,
        w => validate::weekday("weekday", w, &mut v).map(i16::from),
    };
    let filter = ClassScheduleFilter {
        group_id: optional_id("education_group_id", req.education_group_id, &mut v),
        activity_id: optional_id("activity_id", req.activity_id, &mut v),
        room_id: optional_id("room_id", req.room_id, &mut v),
        weekday,
    };
    let filters = format!("class schedules {filter:?}");
    let page = collect(Page::parse(req.page_size, &req.page_token, &filters), &mut v);
    v.into_result()?;
    let page = page.ok_or_else(|| Error::invalid("page_token", "invalid"))?;
    let mut conn = pool.get().await?;
    let (mut rows, total) = repo::list_class_schedules(&mut conn, filter, page.after, page.fetch_limit()).await?;
    let next_page_token = page.finish(&mut rows, |r| r.id, &filters);
    Ok(pb::ListClassSchedulesResponse {
        class_schedules: rows.into_iter().map(message).collect(),
        next_page_token,
        total_size: i32::try_from(total).unwrap_or(i32::MAX),
    })
}

pub(crate) async fn update(pool: &DbPool, req: pb::UpdateClassScheduleRequest) -> Result<pb::ClassSchedule, Error> {
    let c = req.class_schedule.ok_or_else(|| Error::invalid("class_schedule", "is required"))?;
    let mut v = FieldViolations::default();
    if c.id <= 0 {
        v.add("class_schedule.id", format!("is required: a positive id, got {}", c.id));
    }
    let paths = collect(mask_paths(req.update_mask.as_ref(), FIELDS), &mut v).unwrap_or_default();
    // The fields alone first: bad input is InvalidArgument before any look-up.
    Draft::new(empty_values(), &c, paths.clone(), false, &mut v);
    v.into_result()?;
    let id = c.id;
    let mut conn = pool.get().await?;
    let row = conn
        .transaction::<_, Error, _>(async |conn| {
            let old = repo::find_class_schedule(conn, id, true)
                .await?
                .ok_or_else(|| Error::not_found("class schedule", id))?;
            let mut v = FieldViolations::default();
            let mut draft = Draft::new(old.into(), &c, paths, true, &mut v);
            v.into_result()?;
            draft.resolve(conn).await?;
            draft.check_conflicts(conn, id).await?;
            Ok(repo::update_class_schedule(conn, id, &draft.values).await?)
        })
        .await?;
    Ok(message(row))
}

pub(crate) async fn delete(pool: &DbPool, id: i64) -> Result<(), Error> {
    let id = positive("id", id)?;
    let mut conn = pool.get().await?;
    conn.transaction::<_, Error, _>(async |conn| {
        if !repo::delete_class_schedule(conn, id).await? {
            return Err(Error::not_found("class schedule", id));
        }
        Ok(())
    })
    .await
}
