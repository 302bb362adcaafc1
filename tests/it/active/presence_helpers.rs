//! Shared helpers of the presence tests (presence_board, presence_stream, presence_hub): the
//! setup, scans, sessions, the board, watching and reading events, groups, and servers of
//! our own (a second replica, custom settings).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_active::presence::PresenceSettings;
use phoenix_common::authz::{Authorized, TokenVerifier};
use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use phoenix_db::schema::users;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::PresenceEventKind as Kind;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::active::v1::presence_service_client::PresenceServiceClient;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::grpc::{As, request};
use phoenix_tests::school::School;
use phoenix_tests::{TestApp, fixtures};
use tonic::codec::Streaming;

/// Guards every wait for a stream message (never an assertion about timing).
pub(super) const WAIT: Duration = Duration::from_secs(20);

pub(super) type Active = ActiveServiceClient<TestChannel>;
pub(super) type Presence = PresenceServiceClient<TestChannel>;

pub(super) struct Setup {
    pub(super) app: TestApp,
    pub(super) active: Active,
    pub(super) presence: Presence,
    pub(super) school: School,
}

pub(super) async fn setup(pupils: usize) -> Setup {
    let app = TestApp::spawn(&[Domain::Active]).await;
    let active = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
    let presence = PresenceServiceClient::new(app.test_channel(Domain::Active).await);
    let mut conn = app.db.conn().await;
    let school = School::create(&mut conn, pupils).await;
    Setup { app, active, presence, school }
}

pub(super) static SCANS: AtomicU64 = AtomicU64::new(0);

/// A scan now (calls are sequential, so each is later than the previous one).
pub(super) async fn scan(active: &mut Active, device: &str, tag: &str) -> pb::ProcessScanResponse {
    let n = SCANS.fetch_add(1, Ordering::Relaxed);
    let at = Utc::now();
    let r = active
        .process_scan(pb::ProcessScanRequest {
            device_id: device.into(),
            scan_id: format!("p-{n}"),
            tag: tag.into(),
            scanned_at: Some(phoenix_common::time::to_timestamp(at)),
        })
        .await
        .expect("process scan")
        .into_inner();
    assert_eq!(r.code, "ok", "scan applied: {r:?}");
    r
}

pub(super) async fn start_session(
    active: &mut Active,
    room: i64,
    activity: Option<i64>,
    group: Option<i64>,
    supervisors: Vec<i64>,
) -> i64 {
    active
        .start_session(pb::StartSessionRequest {
            room_id: room,
            activity_id: activity,
            education_group_id: group,
            supervisor_staff_ids: supervisors,
            ..Default::default()
        })
        .await
        .expect("start session")
        .into_inner()
        .session
        .expect("session")
        .id
}

pub(super) async fn board(presence: &mut Presence, caller: As) -> pb::GetPresenceBoardResponse {
    presence.get_presence_board(request(caller, pb::GetPresenceBoardRequest {})).await.expect("board").into_inner()
}

pub(super) async fn watch(presence: &mut Presence, caller: As, cursor: &str) -> Streaming<pb::WatchPresenceResponse> {
    presence
        .watch_presence(request(caller, pb::WatchPresenceRequest { cursor: cursor.into(), alerts: false }))
        .await
        .expect("watch")
        .into_inner()
}

/// The next message, heartbeats included.
pub(super) async fn next_message(stream: &mut Streaming<pb::WatchPresenceResponse>) -> pb::PresenceEvent {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a presence event within the guard time")
        .expect("stream ok")
        .expect("stream open")
        .event
        .expect("event")
}

/// The next change (heartbeats skipped).
pub(super) async fn next_event(stream: &mut Streaming<pb::WatchPresenceResponse>) -> pb::PresenceEvent {
    loop {
        let e = next_message(stream).await;
        if e.kind() != Kind::Heartbeat {
            return e;
        }
    }
}

pub(super) async fn next_events(stream: &mut Streaming<pb::WatchPresenceResponse>, n: usize) -> Vec<pb::PresenceEvent> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_event(stream).await);
    }
    out
}

/// (kind, pupil id, room id) of each event.
pub(super) fn shape<'a>(
    events: impl IntoIterator<Item = &'a pb::PresenceEvent>,
) -> Vec<(Kind, Option<i64>, Option<i64>)> {
    events.into_iter().map(|e| (e.kind(), e.pupil.as_ref().map(|p| p.student_id), e.room_id)).collect()
}

/// Two education groups with a teacher each, the pupils split between them.
pub(super) struct Groups {
    pub(super) foxes: i64,
    pub(super) owls: i64,
    /// Staff id of the foxes' teacher.
    pub(super) fox_teacher: i64,
    pub(super) owl_teacher: i64,
}

pub(super) async fn groups(conn: &mut AsyncPgConnection, foxes: &[i64], owls: &[i64]) -> Groups {
    let g_foxes = fixtures::group(conn, "Füchse").await;
    let g_owls = fixtures::group(conn, "Eulen").await;
    let fox_teacher = fixtures::staff(conn, "Fiona", "Fuchs").await;
    let owl_teacher = fixtures::staff(conn, "Otto", "Eule").await;
    let t = fixtures::teacher(conn, fox_teacher).await;
    fixtures::group_teacher(conn, g_foxes, t).await;
    let t = fixtures::teacher(conn, owl_teacher).await;
    fixtures::group_teacher(conn, g_owls, t).await;
    for (group, pupils) in [(g_foxes, foxes), (g_owls, owls)] {
        diesel::update(users::students::table.filter(users::students::id.eq_any(pupils)))
            .set(users::students::group_id.eq(Some(group)))
            .execute(conn)
            .await
            .expect("assign group");
    }
    Groups { foxes: g_foxes, owls: g_owls, fox_teacher, owl_teacher }
}

pub(super) fn pupil_ids(room: &pb::RoomPresence) -> Vec<i64> {
    let mut ids: Vec<i64> = room.pupils.iter().map(|p| p.student_id).collect();
    ids.sort();
    ids
}

pub(super) fn room_by_id(b: &pb::GetPresenceBoardResponse, room: i64) -> &pb::RoomPresence {
    b.rooms.iter().find(|r| r.room_id == room).expect("room on the board")
}

/// A second active server (its own hub) on the same database, like a second replica.
pub(super) async fn second_replica(app: &TestApp) -> (std::net::SocketAddr, ShutdownToken) {
    let ctx = phoenix::services::ServiceContext::new(app.db.pool().await, app.config.clone());
    let shutdown = ShutdownToken::new();
    let running = phoenix::services::start(&[Domain::Active], &ctx, app.config.listen_host, 0, false, &shutdown)
        .await
        .expect("second active server");
    (running[0].addr, shutdown)
}

/// A presence server of our own with `settings` (heartbeats, tiny buffers), behind the
/// authorization layer, on an ephemeral port.
pub(super) async fn custom_server(app: &TestApp, settings: PresenceSettings) -> (std::net::SocketAddr, ShutdownToken) {
    let shutdown = ShutdownToken::new();
    let pool = app.db.pool().await;
    let verifier = Arc::new(TokenVerifier::new(pool.clone()));
    let server = phoenix_active::presence::server(pool, settings, shutdown.clone(), verifier.clone());
    let service = Authorized::new(server, phoenix_active::PRESENCE_METHODS, verifier).expect("methods match");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = shutdown.clone();
    tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        stop.cancelled_owned(),
    ));
    (addr, shutdown)
}
