//! Class schedules (an education group and/or an activity in a room on a weekday in a
//! timeframe) and the weekly bookings of a room they share with activities' schedules.

use chrono::{DateTime, NaiveTime, Utc};
use diesel_async::AsyncPgConnection;
use phoenix_common::time::BUSINESS_TZ;
use phoenix_common::validate::Update;
use phoenix_common::{Error, FieldViolations, Result};
use phoenix_proto::schedule::v1 as pb;

use crate::convert::hhmm;
use crate::repo::{self, ClassScheduleRow};
use crate::slots::Window;
use crate::validate::{self, Draft};

/// Failed-precondition reason: the room is booked at an overlapping time on that weekday.
pub const ROOM_CONFLICT: &str = "ROOM_CONFLICT";

/// Fields whose change moves the schedule in the room plan (and so is conflict-checked).
const PLACEMENT: &[&str] = &["activity_id", "room_id", "weekday", "timeframe_id"];

/// A weekly booking of a room.
#[derive(Debug, Clone)]
pub struct Booking {
    /// As the API shows it.
    pub message: pb::RoomBooking,
    /// The local window it occupies.
    pub window: Window,
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
pub async fn bookings(conn: &mut AsyncPgConnection, room_id: i64, weekday: i16) -> Result<Vec<Booking>> {
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

/// Checks the rows the request names (`InvalidArgument` naming the field when one is
/// missing) and copies the timeframe's local window.
async fn resolve(conn: &mut AsyncPgConnection, draft: &mut Draft) -> Result<()> {
    let mut v = FieldViolations::default();
    if draft.sets("education_group_id")
        && let Some(g) = draft.values.group_id
        && !repo::exists(conn, "education.groups", g).await?
    {
        v.add("class_schedule.education_group_id", format!("education group {g} does not exist"));
    }
    if draft.sets("activity_id")
        && let Some(a) = draft.values.activity_id
        && !repo::exists(conn, "activities.activities", a).await?
    {
        v.add("class_schedule.activity_id", format!("activity {a} does not exist"));
    }
    if draft.sets("room_id")
        && let Some(r) = draft.values.room_id
        && !repo::room_exists(conn, r).await?
    {
        v.add("class_schedule.room_id", format!("room {r} does not exist"));
    }
    if draft.sets("timeframe_id")
        && let Some(t) = draft.values.timeframe_id
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
                        (draft.values.start_time, draft.values.end_time) = (s.time(), e.time());
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
async fn check_conflicts(conn: &mut AsyncPgConnection, draft: &Draft, id: i64) -> Result<()> {
    let s = &draft.values;
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
    if !PLACEMENT.iter().any(|p| draft.sets(p)) {
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

/// Every weekly booking of a room on a weekday; `NotFound` for an unknown room.
pub async fn bookings_of_room(conn: &mut AsyncPgConnection, room_id: i64, weekday: u8) -> Result<Vec<Booking>> {
    if !repo::room_exists(conn, room_id).await? {
        return Err(Error::not_found("room", room_id));
    }
    bookings(conn, room_id, i16::from(weekday)).await
}

/// Creates a class schedule: its references resolved, conflicts checked.
pub async fn create(conn: &mut AsyncPgConnection, mut draft: Draft) -> Result<ClassScheduleRow> {
    resolve(conn, &mut draft).await?;
    check_conflicts(conn, &draft, 0).await?;
    repo::insert_class_schedule(conn, &draft.values).await
}

/// Applies a masked update to the stored class schedule (row-locked): the merged values are
/// validated again ("a group, an activity or both"), then resolved and conflict-checked.
pub async fn update(conn: &mut AsyncPgConnection, update: &Update<pb::ClassSchedule>) -> Result<ClassScheduleRow> {
    let id = update.id;
    let old = repo::find_class_schedule(conn, id, true).await?.ok_or_else(|| Error::not_found("class schedule", id))?;
    let mut v = FieldViolations::default();
    let mut draft = validate::draft(old.into(), &update.message, update.paths.clone(), true, &mut v);
    v.into_result()?;
    resolve(conn, &mut draft).await?;
    check_conflicts(conn, &draft, id).await?;
    repo::update_class_schedule(conn, id, &draft.values).await
}
