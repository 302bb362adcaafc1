//! Who may end sessions and what a guardian sees of presence (issue #12): ending a session
//! needs a current supervision or `sessions:manage`; a guardian's board and stream hold only
//! their own children, with no other pupils, counts of others or supervisors' names.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::domain::Domain;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::PresenceEventKind as Kind;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::active::v1::presence_service_client::PresenceServiceClient;
use phoenix_tests::auth::{PASSWORD, TestChannel, create_account, mint_token, role_permissions};
use phoenix_tests::grpc::{As, assert_code, request};
use phoenix_tests::school::{self, School};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;
use tonic::codec::Streaming;

const WAIT: Duration = Duration::from_secs(20);

type Active = ActiveServiceClient<TestChannel>;

static SCANS: AtomicU64 = AtomicU64::new(0);

async fn scan(active: &mut Active, device: &str, tag: &str) {
    let n = SCANS.fetch_add(1, Ordering::Relaxed);
    let r = active
        .process_scan(pb::ProcessScanRequest {
            device_id: device.into(),
            scan_id: format!("acc-{n}"),
            tag: tag.into(),
            scanned_at: Some(phoenix_common::time::to_timestamp(Utc::now())),
        })
        .await
        .expect("process scan")
        .into_inner();
    assert_eq!(r.code, "ok", "scan applied: {r:?}");
}

/// A guardian account (seeded role `guardian`) whose guardian record is linked to
/// `student`; returns a token for it.
pub(super) async fn guardian_token(app: &TestApp, conn: &mut AsyncPgConnection, student: i64) -> String {
    let email = format!("parent-{}@test.example", uuid::Uuid::new_v4().simple());
    let account = create_account(app, &email, PASSWORD, &["guardian"], true).await;
    let guardian = fixtures::guardian_of(conn, student, "Petra", "Elternteil", true).await;
    diesel::sql_query(format!("UPDATE users.guardians SET account_id = {account} WHERE id = {guardian}"))
        .execute(conn)
        .await
        .expect("link the guardian's account");
    mint_token(app, &account.to_string(), &["guardian"], &role_permissions(app, "guardian").await).await
}

async fn next_event(stream: &mut Streaming<pb::WatchPresenceResponse>) -> pb::PresenceEvent {
    loop {
        let e = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("an event within the guard time")
            .expect("stream ok")
            .expect("stream open")
            .event
            .expect("event");
        if e.kind() != Kind::Heartbeat {
            return e;
        }
    }
}

#[tokio::test]
async fn only_a_current_supervisor_or_sessions_manage_ends_a_session() {
    let app = TestApp::spawn(&[Domain::Active]).await;
    let mut active = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
    let mut conn = app.db.conn().await;
    let s = School::create(&mut conn, 0).await;
    let a = fixtures::staff(&mut conn, "Anna", "Aufsicht").await;
    let b = fixtures::staff(&mut conn, "Bernd", "Anderer").await;

    let first = school::start_session(&mut active, s.rooms[0], s.activity, a).await;
    let denied = assert_code(
        active.end_session(request(As::Staff(b), pb::EndSessionRequest { id: first })).await,
        Code::PermissionDenied,
    );
    assert!(denied.message().contains("sessions:manage"), "{}", denied.message());
    let forced = pb::StartSessionRequest { room_id: s.rooms[0], force: true, ..Default::default() };
    assert_code(active.start_session(request(As::Staff(b), forced)).await, Code::PermissionDenied);
    let ended =
        active.end_session(request(As::Staff(a), pb::EndSessionRequest { id: first })).await.expect("own session");
    assert!(ended.into_inner().session.expect("session").end_time.is_some());

    let second = school::start_session(&mut active, s.rooms[0], s.activity, a).await;
    active.end_session(request(As::Admin, pb::EndSessionRequest { id: second })).await.expect("admin: *:*");
}

#[tokio::test]
async fn a_guardian_sees_only_their_own_child_on_the_board_and_in_the_stream() {
    let app = TestApp::spawn(&[Domain::Active]).await;
    let mut active = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
    let mut conn = app.db.conn().await;
    let s = School::create(&mut conn, 2).await;
    let (x, y) = (&s.pupils[0], &s.pupils[1]);
    let token = guardian_token(&app, &mut conn, x.id).await;
    let mut presence = PresenceServiceClient::new(app.channel_as(Domain::Active, &token).await);
    let mut nobody = {
        let email = format!("nobody-{}@test.example", uuid::Uuid::new_v4().simple());
        let account = create_account(&app, &email, PASSWORD, &["guardian"], true).await;
        let t = mint_token(&app, &account.to_string(), &["guardian"], &role_permissions(&app, "guardian").await).await;
        PresenceServiceClient::new(app.channel_as(Domain::Active, &t).await)
    };
    for room in &s.rooms[..3] {
        school::start_session(&mut active, *room, s.activity, s.staff).await;
    }
    scan(&mut active, &s.readers[0], &x.tag).await;
    scan(&mut active, &s.readers[0], &y.tag).await;

    let board = presence.get_presence_board(pb::GetPresenceBoardRequest {}).await.expect("board").into_inner();
    assert_eq!(board.rooms.len(), 1, "only the room the child is in: {board:?}");
    let room = &board.rooms[0];
    assert_eq!(room.room_id, s.rooms[0]);
    assert_eq!(room.pupils.iter().map(|p| p.student_id).collect::<Vec<_>>(), [x.id], "not the other pupil");
    assert_eq!(room.pupil_count, 1, "counts only the guardian's own children");
    assert!(room.supervisors.is_empty() && !room.pupils_redacted);
    assert!(board.counts.is_none(), "no school-wide counts");
    let empty = nobody.get_presence_board(pb::GetPresenceBoardRequest {}).await.expect("board").into_inner();
    assert!(empty.rooms.is_empty() && empty.counts.is_none(), "no guardian record: an empty board");

    let mut stream = presence
        .watch_presence(pb::WatchPresenceRequest { cursor: board.cursor.clone(), alerts: false })
        .await
        .expect("watch")
        .into_inner();
    let mut nobody_stream =
        nobody.watch_presence(pb::WatchPresenceRequest::default()).await.expect("watch").into_inner();
    scan(&mut active, &s.readers[1], &y.tag).await; // the other pupil moves first: not delivered
    scan(&mut active, &s.readers[1], &x.tag).await;
    let e = next_event(&mut stream).await;
    assert_eq!(
        (e.kind(), e.pupil.as_ref().map(|p| p.student_id), e.room_id),
        (Kind::Transferred, Some(x.id), Some(s.rooms[1]))
    );
    assert!(e.counts.is_none() && e.room_pupil_count.is_none() && e.from_room_pupil_count.is_none());
    scan(&mut active, &s.readers[2], &y.tag).await;
    scan(&mut active, &s.readers[2], &x.tag).await;
    let e = next_event(&mut stream).await;
    assert_eq!(
        (e.pupil.map(|p| p.student_id), e.room_id),
        (Some(x.id), Some(s.rooms[2])),
        "nothing about the other pupil"
    );
    // The account without children got nothing at all (a heartbeat at most).
    let quiet = tokio::time::timeout(Duration::from_millis(500), nobody_stream.message()).await;
    assert!(quiet.is_err(), "no events for an account without children: {quiet:?}");
}
