//! Aggregates without personal data: today's counts, and a room's utilisation over a range
//! of business days (at most [`crate::validate::MAX_RANGE_DAYS`]).

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use diesel::sql_types::{BigInt, Date, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::convert::format_date;
use phoenix_common::{Error, Result};
use phoenix_proto::active::v1 as pb;

use crate::validate::RoomUtilization;
use crate::{calendar, repo};

#[derive(diesel::QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    running: i64,
    #[diesel(sql_type = BigInt)]
    unclaimed: i64,
    #[diesel(sql_type = BigInt)]
    visits_today: i64,
    #[diesel(sql_type = BigInt)]
    open_visits: i64,
    #[diesel(sql_type = BigInt)]
    present: i64,
    #[diesel(sql_type = BigInt)]
    gone_home: i64,
}

/// `GetActivityCounts` for business day `today` in `tz`.
pub async fn counts(conn: &mut AsyncPgConnection, today: NaiveDate, tz: Tz) -> Result<pb::GetActivityCountsResponse> {
    let (from, to) = calendar::days(today, today, tz);
    let c: Counts = diesel::sql_query(
        "SELECT \
           (SELECT count(*) FROM active.groups WHERE end_time IS NULL) AS running, \
           (SELECT count(*) FROM active.groups g WHERE g.end_time IS NULL AND NOT EXISTS ( \
              SELECT 1 FROM active.group_supervisors s \
              WHERE s.active_group_id = g.id AND s.end_date IS NULL)) AS unclaimed, \
           (SELECT count(*) FROM active.visits WHERE entry_time >= $1 AND entry_time < $2) AS visits_today, \
           (SELECT count(*) FROM active.visits WHERE exit_time IS NULL) AS open_visits, \
           (SELECT count(*) FROM active.attendance WHERE date = $3 AND check_out_time IS NULL) AS present, \
           (SELECT count(*) FROM active.attendance WHERE date = $3 AND check_out_time IS NOT NULL) AS gone_home",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Date, _>(today)
    .get_result(conn)
    .await?;
    Ok(pb::GetActivityCountsResponse {
        running_session_count: c.running,
        unclaimed_session_count: c.unclaimed,
        visits_today_count: c.visits_today,
        open_visit_count: c.open_visits,
        present_pupil_count: c.present,
        gone_home_pupil_count: c.gone_home,
    })
}

#[derive(diesel::QueryableByName)]
struct Utilization {
    #[diesel(sql_type = BigInt)]
    sessions: i64,
    #[diesel(sql_type = BigInt)]
    session_minutes: i64,
    #[diesel(sql_type = BigInt)]
    visits: i64,
    #[diesel(sql_type = BigInt)]
    peak: i64,
}

/// `GetRoomUtilization`: sessions overlapping the range (minutes clipped to it, running
/// sessions up to `now`), visits begun in it, and the most pupils in the room at once (a
/// sweep over entries and exits; an exit at the same instant as an entry counts first).
pub async fn room_utilization(
    conn: &mut AsyncPgConnection,
    cmd: RoomUtilization,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<pb::GetRoomUtilizationResponse> {
    let RoomUtilization { room_id, first, last } = cmd;
    let (name, capacity) = repo::room(conn, room_id).await?.ok_or_else(|| Error::not_found("room", room_id))?;
    let (from, to) = calendar::days(first, last, tz);
    let u: Utilization = diesel::sql_query(
        "WITH s AS ( \
           SELECT greatest(start_time, $2) AS a, least(coalesce(end_time, $4), $3) AS b \
           FROM active.groups \
           WHERE room_id = $1 AND start_time < $3 AND coalesce(end_time, 'infinity') > $2), \
         v AS ( \
           SELECT greatest(v.entry_time, $2) AS a, least(coalesce(v.exit_time, $4), $3) AS b, \
                  v.entry_time >= $2 AS begun \
           FROM active.visits v JOIN active.groups g ON g.id = v.active_group_id \
           WHERE g.room_id = $1 AND v.entry_time < $3 AND coalesce(v.exit_time, 'infinity') > $2), \
         ev AS ( \
           SELECT a AS t, 1 AS d FROM v WHERE b > a \
           UNION ALL SELECT b AS t, -1 AS d FROM v WHERE b > a) \
         SELECT \
           (SELECT count(*) FROM s) AS sessions, \
           (SELECT coalesce(sum(floor(extract(epoch FROM greatest(b - a, interval '0')) / 60)), 0)::bigint \
              FROM s) AS session_minutes, \
           (SELECT count(*) FROM v WHERE begun) AS visits, \
           (SELECT coalesce(max(run), 0)::bigint FROM ( \
              SELECT sum(d) OVER (ORDER BY t, d ROWS UNBOUNDED PRECEDING) AS run FROM ev) r) AS peak",
    )
    .bind::<BigInt, _>(room_id)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Timestamptz, _>(now)
    .get_result(conn)
    .await?;
    Ok(pb::GetRoomUtilizationResponse {
        room_id,
        room_name: name,
        start_date: format_date(first),
        end_date: format_date(last),
        session_count: u.sessions,
        session_minutes: u.session_minutes,
        visit_count: u.visits,
        peak_pupil_count: u.peak,
        capacity,
    })
}
