//! A small school for reader tests: rooms with readers, an entrance reader, pupils with cards,
//! staff, an activity; [`ActiveSchool`], the same school with education groups, served by the
//! active service; plus scans and queries of the resulting presence state and event log.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::domain::Domain;
use phoenix_db::schema::active::{attendance, groups, visits};
use phoenix_db::schema::users;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;

use crate::auth::TestChannel;
use crate::{TestApp, fixtures};

/// An active-service client authenticated by a [`TestChannel`].
pub type Client = ActiveServiceClient<TestChannel>;

/// A pupil of the test school.
#[derive(Debug, Clone)]
pub struct Pupil {
    pub id: i64,
    /// Normalised card UID.
    pub tag: String,
}

/// Rooms, readers and pupils. Readers have key version 1 (see [`fixtures::device`]).
#[derive(Debug, Clone)]
pub struct School {
    /// Rooms `Raum A`, `Raum B`, `Raum C`, `Raum D` (unlimited) and `Klein` (capacity 2).
    pub rooms: Vec<i64>,
    pub small_room: i64,
    /// Room readers `reader-a` … `reader-d` (one per room, same order) and `reader-small`.
    pub readers: Vec<String>,
    pub small_reader: String,
    pub gate: String,
    pub staff: i64,
    pub activity: i64,
    pub pupils: Vec<Pupil>,
}

/// Letters of the rooms and readers.
const LETTERS: [&str; 4] = ["a", "b", "c", "d"];

impl School {
    /// Creates the school with `pupils` pupils (names `Kind{i} Test{i}`).
    pub async fn create(conn: &mut AsyncPgConnection, pupils: usize) -> Self {
        let mut rooms = Vec::new();
        let mut readers = Vec::new();
        for l in LETTERS {
            let room = fixtures::room(conn, &format!("Raum {}", l.to_uppercase()), None).await;
            let reader = format!("reader-{l}");
            fixtures::device(conn, &reader, "room", Some(room)).await;
            rooms.push(room);
            readers.push(reader);
        }
        let small_room = fixtures::room(conn, "Klein", Some(2)).await;
        fixtures::device(conn, "reader-small", "room", Some(small_room)).await;
        fixtures::device(conn, "gate", "entrance", None).await;
        let staff = fixtures::staff(conn, "Erika", "Betreuerin").await;
        let activity = fixtures::activity(conn, "Freispiel", 100).await;
        let mut list = Vec::new();
        for i in 0..pupils {
            let tag = fixtures::tag(i);
            let id = fixtures::student(conn, &format!("Kind{i}"), &format!("Test{i}"), &tag).await;
            list.push(Pupil { id, tag });
        }
        Self {
            rooms,
            small_room,
            readers,
            small_reader: "reader-small".into(),
            gate: "gate".into(),
            staff,
            activity,
            pupils: list,
        }
    }

    /// Starts a session (activity `Freispiel`) in every room; returns the session ids.
    pub async fn open_all_rooms(&self, client: &mut ActiveServiceClient<crate::auth::TestChannel>) -> Vec<i64> {
        let mut ids = Vec::new();
        for room in self.rooms.iter().chain([&self.small_room]) {
            ids.push(start_session(client, *room, self.activity, self.staff).await);
        }
        ids
    }
}

/// Starts a session in `room`; returns its id.
pub async fn start_session(client: &mut Client, room: i64, activity: i64, staff: i64) -> i64 {
    client
        .start_session(pb::StartSessionRequest {
            room_id: room,
            activity_id: Some(activity),
            supervisor_staff_ids: vec![staff],
            ..Default::default()
        })
        .await
        .expect("start session")
        .into_inner()
        .session
        .expect("session")
        .id
}

/// The room of the pupil's open visit, if any.
pub async fn open_visit_room(conn: &mut AsyncPgConnection, student: i64) -> Option<i64> {
    visits::table
        .inner_join(groups::table)
        .filter(visits::student_id.eq(student))
        .filter(visits::exit_time.is_null())
        .select(groups::room_id)
        .first(conn)
        .await
        .optional()
        .expect("query open visit")
}

/// Number of open visits of a pupil (never more than one).
pub async fn open_visit_count(conn: &mut AsyncPgConnection, student: i64) -> i64 {
    visits::table
        .filter(visits::student_id.eq(student))
        .filter(visits::exit_time.is_null())
        .count()
        .get_result(conn)
        .await
        .expect("count open visits")
}

/// All visits of a pupil.
pub async fn visit_count(conn: &mut AsyncPgConnection, student: i64) -> i64 {
    visits::table.filter(visits::student_id.eq(student)).count().get_result(conn).await.expect("count visits")
}

/// `Some(open)` when the pupil has an attendance row (any date): open = not checked out.
pub async fn attendance_open(conn: &mut AsyncPgConnection, student: i64) -> Option<bool> {
    attendance::table
        .filter(attendance::student_id.eq(student))
        .select(attendance::check_out_time)
        .first::<Option<chrono::DateTime<chrono::Utc>>>(conn)
        .await
        .optional()
        .expect("query attendance")
        .map(|out| out.is_none())
}

/// The school, plus: `group` (education group) led by `teacher`, whose pupils are
/// `school.pupils[..in_group]`; `other_group` holds the rest; `stranger` is staff without
/// groups. `school.staff` supervises the sessions the tests start.
pub struct ActiveSchool {
    pub app: TestApp,
    pub client: Client,
    pub school: School,
    pub group: i64,
    pub other_group: i64,
    pub teacher: i64,
    pub stranger: i64,
}

impl ActiveSchool {
    /// The active service on its own, and the school with `pupils` pupils, the first
    /// `in_group` of them in `group`.
    pub async fn new(pupils: usize, in_group: usize) -> Self {
        let app = TestApp::spawn(&[Domain::Active]).await;
        let client = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
        let mut conn = app.db.conn().await;
        let school = School::create(&mut conn, pupils).await;
        let group = fixtures::group(&mut conn, "Eulen").await;
        let other_group = fixtures::group(&mut conn, "Füchse").await;
        let teacher = fixtures::staff(&mut conn, "Tina", "Lehrerin").await;
        let teacher_row = fixtures::insert_returning_id(
            &mut conn,
            &format!("INSERT INTO users.teachers (staff_id) VALUES ({teacher}) RETURNING id"),
        )
        .await;
        fixtures::group_teacher(&mut conn, group, teacher_row).await;
        let stranger = fixtures::staff(&mut conn, "Sven", "Fremd").await;
        for (i, p) in school.pupils.iter().enumerate() {
            let g = if i < in_group { group } else { other_group };
            diesel::update(users::students::table.find(p.id))
                .set(users::students::group_id.eq(Some(g)))
                .execute(&mut conn)
                .await
                .expect("group pupil");
        }
        Self { app, client, school, group, other_group, teacher, stranger }
    }

    /// A connection to the test's database.
    pub async fn conn(&self) -> AsyncPgConnection {
        self.app.db.conn().await
    }

    /// Starts a session in `room` supervised by `school.staff`.
    pub async fn session(&mut self, room: i64) -> i64 {
        start_session(&mut self.client, room, self.school.activity, self.school.staff).await
    }

    /// The id of pupil `i`.
    pub fn pupil(&self, i: usize) -> i64 {
        self.school.pupils[i].id
    }
}

/// One logged presence event: `(kind, student, session, room, from room)`.
pub type Event = (String, Option<i64>, Option<i64>, Option<i64>, Option<i64>);

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    student_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    session_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    room_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    from_room_id: Option<i64>,
}

/// The presence events of `kinds` in log order.
pub async fn events(conn: &mut AsyncPgConnection, kinds: &[&str]) -> Vec<Event> {
    let list = kinds.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(",");
    diesel::sql_query(format!(
        "SELECT kind, student_id, session_id, room_id, from_room_id FROM active.presence_events \
         WHERE kind IN ({list}) ORDER BY tx_id, id"
    ))
    .load::<EventRow>(conn)
    .await
    .expect("event log")
    .into_iter()
    .map(|r| (r.kind, r.student_id, r.session_id, r.room_id, r.from_room_id))
    .collect()
}

/// A reader scan as the gateway sends it.
pub async fn scan(
    client: &mut Client,
    device: &str,
    scan_id: &str,
    tag: &str,
    at: DateTime<Utc>,
) -> pb::ProcessScanResponse {
    client
        .process_scan(pb::ProcessScanRequest {
            device_id: device.into(),
            scan_id: scan_id.into(),
            tag: tag.into(),
            scanned_at: Some(phoenix_common::time::to_timestamp(at)),
        })
        .await
        .expect("process scan")
        .into_inner()
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `SELECT count(*) AS n …`.
pub async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<N>(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}")).n
}
