//! `GetPresenceBoard`: one consistent snapshot of the running rooms, the pupils the caller
//! may see, and the school-wide counts (the school view from the process's cached school
//! board, [`super::board_cache`]) — and who may see which pupil ([`Access`]), shared with the
//! live stream. A caller without `groups:read` (a guardian) gets the
//! [`View::Family`]: only the rooms their own children are in, only those children, no
//! supervisors and no counts of other pupils (docs/presence.md "Guardians").

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use diesel_async::AsyncPgConnection;
use phoenix_common::access::{self, Caller, StudentAccess};
use phoenix_common::authz::AuthContext;
use phoenix_common::db::{self, DbPool};
use phoenix_common::time::business_date_in;
use phoenix_common::{Error, Result};
use phoenix_reader_protocol::display_name;

use super::alerts::Rules;
use super::board_cache::{BoardCache, Call};
use super::convert;
use super::cursor::Cursor;
use super::repo::{self, Counts};

/// Which running sessions (and their rooms) each staff member supervises, as the hub last
/// read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Supervision {
    by_staff: HashMap<i64, Vec<(i64, i64)>>,
}

impl Supervision {
    /// From `(staff, session, room)` rows.
    pub fn from_rows(rows: &[repo::SupervisionRow]) -> Self {
        let mut by_staff: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for r in rows {
            by_staff.entry(r.staff_id).or_default().push((r.session_id, r.room_id));
        }
        Self { by_staff }
    }

    /// `(session, room)` pairs `staff` supervises.
    pub fn of(&self, staff: i64) -> &[(i64, i64)] {
        self.by_staff.get(&staff).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Which presence a caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// With `groups:read` (staff, admins): every running room, pupils redacted per
    /// [`Access::sees_student`], the school-wide counts.
    School,
    /// Without it (a guardian): only their own children (`access::guardian_children`).
    Family,
}

impl View {
    /// The view of the token's holder.
    pub fn of(ctx: &AuthContext) -> Self {
        if ctx.has_permission("groups:read") { View::School } else { View::Family }
    }
}

/// What one caller may see (reference §3.5 plus the session rule): a pupil in full when the
/// caller is an admin, the pupil's group is one of the caller's groups today, or the caller
/// supervises the session the pupil is in (or the room they are entering or leaving).
#[derive(Debug, Clone)]
pub struct Access {
    pub caller: Caller,
    pub my_groups: Vec<i64>,
    /// `(session, room)` the caller supervises.
    pub supervised: Vec<(i64, i64)>,
    /// [`View::Family`]: the caller's children, the only pupils they see (empty for an
    /// account without a guardian record). `None` in the school view.
    pub children: Option<Vec<i64>>,
}

impl Access {
    /// The caller's groups on `today` and the sessions they supervise now, or in the family
    /// view their children.
    pub async fn load(conn: &mut AsyncPgConnection, caller: Caller, view: View, today: NaiveDate) -> Result<Self> {
        if view == View::Family {
            let children = match caller.account_id {
                Some(account) => access::guardian_children(conn, account).await?,
                None => Vec::new(),
            };
            return Ok(Self { caller, my_groups: Vec::new(), supervised: Vec::new(), children: Some(children) });
        }
        let my_groups = access::my_group_ids(conn, &caller, today).await?;
        let supervised = match caller.staff_id {
            Some(staff) => {
                repo::supervision(conn, Some(staff)).await?.into_iter().map(|r| (r.session_id, r.room_id)).collect()
            }
            None => Vec::new(),
        };
        Ok(Self { caller, my_groups, supervised, children: None })
    }

    /// The view this access was loaded for.
    pub fn view(&self) -> View {
        if self.children.is_some() { View::Family } else { View::School }
    }

    /// Whether an event about `student` reaches this caller at all: every event in the
    /// school view; in the family view only those about one of the caller's children.
    pub fn admits(&self, student: Option<i64>) -> bool {
        match &self.children {
            None => true,
            Some(children) => student.is_some_and(|s| children.contains(&s)),
        }
    }

    /// Takes the caller's sessions from the hub's latest supervision.
    pub fn set_supervision(&mut self, supervision: &Supervision) {
        if self.children.is_some() {
            return;
        }
        self.supervised = self.caller.staff_id.map(|s| supervision.of(s).to_vec()).unwrap_or_default();
    }

    fn supervises_session(&self, session: i64) -> bool {
        self.supervised.iter().any(|(s, _)| *s == session)
    }

    fn supervises_room(&self, room: i64) -> bool {
        self.supervised.iter().any(|(_, r)| *r == room)
    }

    /// Full access to pupil `student` of group `group` who is in (or moving between)
    /// `session` and `rooms`. In the family view: the caller's own children only.
    pub fn sees_student(
        &self,
        student: i64,
        group: Option<i64>,
        session: Option<i64>,
        rooms: [Option<i64>; 2],
    ) -> bool {
        if let Some(children) = &self.children {
            return children.contains(&student);
        }
        access::student_access(&self.caller, group, &self.my_groups) == StudentAccess::Full
            || session.is_some_and(|s| self.supervises_session(s))
            || rooms.into_iter().flatten().any(|r| self.supervises_room(r))
    }

    /// The session belongs to one of the caller's groups or the caller supervises it.
    pub fn mine(&self, session: i64, education_group: Option<i64>) -> bool {
        education_group.is_some_and(|g| self.my_groups.contains(&g)) || self.supervises_session(session)
    }
}

/// A room with a running session, without its pupils.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomTile {
    pub session_id: i64,
    pub room_id: i64,
    pub room_name: String,
    pub capacity: Option<i32>,
    pub activity_id: Option<i64>,
    pub activity_name: String,
    pub education_group_id: Option<i64>,
    pub education_group_name: String,
    /// `(staff id, display name)`.
    pub supervisors: Vec<(i64, String)>,
    pub student_count: i64,
}

/// A pupil on the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardStudent {
    pub student_id: i64,
    pub display_name: String,
    pub since: DateTime<Utc>,
}

impl BoardStudent {
    /// The pupil of `row`, with their display name (first name + last initial).
    pub fn of(row: &repo::RoomStudentRow) -> Self {
        Self {
            student_id: row.student_id,
            display_name: display_name(&row.first_name, &row.last_name),
            since: row.entry_time,
        }
    }
}

/// One room as a caller sees it.
#[derive(Debug, Clone)]
pub struct BoardRoom {
    pub tile: RoomTile,
    pub students: Vec<BoardStudent>,
    pub mine: bool,
}

/// The board of one caller.
#[derive(Debug, Clone)]
pub struct Board {
    /// Each room an encoded `RoomPresence` (`convert::encoded_room`), the caller's first.
    pub rooms: Vec<Bytes>,
    /// School-wide counts; `None` in the family view.
    pub counts: Option<Counts>,
    pub cursor: Cursor,
    pub as_of: DateTime<Utc>,
    pub date: NaiveDate,
    /// The alerts the caller may see at `as_of`, each an encoded `Alert` (none in the family
    /// view).
    pub alerts: Vec<Bytes>,
}

/// Tiles of running sessions (all, or those of `sessions`), by room name: two queries.
pub async fn tiles(conn: &mut AsyncPgConnection, sessions: Option<&[i64]>) -> Result<Vec<RoomTile>> {
    let rooms = repo::running_rooms(conn, sessions).await?;
    let mut supervisors: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    for s in repo::supervisors(conn, sessions).await? {
        supervisors.entry(s.session_id).or_default().push((s.staff_id, display_name(&s.first_name, &s.last_name)));
    }
    Ok(rooms
        .into_iter()
        .map(|r| RoomTile {
            supervisors: supervisors.remove(&r.session_id).unwrap_or_default(),
            session_id: r.session_id,
            room_id: r.room_id,
            room_name: r.room_name,
            capacity: r.capacity,
            activity_id: r.activity_id,
            activity_name: r.activity_name.unwrap_or_default(),
            education_group_id: r.education_group_id,
            education_group_name: r.education_group_name.unwrap_or_default(),
            student_count: r.student_count,
        })
        .collect())
}

/// The board for `caller`. One REPEATABLE READ, read-only transaction reads the snapshot and
/// the caller's access; the family view is read in it too (uncached: it is small), the school
/// view is the process's cached school board when that snapshot still shows it, else the
/// board rebuilt once for every caller waiting ([`BoardCache`]). Either way rooms, pupils,
/// counts, alerts and the cursor describe one snapshot, taken after the call started (see
/// [`super::cursor`]).
pub async fn load(
    pool: &DbPool,
    cache: &BoardCache,
    caller: Caller,
    view: View,
    tz: chrono_tz::Tz,
    rules: &Rules,
) -> Result<Board> {
    let started = tokio::time::Instant::now();
    let mut conn = db::conn(pool).await?;
    let first = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run::<_, Error, _>(async move |conn| {
            let (snapshot, as_of) = repo::snapshot(conn).await?;
            let date = business_date_in(as_of, tz);
            let access = Access::load(conn, caller, view, date).await?;
            let Some(children) = &access.children else {
                return Ok(Err(Call { started, snapshot, as_of, date, access }));
            };
            let rooms = family_rooms(conn, children).await?.iter().map(convert::family_room).collect();
            let (cursor, alerts) = (Cursor::from_snapshot(snapshot), Vec::new());
            Ok(Ok(Board { rooms, counts: None, cursor, as_of, date, alerts }))
        })
        .await?;
    drop(conn);
    match first {
        Ok(family) => Ok(family),
        Err(call) => cache.board(pool, call, tz, rules).await,
    }
}

/// The family view's rooms: those with an open visit of one of `children`, each with those
/// children only, their number as the room's count and no supervisors.
async fn family_rooms(conn: &mut AsyncPgConnection, children: &[i64]) -> Result<Vec<BoardRoom>> {
    if children.is_empty() {
        return Ok(Vec::new());
    }
    let mut students: HashMap<i64, Vec<BoardStudent>> = HashMap::new();
    for p in repo::room_students(conn, Some(children)).await? {
        students.entry(p.session_id).or_default().push(BoardStudent::of(&p));
    }
    if students.is_empty() {
        return Ok(Vec::new());
    }
    let sessions: Vec<i64> = students.keys().copied().collect();
    Ok(tiles(conn, Some(&sessions))
        .await?
        .into_iter()
        .map(|mut tile| {
            let students = students.remove(&tile.session_id).unwrap_or_default();
            tile.student_count = students.len() as i64;
            tile.supervisors.clear();
            BoardRoom { tile, students, mine: false }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(caller: Caller, groups: &[i64], supervised: &[(i64, i64)]) -> Access {
        Access { caller, my_groups: groups.to_vec(), supervised: supervised.to_vec(), children: None }
    }

    #[test]
    fn full_access_for_admins_own_groups_and_supervisors_only() {
        let admin = access(Caller::ADMIN, &[], &[]);
        assert!(admin.sees_student(1, None, None, [None, None]));
        let teacher = access(Caller::staff(1), &[3], &[]);
        assert!(teacher.sees_student(1, Some(3), Some(9), [Some(7), None]));
        assert!(!teacher.sees_student(1, Some(4), Some(9), [Some(7), None]));
        assert!(!teacher.sees_student(1, None, None, [None, None]));
        let supervisor = access(Caller::staff(2), &[], &[(9, 7)]);
        assert!(supervisor.sees_student(1, Some(4), Some(9), [Some(7), None]), "in the supervised session");
        assert!(supervisor.sees_student(1, Some(4), Some(10), [Some(8), Some(7)]), "leaving the supervised room");
        assert!(!supervisor.sees_student(1, Some(4), Some(10), [Some(8), None]));
        assert!(supervisor.mine(9, None) && !supervisor.mine(10, Some(3)) && teacher.mine(10, Some(3)));
    }

    #[test]
    fn the_family_view_admits_and_shows_the_callers_children_only() {
        let guardian = Access {
            caller: Caller { account_id: Some(5), staff_id: None, is_admin: false },
            my_groups: Vec::new(),
            supervised: Vec::new(),
            children: Some(vec![7]),
        };
        assert!(guardian.admits(Some(7)) && guardian.sees_student(7, Some(3), Some(9), [Some(1), None]));
        assert!(!guardian.admits(Some(8)) && !guardian.sees_student(8, Some(3), Some(9), [Some(1), None]));
        assert!(!guardian.admits(None), "session events name no child");
        assert_eq!(guardian.view(), View::Family);
        assert!(access(Caller::ADMIN, &[], &[]).admits(None));
    }

    #[test]
    fn supervision_per_staff_member() {
        let rows = [
            repo::SupervisionRow { staff_id: 1, session_id: 10, room_id: 100 },
            repo::SupervisionRow { staff_id: 1, session_id: 11, room_id: 101 },
            repo::SupervisionRow { staff_id: 2, session_id: 11, room_id: 101 },
        ];
        let s = Supervision::from_rows(&rows);
        assert_eq!(s.of(1), &[(10, 100), (11, 101)]);
        assert_eq!(s.of(3), &[]);
        let mut a = access(Caller::staff(2), &[], &[]);
        a.set_supervision(&s);
        assert_eq!(a.supervised, vec![(11, 101)]);
    }
}
