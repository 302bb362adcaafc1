//! Reading the event log page by page and resolving a page once (names, rooms, counts) for
//! every watcher, before each watcher redacts it for its caller.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use diesel_async::AsyncPgConnection;
use phoenix_common::time::business_date_in;
use phoenix_common::{Error, Result};
use phoenix_reader_protocol::display_name;

use super::board::{self, RoomTile, Supervision};
use super::cursor::{Cursor, Position};
use super::repo::{self, Counts, EventRow, PupilState, Pupils};
use crate::events::ChangeKind;

/// A pupil as an event shows them to callers with full access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventStudent {
    pub student_id: i64,
    pub display_name: String,
    /// For redaction only; never sent.
    pub group_id: Option<i64>,
    /// Start of the visit an event opened (check-in, transfer).
    pub since: Option<DateTime<Utc>>,
}

/// One event with everything a watcher needs, before redaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub position: Position,
    pub kind: ChangeKind,
    pub occurred_at: DateTime<Utc>,
    pub student: Option<EventStudent>,
    pub session_id: Option<i64>,
    pub room_id: Option<i64>,
    pub room_name: String,
    /// Pupils in the room's running session (0 without one); `None` for an unknown room.
    /// On the hub's pages ([`Counting::States`]) set by the hub from its tally.
    pub room_student_count: Option<i64>,
    pub from_room_id: Option<i64>,
    pub from_room_name: String,
    pub from_room_student_count: Option<i64>,
    /// Session start and supervisor changes: the room tile (when the session still runs).
    pub tile: Option<RoomTile>,
}

impl Resolved {
    /// A session started, ended or changed supervisors.
    pub fn changes_sessions(&self) -> bool {
        is_session_kind(self.kind)
    }
}

fn is_session_kind(kind: ChangeKind) -> bool {
    matches!(kind, ChangeKind::SessionStarted | ChangeKind::SessionEnded | ChangeKind::SupervisorsChanged)
}

/// Where the counts of a page come from.
#[derive(Debug, Clone, Copy)]
pub enum Counting {
    /// The school-wide counts, counted in the page's snapshot when it is resolved (a watcher's
    /// backlog).
    Query,
    /// The states on `date` of the pupils the page's events changed, or of every pupil
    /// (`all`), for the hub's [`Tally`](super::tally::Tally).
    States { date: NaiveDate, all: bool },
    /// No counts (the hub's pages while nobody watches).
    None,
}

/// What to do besides reading rows.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub limit: i64,
    /// Resolve names, rooms and counts (skipped by the hub while nobody watches).
    pub resolve: bool,
    pub counting: Counting,
    /// Reload who supervises what when the page has session events (the hub).
    pub supervision: bool,
    /// Fail with CURSOR_EXPIRED when the log was purged past the cursor, and reject cursors
    /// ahead of the database (a client's cursor).
    pub check_cursor: bool,
    pub timezone: chrono_tz::Tz,
}

/// One page of the log after a cursor.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub events: Vec<Resolved>,
    /// Every event up to here has been read: the last event's position, or the horizon
    /// when the page reached it.
    pub upto: Position,
    /// More events may follow below the horizon.
    pub full: bool,
    /// Ids of the events read (also when not resolved).
    pub ids: Vec<i64>,
    /// School-wide counts ([`Counting::Query`], when resolved and the page has events).
    pub counts: Option<Counts>,
    /// Pupils' states ([`Counting::States`]).
    pub states: Option<States>,
    /// Who supervises what (when asked and the page changed sessions).
    pub supervision: Option<Supervision>,
    pub sessions_changed: bool,
}

/// The pupils' states a page read for the hub's tally.
#[derive(Debug, Clone, Default)]
pub struct States {
    pub date: NaiveDate,
    /// Every active pupil's; otherwise those of `asked` and of the ended sessions.
    pub all: bool,
    /// The pupils read by name (the page's events' and those of later events the snapshot
    /// holds): one without a state is no longer active.
    pub asked: Vec<i64>,
    pub states: Vec<(i64, PupilState)>,
}

/// The reason of an expired cursor.
pub const CURSOR_EXPIRED: &str = "CURSOR_EXPIRED";

/// Reads (and resolves) the next page after `cursor` in one REPEATABLE READ, read-only
/// transaction: the rows, the horizon they are below, their names and the counts or states
/// share one snapshot.
pub async fn read_page(conn: &mut AsyncPgConnection, cursor: &Cursor, options: ReadOptions) -> Result<Page> {
    let cursor = cursor.clone();
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run::<_, Error, _>(async move |conn| {
            if options.check_cursor {
                check_cursor(conn, &cursor).await?;
            }
            let (rows, horizon) = repo::events_after(conn, &cursor, options.limit).await?;
            let full = rows.len() as i64 >= options.limit;
            let last = rows.last().map(EventRow::position);
            let upto = match (last, full) {
                (Some(p), true) => p,
                (last, false) => last.unwrap_or_default().max(Position::horizon(horizon)),
                (None, true) => Position::horizon(horizon),
            };
            let sessions_changed = rows.iter().any(|r| ChangeKind::parse(&r.kind).is_some_and(is_session_kind));
            let supervision = if options.supervision && sessions_changed {
                Some(Supervision::from_rows(&repo::supervision(conn, None).await?))
            } else {
                None
            };
            let states = match options.counting {
                Counting::States { date, all } => Some(read_states(conn, &rows, date, all, upto).await?),
                Counting::Query | Counting::None => None,
            };
            let ids = rows.iter().map(|r| r.id).collect();
            let (events, counts) = if options.resolve && !rows.is_empty() {
                let count_rooms = !matches!(options.counting, Counting::States { .. });
                let events = resolve(conn, &rows, count_rooms).await?;
                let counts = match options.counting {
                    Counting::Query => Some(repo::counts(conn, business_date_in(Utc::now(), options.timezone)).await?),
                    Counting::States { .. } | Counting::None => None,
                };
                (events, counts)
            } else {
                (Vec::new(), None)
            };
            Ok(Page { events, upto, full, ids, counts, states, supervision, sessions_changed })
        })
        .await
}

/// Above this many pupils to read, a page reads every pupil's state instead (the lookups one
/// by one cost more than the hash joins over every pupil from there on).
const LOOKUPS_UP_TO: usize = 1_000;

/// The states on `date` of every pupil (`all`), or of the pupils `rows` name, of every pupil
/// with a visit in a session `rows` ended (ending a session closes its visits), and of the
/// pupils of the events after `upto` the snapshot already holds ([`states_after`]).
async fn read_states(
    conn: &mut AsyncPgConnection,
    rows: &[EventRow],
    date: NaiveDate,
    all: bool,
    upto: Position,
) -> Result<States> {
    if all {
        return every_state(conn, date).await;
    }
    let students = rows.iter().filter_map(|r| r.student_id);
    let ended = rows.iter().filter(|r| r.kind == ChangeKind::SessionEnded.as_str()).filter_map(|r| r.session_id);
    states_after(conn, date, students.collect(), ended.collect(), upto).await
}

/// The states on `date` of `students`, of every pupil with a visit in a session of `ended`,
/// and of the pupils of every event after `after` this snapshot sees. The last part keeps the
/// tally one snapshot's states: a snapshot may hold commits whose events are not read yet
/// (above the horizon, behind an older running transaction, or past the page's limit), and a
/// pupil read here may already be in the state such a commit left (the session ended) while
/// the others of that commit would still be counted in the state before it.
async fn states_after(
    conn: &mut AsyncPgConnection,
    date: NaiveDate,
    mut students: Vec<i64>,
    mut ended: Vec<i64>,
    after: Position,
) -> Result<States> {
    let (later_students, later_ended) = repo::changed_after(conn, after).await?;
    students.extend(later_students);
    ended.extend(later_ended);
    let (asked, ended) = (unique(students.into_iter()), unique(ended.into_iter()));
    if asked.len() > LOOKUPS_UP_TO {
        return every_state(conn, date).await;
    }
    let states = if asked.is_empty() && ended.is_empty() {
        Vec::new()
    } else {
        repo::pupil_states(conn, date, Pupils::Of { students: &asked, sessions: &ended }).await?
    };
    Ok(States { date, all: false, asked, states })
}

async fn every_state(conn: &mut AsyncPgConnection, date: NaiveDate) -> Result<States> {
    let states = repo::pupil_states(conn, date, Pupils::All).await?;
    Ok(States { date, all: true, asked: Vec::new(), states })
}

/// The states on `date` of `students` and of the pupils of every event after `after`, in one
/// REPEATABLE READ snapshot (the hub's pupils to read again after a recount on the side).
pub async fn read_states_after(
    conn: &mut AsyncPgConnection,
    date: NaiveDate,
    students: Vec<i64>,
    after: Position,
) -> Result<States> {
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run::<_, Error, _>(async move |conn| states_after(conn, date, students, Vec::new(), after).await)
        .await
}

async fn check_cursor(conn: &mut AsyncPgConnection, cursor: &Cursor) -> Result<()> {
    let (now, _) = repo::snapshot(conn).await?;
    if cursor.highest_tx() > now.xmax {
        return Err(Error::invalid("cursor", "the cursor is not a position of this event log"));
    }
    let purged = repo::purged_up_to(conn).await?;
    if purged > cursor.after {
        return Err(Error::precondition(
            CURSOR_EXPIRED,
            "the event log no longer holds the changes after this cursor; reload the board and watch from its cursor",
        ));
    }
    Ok(())
}

/// Names, visit starts, room names and counts, and session tiles for `rows`: at most four
/// queries for the whole page.
async fn resolve(conn: &mut AsyncPgConnection, rows: &[EventRow], count_rooms: bool) -> Result<Vec<Resolved>> {
    let students: Vec<i64> = unique(rows.iter().filter_map(|r| r.student_id));
    let names: HashMap<i64, repo::StudentRow> = if students.is_empty() {
        HashMap::new()
    } else {
        repo::students(conn, &students).await?.into_iter().map(|s| (s.id, s)).collect()
    };
    let entering = |r: &&EventRow| matches!(r.kind.as_str(), "checked_in" | "transferred");
    let visit_students: Vec<i64> = unique(rows.iter().filter(entering).filter_map(|r| r.student_id));
    let visit_sessions: Vec<i64> = unique(rows.iter().filter(entering).filter_map(|r| r.session_id));
    let starts: HashMap<(i64, i64), DateTime<Utc>> = if visit_students.is_empty() {
        HashMap::new()
    } else {
        repo::visit_starts(conn, &visit_students, &visit_sessions)
            .await?
            .into_iter()
            .map(|v| ((v.student_id, v.session_id), v.entry_time))
            .collect()
    };
    let room_ids: Vec<i64> = unique(rows.iter().flat_map(|r| [r.room_id, r.from_room_id]).flatten());
    // Without `count_rooms` the names only: the hub counts from its tally (0 stands in).
    let rooms: HashMap<i64, repo::RoomCountRow> = if room_ids.is_empty() {
        HashMap::new()
    } else if count_rooms {
        repo::room_counts(conn, &room_ids).await?.into_iter().map(|r| (r.id, r)).collect()
    } else {
        let names = repo::room_names(conn, &room_ids).await?;
        names.into_iter().map(|r| (r.id, repo::RoomCountRow { id: r.id, name: r.name, student_count: 0 })).collect()
    };
    let tile_sessions: Vec<i64> = unique(
        rows.iter()
            .filter(|r| matches!(r.kind.as_str(), "session_started" | "supervisors_changed"))
            .filter_map(|r| r.session_id),
    );
    let tiles: HashMap<i64, RoomTile> = if tile_sessions.is_empty() {
        HashMap::new()
    } else {
        board::tiles(conn, Some(&tile_sessions)).await?.into_iter().map(|t| (t.session_id, t)).collect()
    };

    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(kind) = ChangeKind::parse(&r.kind) else {
            // The CHECK constraint makes this unreachable; skip rather than stop the stream.
            tracing::warn!(event = r.id, "presence event of an unknown kind skipped");
            continue;
        };
        let student = r.student_id.and_then(|id| names.get(&id)).map(|s| EventStudent {
            student_id: s.id,
            display_name: display_name(&s.first_name, &s.last_name),
            group_id: s.group_id,
            since: r
                .session_id
                .and_then(|session| starts.get(&(s.id, session)).copied())
                .filter(|_| matches!(kind, ChangeKind::CheckedIn | ChangeKind::Transferred)),
        });
        let room = |id: Option<i64>| id.and_then(|id| rooms.get(&id));
        out.push(Resolved {
            position: r.position(),
            kind,
            occurred_at: r.occurred_at,
            student,
            session_id: r.session_id,
            room_id: r.room_id,
            room_name: room(r.room_id).map(|x| x.name.clone()).unwrap_or_default(),
            room_student_count: room(r.room_id).map(|x| x.student_count),
            from_room_id: r.from_room_id,
            from_room_name: room(r.from_room_id).map(|x| x.name.clone()).unwrap_or_default(),
            from_room_student_count: room(r.from_room_id).map(|x| x.student_count),
            tile: match kind {
                ChangeKind::SessionStarted | ChangeKind::SupervisorsChanged => {
                    r.session_id.and_then(|s| tiles.get(&s).cloned())
                }
                _ => None,
            },
        });
    }
    Ok(out)
}

fn unique(ids: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(*id)).collect()
}
