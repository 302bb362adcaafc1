//! A small school for reader tests: rooms with readers, an entrance reader, pupils with cards,
//! staff, an activity; plus queries of the resulting presence state.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_db::schema::active::{attendance, groups, visits};
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;

use crate::fixtures;

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
pub async fn start_session(
    client: &mut ActiveServiceClient<crate::auth::TestChannel>,
    room: i64,
    activity: i64,
    staff: i64,
) -> i64 {
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
