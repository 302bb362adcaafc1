//! Shared set-up of the `active_*` modules: the test school plus an education group led by a
//! teacher (a staff member with a teacher record), another staff member without groups, and
//! queries of the presence event log.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::domain::Domain;
use phoenix_db::schema::users;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::school::School;
use phoenix_tests::{TestApp, fixtures};

pub type Client = ActiveServiceClient<TestChannel>;

/// The school, plus: `group` (education group) led by `teacher`, whose pupils are
/// `school.pupils[..in_group]`; `other_group` holds the rest; `stranger` is staff without
/// groups. `school.staff` supervises the sessions the tests start.
pub struct Env {
    pub app: TestApp,
    pub client: Client,
    pub school: School,
    pub group: i64,
    pub other_group: i64,
    pub teacher: i64,
    pub stranger: i64,
}

impl Env {
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

    pub async fn conn(&self) -> AsyncPgConnection {
        self.app.db.conn().await
    }

    /// Starts a session in `room` supervised by `school.staff`.
    pub async fn session(&mut self, room: i64) -> i64 {
        phoenix_tests::school::start_session(&mut self.client, room, self.school.activity, self.school.staff).await
    }

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
