//! The school's board of one process, kept between changes (docs/presence.md "The board
//! cache"). `GetPresenceBoard` in the school view is served from one school-wide [`School`]
//! — every running room with its supervisors, every pupil in a room with their group, the
//! counts, and every alert the business day can still raise from this data — read in one
//! REPEATABLE READ snapshot and filtered per caller in memory ([`School::board_for`]:
//! [`Access::sees_student`], the stream's rule, then "mine" first, then the alerts the caller
//! may see).
//!
//! **Exact, never stale.** Every call first reads its own snapshot (the caller's access in the
//! same read-only transaction). The cached board is served for it only when no transaction
//! has ended between the two snapshots ([`unchanged`]: every transaction the cached snapshot
//! saw running still runs, every id assigned since is still running), so both snapshots see
//! the same committed data — whatever changed would show: a scan, a rename, a sick flag, a
//! supervisor, a room, a schedule. The response carries the call's snapshot as its cursor
//! (it covers exactly the transactions the cached one does, so watching from it has no gap
//! and no duplicate) and the call's `as_of`. Anything else ending anywhere in the cluster also
//! invalidates it: over-cautious, never wrong.
//!
//! **Time.** The counts depend on the business date, the alerts on the clock. An entry serves
//! only its own business date (both the server's and the alert rules' zone) and its own
//! [`Rules`]. Its alerts are computed once for an instant ahead, [`ALERT_HORIZON`] after its
//! snapshot (at most the last instant of the business day), and it serves calls up to that
//! instant: with the data fixed, time only raises alerts (each at a known instant:
//! [`raised_at`]) and never clears one, so the alerts at any instant `t` until then are
//! exactly those raised by `t`.
//!
//! **One rebuild.** A call the entry does not serve rebuilds it under one lock, in a new
//! snapshot; the calls that waited meanwhile are served that new entry when its snapshot was
//! taken after they started (it then contains everything committed before them). So a burst
//! of calls after a change costs one or two rebuilds, not one each. Memory: one entry.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use diesel_async::AsyncPgConnection;
use phoenix_common::db::{self, DbPool};
use phoenix_common::time::business_date_in;
use phoenix_common::{Error, Result};
use tokio::time::Instant;

use super::alerts::{self, Alert, AlertKind, Rules};
use super::board::{self, Access, Board, BoardStudent, RoomTile};
use super::convert;
use super::cursor::{Cursor, Snapshot};
use super::repo::{self, Counts};
use crate::calendar;

/// How far ahead of its snapshot an entry computes the alerts (and so how long it serves a
/// quiet database): alerts raised later are not in it. Not the whole day: at its last instant
/// every pickup has passed, and reading that many alerts costs a rebuild more than the board.
const ALERT_HORIZON: chrono::Duration = chrono::Duration::seconds(60);

/// The process's cached school board (one entry) and the lock its rebuilds take.
#[derive(Debug, Default)]
pub struct BoardCache {
    school: RwLock<Option<Arc<School>>>,
    build: tokio::sync::Mutex<()>,
}

/// A school-view call after its first read: its snapshot, instant and access.
#[derive(Debug)]
pub struct Call {
    /// When the call started (before its snapshot was read).
    pub started: Instant,
    pub snapshot: Snapshot,
    pub as_of: DateTime<Utc>,
    pub date: NaiveDate,
    pub access: Access,
}

impl BoardCache {
    fn current(&self) -> Option<Arc<School>> {
        self.school.read().ok().and_then(|s| s.clone())
    }

    /// The board of `call`: the cached school board when it is `call`'s (or was read after
    /// `call` started), else rebuilt once.
    pub async fn board(&self, pool: &DbPool, call: Call, tz: Tz, rules: &Rules) -> Result<Board> {
        if let Some(school) = self.current() {
            if school.serves(&call, rules) {
                let cursor = Cursor::from_snapshot(call.snapshot);
                return Ok(school.board_for(&call.access, cursor, call.as_of));
            }
            if school.read_after(&call, rules) {
                return Ok(school.own_board(&call.access));
            }
        }
        let _build = self.build.lock().await;
        if let Some(school) = self.current().filter(|s| s.read_after(&call, rules)) {
            return Ok(school.own_board(&call.access));
        }
        let taken = Instant::now();
        let rules = *rules;
        let mut conn = db::conn(pool).await?;
        let school = conn
            .build_transaction()
            .repeatable_read()
            .read_only()
            .run::<_, Error, _>(async move |conn| School::load(conn, tz, &rules, taken).await)
            .await?;
        let school = Arc::new(school);
        if let Ok(mut entry) = self.school.write() {
            *entry = Some(school.clone());
        }
        Ok(school.own_board(&call.access))
    }
}

/// A pupil in a room, with the group that decides who sees them in full.
#[derive(Debug, Clone)]
struct RoomStudent {
    group_id: Option<i64>,
    student: BoardStudent,
}

/// The school's board at one snapshot, before any caller's filter.
#[derive(Debug)]
pub struct School {
    snapshot: Snapshot,
    as_of: DateTime<Utc>,
    /// The business date of the counts (the server's zone).
    date: NaiveDate,
    rules: Rules,
    /// The business date in the rules' zone, and its last instant: the alerts hold until then.
    alert_date: NaiveDate,
    alerts_until: DateTime<Utc>,
    tiles: Vec<RoomTile>,
    /// Per tile, the room encoded as every caller who sees it alike gets it (encoded on first
    /// use, [`Encoded`]).
    encoded: Vec<Encoded>,
    /// Pupils per session, in the board's order.
    students: HashMap<i64, Vec<RoomStudent>>,
    counts: Counts,
    /// Every alert raised by `alerts_until` with this data.
    alerts: Vec<CachedAlert>,
    /// When its snapshot was about to be read.
    taken: Instant,
}

impl School {
    /// Reads the school's board; call inside a REPEATABLE READ transaction. Five queries.
    pub async fn load(conn: &mut AsyncPgConnection, tz: Tz, rules: &Rules, taken: Instant) -> Result<Self> {
        let (snapshot, as_of) = repo::snapshot(conn).await?;
        let date = business_date_in(as_of, tz);
        let tiles = board::tiles(conn, None).await?;
        let mut students: HashMap<i64, Vec<RoomStudent>> = HashMap::new();
        for p in repo::room_students(conn, None).await? {
            let student = BoardStudent::of(&p);
            students.entry(p.session_id).or_default().push(RoomStudent { group_id: p.group_id, student });
        }
        let counts = repo::counts(conn, date).await?;
        let alert_date = business_date_in(as_of, rules.timezone);
        let end_of_day = last_instant(alert_date, rules.timezone).filter(|t| *t >= as_of).unwrap_or(as_of);
        let alerts_until = end_of_day.min(as_of + ALERT_HORIZON);
        let alerts =
            alerts::school(conn, alerts_until, rules).await?.into_iter().map(|a| CachedAlert::new(a, rules)).collect();
        Ok(Self {
            snapshot,
            as_of,
            date,
            rules: *rules,
            alert_date,
            alerts_until,
            encoded: tiles.iter().map(|_| Encoded::default()).collect(),
            tiles,
            students,
            counts,
            alerts,
            taken,
        })
    }

    /// Whether this is the board of `call`'s snapshot at `call`'s instant.
    fn serves(&self, call: &Call, rules: &Rules) -> bool {
        self.date == call.date
            && self.rules == *rules
            && business_date_in(call.as_of, rules.timezone) == self.alert_date
            && call.as_of <= self.alerts_until
            && unchanged(&self.snapshot, &call.snapshot)
    }

    /// Whether this board was read after `call` started (so holds everything committed
    /// before it), for the same day and rules.
    fn read_after(&self, call: &Call, rules: &Rules) -> bool {
        self.taken >= call.started && self.date == call.date && self.rules == *rules
    }

    /// The board at its own snapshot and instant.
    fn own_board(&self, access: &Access) -> Board {
        self.board_for(access, Cursor::from_snapshot(self.snapshot.clone()), self.as_of)
    }

    /// What `access` sees of this board at `as_of`, with `cursor`.
    pub fn board_for(&self, access: &Access, cursor: Cursor, as_of: DateTime<Utc>) -> Board {
        // Who sees a pupil in full: the stream's rule (an admin, their group's teachers today,
        // the supervisors of their session or room).
        let sees = |tile: &RoomTile, s: &RoomStudent| {
            access.sees_student(s.student.student_id, s.group_id, Some(tile.session_id), [Some(tile.room_id), None])
        };
        let mut rooms: Vec<(bool, Bytes)> = self
            .tiles
            .iter()
            .zip(&self.encoded)
            .map(|(tile, encoded)| {
                let students = self.students.get(&tile.session_id).map_or(&[][..], Vec::as_slice);
                let mine = access.mine(tile.session_id, tile.education_group_id);
                let visible: Vec<&BoardStudent> =
                    students.iter().filter(|s| sees(tile, s)).map(|s| &s.student).collect();
                let shared = match visible.len() {
                    n if n == students.len() => Some(&encoded.all[usize::from(mine)]),
                    0 => Some(&encoded.none[usize::from(mine)]),
                    _ => None,
                };
                let encode = || convert::encoded_room(tile, visible.iter().copied(), mine);
                let room = match shared {
                    Some(slot) => slot.get_or_init(encode).clone(),
                    None => encode(),
                };
                (mine, room)
            })
            .collect();
        // Mine first; the tiles are ordered by room name (a stable sort keeps it).
        rooms.sort_by_key(|(mine, _)| !mine);
        let alerts = self
            .alerts
            .iter()
            .filter(|a| a.raised_at <= as_of && alerts::sees(access, &a.alert))
            .map(|a| a.encoded.get_or_init(|| convert::encoded_alert(&a.alert)).clone())
            .collect();
        Board {
            rooms: rooms.into_iter().map(|(_, room)| room).collect(),
            counts: Some(self.counts),
            cursor,
            as_of,
            date: self.date,
            alerts,
        }
    }
}

/// An alert of the entry, with the instant it is raised and its encoding (on first use).
#[derive(Debug)]
struct CachedAlert {
    alert: Alert,
    raised_at: DateTime<Utc>,
    encoded: OnceLock<Bytes>,
}

impl CachedAlert {
    fn new(alert: Alert, rules: &Rules) -> Self {
        Self { raised_at: raised_at(&alert, rules), alert, encoded: OnceLock::new() }
    }
}

/// One tile's encoded room for the callers who see all its pupils, or none, by `mine` (index
/// 0: not theirs, 1: theirs). A room of which the caller sees only some pupils is encoded
/// per call.
#[derive(Debug, Default)]
struct Encoded {
    all: [OnceLock<Bytes>; 2],
    none: [OnceLock<Bytes>; 2],
}

/// Whether `later` sees exactly the transactions `earlier` saw as ended: no transaction
/// ended in between (each one `earlier` saw running still runs, and every id assigned since
/// is still running). Conservative: a subtransaction id is never listed as running, so one
/// assigned in between counts as a change.
pub fn unchanged(earlier: &Snapshot, later: &Snapshot) -> bool {
    later.xmax >= earlier.xmax
        && earlier.xip.iter().all(|x| later.xip.binary_search(x).is_ok())
        && later.xip.iter().filter(|x| **x >= earlier.xmax).count() as i64 == later.xmax - earlier.xmax
}

/// The instant from which `alert` holds, its data unchanged (alerts.rs `school`: not arrived
/// from the deadline, in transit from `since` + the limit, past pickup from the pickup time
/// + the grace).
pub fn raised_at(alert: &Alert, rules: &Rules) -> DateTime<Utc> {
    match alert.kind {
        AlertKind::NotArrived => alert.since,
        AlertKind::LongInTransit => alert.since + rules.transit_limit,
        AlertKind::PastPickup => alert.since + rules.pickup_grace,
    }
}

/// The last instant (µs, PostgreSQL's precision) of business day `date` in `tz`.
fn last_instant(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    let next = date.checked_add_days(Days::new(1))?;
    let last = calendar::day_start(next, tz) - chrono::Duration::microseconds(1);
    (business_date_in(last, tz) == date).then_some(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_common::access::Caller;
    use phoenix_proto::active::v1 as pb;
    use prost::Message as _;

    fn snap(xmin: i64, xmax: i64, xip: &[i64]) -> Snapshot {
        Snapshot { xmin, xmax, xip: xip.to_vec() }
    }

    #[test]
    fn unchanged_only_while_no_transaction_ended() {
        let cached = snap(10, 20, &[12, 15]);
        assert!(unchanged(&cached, &cached));
        assert!(unchanged(&cached, &snap(10, 23, &[12, 15, 20, 21, 22])), "started since, still running");
        assert!(!unchanged(&cached, &snap(10, 20, &[12])), "15 ended");
        assert!(!unchanged(&cached, &snap(12, 21, &[12, 15])), "20 started and ended");
        assert!(!unchanged(&cached, &snap(10, 23, &[12, 15, 20, 22])), "21 ended");
        assert!(!unchanged(&cached, &snap(10, 19, &[12, 15])), "older than the cached one");
        assert!(unchanged(&snap(20, 20, &[]), &snap(20, 21, &[20])));
        assert!(!unchanged(&snap(20, 20, &[]), &snap(21, 21, &[])));
    }

    fn alert(kind: AlertKind, since: DateTime<Utc>) -> Alert {
        Alert {
            kind,
            student_id: 1,
            group_id: None,
            display_name: "Kind K.".into(),
            since,
            room_id: None,
            room_name: String::new(),
        }
    }

    #[test]
    fn alerts_are_raised_at_their_threshold() {
        let rules = Rules::defaults(chrono_tz::Europe::Berlin);
        let t = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        assert_eq!(raised_at(&alert(AlertKind::NotArrived, t), &rules), t);
        assert_eq!(raised_at(&alert(AlertKind::LongInTransit, t), &rules), t + chrono::Duration::minutes(15));
        assert_eq!(raised_at(&alert(AlertKind::PastPickup, t), &rules), t + chrono::Duration::minutes(15));
    }

    #[test]
    fn a_business_day_ends_just_before_the_next_local_midnight() {
        let tz = chrono_tz::Europe::Berlin;
        // 25 March 2026 (CET): midnight is 23:00 UTC the day before.
        let day = NaiveDate::from_ymd_opt(2026, 3, 25).expect("date");
        let last = last_instant(day, tz).expect("last");
        assert_eq!(last.to_rfc3339(), "2026-03-25T22:59:59.999999+00:00");
        assert_eq!(business_date_in(last + chrono::Duration::microseconds(1), tz), day.succ_opt().expect("next"));
    }

    #[test]
    fn each_caller_sees_their_pupils_and_alerts_follow_the_clock() {
        let t = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        let rules = Rules::defaults(chrono_tz::Europe::Berlin);
        let tile = |session: i64, room: i64, group: Option<i64>| RoomTile {
            session_id: session,
            room_id: room,
            room_name: format!("Raum {room}"),
            capacity: None,
            activity_id: None,
            activity_name: String::new(),
            education_group_id: group,
            education_group_name: String::new(),
            supervisors: Vec::new(),
            student_count: 2,
        };
        let pupil = |id: i64, group: Option<i64>| RoomStudent {
            group_id: group,
            student: BoardStudent { student_id: id, display_name: format!("Kind{id} K."), since: t },
        };
        let mut transit = alert(AlertKind::LongInTransit, t);
        transit.group_id = Some(3);
        let school = School {
            snapshot: snap(10, 10, &[]),
            as_of: t,
            date: business_date_in(t, rules.timezone),
            rules,
            alert_date: business_date_in(t, rules.timezone),
            alerts_until: t + chrono::Duration::hours(1),
            tiles: vec![tile(1, 100, None), RoomTile { student_count: 1, ..tile(2, 200, Some(3)) }],
            encoded: vec![Encoded::default(), Encoded::default()],
            students: HashMap::from([(1, vec![pupil(11, Some(3)), pupil(12, Some(4))]), (2, vec![pupil(21, None)])]),
            counts: Counts::default(),
            alerts: vec![CachedAlert::new(transit, &rules)],
            taken: Instant::now(),
        };
        let ids = |b: &Board| -> Vec<(i64, Vec<i64>, bool)> {
            b.rooms
                .iter()
                .map(|r| {
                    let r = pb::RoomPresence::decode(r.as_ref()).expect("an encoded room");
                    (r.session_id, r.pupils.iter().map(|s| s.student_id).collect(), r.mine)
                })
                .collect()
        };
        let at = |minutes: i64| t + chrono::Duration::minutes(minutes);
        let cursor = || Cursor::from_snapshot(snap(10, 10, &[]));
        let admin = Access { caller: Caller::ADMIN, my_groups: vec![], supervised: vec![], children: None };
        let all = school.board_for(&admin, cursor(), at(14));
        assert_eq!(ids(&all), [(1, vec![11, 12], false), (2, vec![21], false)]);
        assert!(all.alerts.is_empty(), "not in transit for 15 minutes yet");
        assert_eq!(school.board_for(&admin, cursor(), at(15)).alerts.len(), 1, "raised at the threshold");
        let teacher = Access { caller: Caller::staff(1), my_groups: vec![3], supervised: vec![], children: None };
        let mine = school.board_for(&teacher, cursor(), at(15));
        assert_eq!(ids(&mine), [(2, vec![], true), (1, vec![11], false)], "their group's session first");
        let redacted = |b: &Board| -> Vec<bool> {
            b.rooms.iter().map(|r| pb::RoomPresence::decode(r.as_ref()).expect("a room").pupils_redacted).collect()
        };
        assert_eq!(redacted(&mine), [true, true], "a room shown with some or none of its pupils says so");
        assert_eq!(redacted(&all), [false, false]);
        assert_eq!(school.board_for(&admin, cursor(), at(15)).rooms, all.rooms, "the same encoded rooms again");
        assert_eq!(mine.alerts.len(), 1);
        let supervisor =
            Access { caller: Caller::staff(2), my_groups: vec![], supervised: vec![(2, 200)], children: None };
        let theirs = school.board_for(&supervisor, cursor(), at(15));
        assert_eq!(ids(&theirs), [(2, vec![21], true), (1, vec![], false)]);
        assert!(theirs.alerts.is_empty(), "the alert is about another group, in no room of theirs");
    }
}
