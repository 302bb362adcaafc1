//! Set-based reads of the presence board and the event log (a handful of queries whatever
//! the school's size, never one per room or pupil), and the log's purge. No proto types. Each
//! statement is prepared once per connection ([`prepared`]): the hub runs them for every page.
//!
//! Reads of other schemas (`users`, `facilities`, `activities`, `education`) are joins, as
//! api.md allows; nothing outside `active` is written.

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Date, Int4, Nullable, SmallInt, Text, Timestamptz};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::db::prepared;

use super::cursor::{Cursor, Position, Snapshot};

type QueryResult<T> = diesel::QueryResult<T>;

// ---------------------------------------------------------------------------------------------
// Snapshot and event log

#[derive(QueryableByName)]
struct SnapshotRow {
    #[diesel(sql_type = Text)]
    snapshot: String,
    #[diesel(sql_type = Timestamptz)]
    now: DateTime<Utc>,
}

/// The current statement's snapshot (the transaction's, under REPEATABLE READ) and `now()`.
pub async fn snapshot(conn: &mut AsyncPgConnection) -> QueryResult<(Snapshot, DateTime<Utc>)> {
    let row: SnapshotRow =
        prepared("SELECT pg_current_snapshot()::text AS snapshot, now() AS now").get_result(conn).await?;
    let snapshot = Snapshot::parse(&row.snapshot).ok_or_else(|| {
        diesel::result::Error::DeserializationError(format!("unexpected pg_snapshot {:?}", row.snapshot).into())
    })?;
    Ok((snapshot, row.now))
}

/// One row of `active.presence_events`.
#[derive(Debug, Clone, QueryableByName)]
pub struct EventRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub tx_id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub occurred_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub student_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub session_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub room_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub from_room_id: Option<i64>,
}

impl EventRow {
    /// Its stream position.
    pub fn position(&self) -> Position {
        Position::new(self.tx_id, self.id)
    }
}

/// Up to `limit` events not covered by `cursor`, in stream order, below the horizon of the
/// statement's snapshot — plus that horizon. Run both in one REPEATABLE READ transaction
/// (or accept a horizon from a later snapshot than the rows').
pub async fn events_after(
    conn: &mut AsyncPgConnection,
    cursor: &Cursor,
    limit: i64,
) -> QueryResult<(Vec<EventRow>, i64)> {
    #[derive(QueryableByName)]
    struct Horizon {
        #[diesel(sql_type = BigInt)]
        horizon: i64,
    }
    let horizon: Horizon =
        prepared("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon").get_result(conn).await?;
    let (xmax, xip) = match cursor.pending() {
        Some((xmax, xip)) => (Some(xmax), xip.to_vec()),
        None => (None, Vec::new()),
    };
    // Row comparison on the unique (tx_id, id) index; a snapshot cursor only misses the
    // transactions it did not see (running ones and those from xmax on).
    let rows = prepared(
        "SELECT id, tx_id, occurred_at, kind, student_id, session_id, room_id, from_room_id \
         FROM active.presence_events \
         WHERE (tx_id, id) > ($1, $2) AND tx_id < $3 \
           AND ($4::bigint IS NULL OR tx_id >= $4 OR tx_id = ANY($5)) \
         ORDER BY tx_id, id LIMIT $6",
    )
    .bind::<BigInt, _>(cursor.after.tx)
    .bind::<BigInt, _>(cursor.after.id)
    .bind::<BigInt, _>(horizon.horizon)
    .bind::<Nullable<BigInt>, _>(xmax)
    .bind::<Array<BigInt>, _>(xip)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok((rows, horizon.horizon))
}

/// The pupils and the ended sessions of every event after `after` that this snapshot sees:
/// commits it holds whose events a page has not read yet (above its horizon, behind an older
/// running transaction, or past its limit).
pub async fn changed_after(conn: &mut AsyncPgConnection, after: Position) -> QueryResult<(Vec<i64>, Vec<i64>)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Array<BigInt>)]
        students: Vec<i64>,
        #[diesel(sql_type = Array<BigInt>)]
        sessions: Vec<i64>,
    }
    let row: Row = prepared(
        "SELECT coalesce(array_agg(DISTINCT student_id) FILTER (WHERE student_id IS NOT NULL), '{}') AS students, \
                coalesce(array_agg(DISTINCT session_id) \
                    FILTER (WHERE kind = 'session_ended' AND session_id IS NOT NULL), '{}') AS sessions \
         FROM active.presence_events WHERE (tx_id, id) > ($1, $2)",
    )
    .bind::<BigInt, _>(after.tx)
    .bind::<BigInt, _>(after.id)
    .get_result(conn)
    .await?;
    Ok((row.students, row.sessions))
}

/// The last purged position (`(0, 0)` before the first purge).
pub async fn purged_up_to(conn: &mut AsyncPgConnection) -> QueryResult<Position> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        tx_id: i64,
        #[diesel(sql_type = BigInt)]
        event_id: i64,
    }
    let rows: Vec<Row> =
        prepared("SELECT tx_id, event_id FROM active.presence_log_purge WHERE id = 1").load(conn).await?;
    Ok(rows.into_iter().next().map_or(Position::new(0, 0), |r| Position::new(r.tx_id, r.event_id)))
}

/// Deletes the prefix of the log (in stream order) up to the newest event that occurred
/// before `cutoff` and records the position. Call inside a transaction holding the purge
/// lock. Returns the number of deleted events.
pub async fn purge_before(conn: &mut AsyncPgConnection, cutoff: DateTime<Utc>) -> QueryResult<usize> {
    #[derive(QueryableByName)]
    struct Last {
        #[diesel(sql_type = BigInt)]
        tx_id: i64,
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let last: Option<Last> = prepared(
        "SELECT tx_id, id FROM active.presence_events \
         WHERE occurred_at < $1 AND tx_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint \
         ORDER BY tx_id DESC, id DESC LIMIT 1",
    )
    .bind::<Timestamptz, _>(cutoff)
    .get_result(conn)
    .await
    .optional()?;
    let Some(last) = last else { return Ok(0) };
    let deleted = prepared("DELETE FROM active.presence_events WHERE (tx_id, id) <= ($1, $2)")
        .bind::<BigInt, _>(last.tx_id)
        .bind::<BigInt, _>(last.id)
        .execute(conn)
        .await?;
    prepared(
        "UPDATE active.presence_log_purge SET tx_id = $1, event_id = $2, purged_at = now(), deleted = $3 \
         WHERE id = 1 AND (tx_id, event_id) < ($1, $2)",
    )
    .bind::<BigInt, _>(last.tx_id)
    .bind::<BigInt, _>(last.id)
    .bind::<BigInt, _>(deleted as i64)
    .execute(conn)
    .await?;
    Ok(deleted)
}

/// Takes the purge's transaction-scoped advisory lock if free (one replica purges).
pub async fn try_purge_lock(conn: &mut AsyncPgConnection) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = Bool)]
        locked: bool,
    }
    let row: Locked = prepared("SELECT pg_try_advisory_xact_lock(hashtext('phoenix.active.presence_purge')) AS locked")
        .get_result(conn)
        .await?;
    Ok(row.locked)
}

// ---------------------------------------------------------------------------------------------
// Board

/// A running session with its room, names and open-visit count.
#[derive(Debug, Clone, QueryableByName)]
pub struct RoomRow {
    #[diesel(sql_type = BigInt)]
    pub session_id: i64,
    #[diesel(sql_type = BigInt)]
    pub room_id: i64,
    #[diesel(sql_type = Text)]
    pub room_name: String,
    #[diesel(sql_type = Nullable<Int4>)]
    pub capacity: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub activity_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub activity_name: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub education_group_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub education_group_name: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub student_count: i64,
}

/// Running sessions (all, or those of `sessions`), with their rooms.
pub async fn running_rooms(conn: &mut AsyncPgConnection, sessions: Option<&[i64]>) -> QueryResult<Vec<RoomRow>> {
    prepared(
        "SELECT g.id AS session_id, g.room_id, r.name AS room_name, r.capacity, g.activity_id, \
                a.name AS activity_name, g.education_group_id, eg.name AS education_group_name, \
                (SELECT count(*) FROM active.visits v \
                  WHERE v.active_group_id = g.id AND v.exit_time IS NULL) AS student_count \
         FROM active.groups g \
         JOIN facilities.rooms r ON r.id = g.room_id \
         LEFT JOIN activities.activities a ON a.id = g.activity_id \
         LEFT JOIN education.groups eg ON eg.id = g.education_group_id \
         WHERE g.end_time IS NULL AND ($1::bigint[] IS NULL OR g.id = ANY($1)) \
         ORDER BY r.name, g.id",
    )
    .bind::<Nullable<Array<BigInt>>, _>(sessions.map(<[i64]>::to_vec))
    .load(conn)
    .await
}

/// A current supervisor of a running session, with their name.
#[derive(Debug, Clone, QueryableByName)]
pub struct SupervisorRow {
    #[diesel(sql_type = BigInt)]
    pub session_id: i64,
    #[diesel(sql_type = BigInt)]
    pub staff_id: i64,
    #[diesel(sql_type = Text)]
    pub first_name: String,
    #[diesel(sql_type = Text)]
    pub last_name: String,
}

/// Current supervisors of running sessions (all, or those of `sessions`).
pub async fn supervisors(conn: &mut AsyncPgConnection, sessions: Option<&[i64]>) -> QueryResult<Vec<SupervisorRow>> {
    prepared(
        "SELECT gs.active_group_id AS session_id, gs.staff_id, p.first_name, p.last_name \
         FROM active.group_supervisors gs \
         JOIN active.groups g ON g.id = gs.active_group_id AND g.end_time IS NULL \
         JOIN users.staff s ON s.id = gs.staff_id \
         JOIN users.persons p ON p.id = s.person_id \
         WHERE gs.end_date IS NULL AND ($1::bigint[] IS NULL OR gs.active_group_id = ANY($1)) \
         ORDER BY gs.active_group_id, gs.id",
    )
    .bind::<Nullable<Array<BigInt>>, _>(sessions.map(<[i64]>::to_vec))
    .load(conn)
    .await
}

/// A pupil with an open visit in a running session, with their group (who may see them).
#[derive(Debug, Clone, QueryableByName)]
pub struct RoomStudentRow {
    #[diesel(sql_type = BigInt)]
    pub session_id: i64,
    #[diesel(sql_type = BigInt)]
    pub student_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub group_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub first_name: String,
    #[diesel(sql_type = Text)]
    pub last_name: String,
    #[diesel(sql_type = Timestamptz)]
    pub entry_time: DateTime<Utc>,
}

/// The pupils with an open visit in a running session, by session then name: all of them
/// (`None`: the school-wide board, filtered per caller in memory) or only `students` (a
/// guardian's children).
pub async fn room_students(conn: &mut AsyncPgConnection, students: Option<&[i64]>) -> QueryResult<Vec<RoomStudentRow>> {
    prepared(
        "SELECT v.active_group_id AS session_id, st.id AS student_id, st.group_id, p.first_name, p.last_name, \
                v.entry_time \
         FROM active.visits v \
         JOIN active.groups g ON g.id = v.active_group_id AND g.end_time IS NULL \
         JOIN users.students st ON st.id = v.student_id \
         JOIN users.persons p ON p.id = st.person_id \
         WHERE v.exit_time IS NULL AND ($1::bigint[] IS NULL OR v.student_id = ANY($1)) \
         ORDER BY v.active_group_id, p.first_name, p.last_name, st.id",
    )
    .bind::<Nullable<Array<BigInt>>, _>(students.map(<[i64]>::to_vec))
    .load(conn)
    .await
}

/// School-wide counts (see `PresenceCounts`: one state per active pupil, in the order
/// in_room, sick, gone_home, in_transit, absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName)]
pub struct Counts {
    #[diesel(sql_type = BigInt)]
    pub in_room: i64,
    #[diesel(sql_type = BigInt)]
    pub in_transit: i64,
    #[diesel(sql_type = BigInt)]
    pub absent: i64,
    #[diesel(sql_type = BigInt)]
    pub gone_home: i64,
    #[diesel(sql_type = BigInt)]
    pub sick: i64,
    #[diesel(sql_type = BigInt)]
    pub total: i64,
}

/// A pupil's state as one code (the order of [`PupilState`]): a room wins over sick, sick over
/// the day's attendance (`a`, of business date `$1`). `o` is the pupil's open visit in a
/// running session. The one definition behind [`counts`] and [`pupil_states`], so the counts and
/// the hub's tally of them cannot disagree.
const PUPIL_STATE: &str = "CASE WHEN o.student_id IS NOT NULL THEN 0::int2 WHEN s.sick THEN 1::int2 \
     WHEN a.check_out_time IS NOT NULL THEN 2::int2 WHEN a.id IS NOT NULL THEN 3::int2 ELSE 4::int2 END";

/// The open visits in running sessions, with the session's room (`o` of [`PUPIL_STATE`]).
const OPEN_VISITS: &str = "SELECT v.student_id, g.room_id FROM active.visits v \
     JOIN active.groups g ON g.id = v.active_group_id AND g.end_time IS NULL WHERE v.exit_time IS NULL";

/// Every active pupil's state: hash joins over the three tables.
static EVERY_PUPIL_STATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT s.id, {PUPIL_STATE} AS state, o.room_id FROM users.students s \
         LEFT JOIN active.attendance a ON a.student_id = s.id AND a.date = $1 \
         LEFT JOIN ({OPEN_VISITS}) o ON o.student_id = s.id \
         WHERE s.deactivated_at IS NULL"
    )
});

/// [`counts`]: the states of [`EVERY_PUPIL_STATE`] counted.
static COUNTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT count(*) FILTER (WHERE state = 0) AS in_room, count(*) FILTER (WHERE state = 1) AS sick, \
                count(*) FILTER (WHERE state = 2) AS gone_home, count(*) FILTER (WHERE state = 3) AS in_transit, \
                count(*) FILTER (WHERE state = 4) AS absent, count(*) AS total \
         FROM ({}) p",
        *EVERY_PUPIL_STATE
    )
});

/// A few pupils' states: looked up one by one (the array in an init plan, the open visit
/// LATERAL), never the hash joins over every pupil the planner picks from ~50 ids on.
static FEW_PUPIL_STATES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT s.id, {PUPIL_STATE} AS state, o.room_id FROM users.students s \
         LEFT JOIN active.attendance a ON a.student_id = s.id AND a.date = $1 \
         LEFT JOIN LATERAL ({OPEN_VISITS} AND v.student_id = s.id LIMIT 1) o ON true \
         WHERE s.deactivated_at IS NULL AND s.id = ANY(ARRAY( \
             SELECT unnest($2::int8[]) \
             UNION SELECT v.student_id FROM active.visits v WHERE v.active_group_id = ANY($3)))"
    )
});

/// The states [`PUPIL_STATE`] codes, in the order of their codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PupilState {
    /// In the running session of this room.
    InRoom(i64),
    Sick,
    GoneHome,
    InTransit,
    Absent,
}

impl PupilState {
    fn of(code: i16, room: Option<i64>) -> Option<Self> {
        Some(match code {
            0 => Self::InRoom(room?),
            1 => Self::Sick,
            2 => Self::GoneHome,
            3 => Self::InTransit,
            4 => Self::Absent,
            _ => return None,
        })
    }
}

impl Counts {
    /// Counts one more (`by` = 1) or one fewer (`by` = -1) pupil in `state`.
    pub fn add(&mut self, state: PupilState, by: i64) {
        let n = match state {
            PupilState::InRoom(_) => &mut self.in_room,
            PupilState::Sick => &mut self.sick,
            PupilState::GoneHome => &mut self.gone_home,
            PupilState::InTransit => &mut self.in_transit,
            PupilState::Absent => &mut self.absent,
        };
        *n += by;
        self.total += by;
    }
}

/// The counts for business date `today`.
pub async fn counts(conn: &mut AsyncPgConnection, today: NaiveDate) -> QueryResult<Counts> {
    prepared(&COUNTS).bind::<Date, _>(today).get_result(conn).await
}

#[derive(QueryableByName)]
struct PupilStateRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = SmallInt)]
    state: i16,
    #[diesel(sql_type = Nullable<BigInt>)]
    room_id: Option<i64>,
}

/// Which pupils' states [`pupil_states`] reads.
#[derive(Debug, Clone, Copy)]
pub enum Pupils<'a> {
    All,
    /// The pupils named, and every pupil with a visit in one of the sessions.
    Of {
        students: &'a [i64],
        sessions: &'a [i64],
    },
}

/// The state of each active pupil of `pupils` on business date `today` (a deactivated or
/// erased pupil has none).
pub async fn pupil_states(
    conn: &mut AsyncPgConnection,
    today: NaiveDate,
    pupils: Pupils<'_>,
) -> QueryResult<Vec<(i64, PupilState)>> {
    let rows: Vec<PupilStateRow> = match pupils {
        Pupils::All => prepared(&EVERY_PUPIL_STATE).bind::<Date, _>(today).load(conn).await?,
        Pupils::Of { students, sessions } => {
            prepared(&FEW_PUPIL_STATES)
                .bind::<Date, _>(today)
                .bind::<Array<BigInt>, _>(students.to_vec())
                .bind::<Array<BigInt>, _>(sessions.to_vec())
                .load(conn)
                .await?
        }
    };
    // The CASE yields 0..=4 only, and 0 with the open visit's room.
    Ok(rows.into_iter().filter_map(|r| Some((r.id, PupilState::of(r.state, r.room_id)?))).collect())
}

/// Who supervises which running session: `(staff, session, room)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct SupervisionRow {
    #[diesel(sql_type = BigInt)]
    pub staff_id: i64,
    #[diesel(sql_type = BigInt)]
    pub session_id: i64,
    #[diesel(sql_type = BigInt)]
    pub room_id: i64,
}

/// Running sessions each staff member (or only `staff`) supervises, including every session
/// combined with one they supervise (data-model.md: supervisors of any session of a running
/// combination see all of its sessions).
pub async fn supervision(conn: &mut AsyncPgConnection, staff: Option<i64>) -> QueryResult<Vec<SupervisionRow>> {
    prepared(
        "WITH direct AS ( \
             SELECT gs.staff_id, gs.active_group_id AS session_id \
             FROM active.group_supervisors gs \
             JOIN active.groups g ON g.id = gs.active_group_id AND g.end_time IS NULL \
             WHERE gs.end_date IS NULL AND ($1::bigint IS NULL OR gs.staff_id = $1) \
         ), reach AS ( \
             SELECT staff_id, session_id FROM direct \
             UNION \
             SELECT d.staff_id, m2.active_group_id \
             FROM direct d \
             JOIN active.group_mappings m1 ON m1.active_group_id = d.session_id \
             JOIN active.combined_groups c ON c.id = m1.combined_group_id AND c.end_time IS NULL \
             JOIN active.group_mappings m2 ON m2.combined_group_id = c.id \
         ) \
         SELECT r.staff_id, r.session_id, g.room_id \
         FROM reach r JOIN active.groups g ON g.id = r.session_id AND g.end_time IS NULL \
         ORDER BY r.staff_id, r.session_id",
    )
    .bind::<Nullable<BigInt>, _>(staff)
    .load(conn)
    .await
}

// ---------------------------------------------------------------------------------------------
// Resolving events

/// A pupil's name and group.
#[derive(Debug, Clone, QueryableByName)]
pub struct StudentRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub first_name: String,
    #[diesel(sql_type = Text)]
    pub last_name: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub group_id: Option<i64>,
}

pub async fn students(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<StudentRow>> {
    prepared(
        "SELECT st.id, p.first_name, p.last_name, st.group_id \
         FROM users.students st JOIN users.persons p ON p.id = st.person_id WHERE st.id = ANY($1)",
    )
    .bind::<Array<BigInt>, _>(ids.to_vec())
    .load(conn)
    .await
}

/// The start of each pupil's latest visit in a session.
#[derive(Debug, Clone, QueryableByName)]
pub struct VisitStartRow {
    #[diesel(sql_type = BigInt)]
    pub student_id: i64,
    #[diesel(sql_type = BigInt)]
    pub session_id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub entry_time: DateTime<Utc>,
}

pub async fn visit_starts(
    conn: &mut AsyncPgConnection,
    students: &[i64],
    sessions: &[i64],
) -> QueryResult<Vec<VisitStartRow>> {
    prepared(
        "SELECT DISTINCT ON (student_id, active_group_id) student_id, active_group_id AS session_id, entry_time \
         FROM active.visits WHERE student_id = ANY($1) AND active_group_id = ANY($2) \
         ORDER BY student_id, active_group_id, entry_time DESC",
    )
    .bind::<Array<BigInt>, _>(students.to_vec())
    .bind::<Array<BigInt>, _>(sessions.to_vec())
    .load(conn)
    .await
}

/// A room's name and the pupils in its running session now (0 without one).
#[derive(Debug, Clone, QueryableByName)]
pub struct RoomCountRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub student_count: i64,
}

pub async fn room_counts(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<RoomCountRow>> {
    prepared(
        "SELECT r.id, r.name, \
                (SELECT count(*) FROM active.groups g \
                 JOIN active.visits v ON v.active_group_id = g.id AND v.exit_time IS NULL \
                 WHERE g.room_id = r.id AND g.end_time IS NULL) AS student_count \
         FROM facilities.rooms r WHERE r.id = ANY($1)",
    )
    .bind::<Array<BigInt>, _>(ids.to_vec())
    .load(conn)
    .await
}

/// A room's name.
#[derive(Debug, Clone, QueryableByName)]
pub struct RoomNameRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
}

/// The names of rooms `ids` (the hub takes their pupil counts from its tally).
pub async fn room_names(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<RoomNameRow>> {
    prepared("SELECT r.id, r.name FROM facilities.rooms r WHERE r.id = ANY($1)")
        .bind::<Array<BigInt>, _>(ids.to_vec())
        .load(conn)
        .await
}
