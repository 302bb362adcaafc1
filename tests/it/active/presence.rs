//! `phoenix.active.v1.PresenceService` over real gRPC against real PostgreSQL: the board per
//! caller (redaction, "mine", counts of every state), the live stream driven by real scans
//! (ProcessScan and the MQTT bridge), resuming from event and board cursors without gaps or
//! duplicates, redaction in the stream, delivery across replicas, cursor errors, heartbeats,
//! the hub's reconnect and the server's shutdown with open streams.
//!
//! "Nothing else was delivered" is asserted with a sentinel: after the expected events a
//! further change is made, and the next event must be that sentinel. Timeouts only guard
//! against hangs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_active::events::{self, ChangeKind, PresenceChange};
use phoenix_active::presence::PresenceSettings;
use phoenix_common::authz::{Authorized, TokenVerifier};
use phoenix_common::domain::Domain;
use phoenix_common::server::ShutdownToken;
use phoenix_db::schema::users;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::PresenceEventKind as Kind;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::active::v1::presence_service_client::PresenceServiceClient;
use phoenix_tests::auth::{TestChannel, admin_token, bearer};
use phoenix_tests::grpc::{As, assert_code, assert_invalid, reason, request};
use phoenix_tests::school::{self, School};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;
use tonic::codec::Streaming;

/// Guards every wait for a stream message (never an assertion about timing).
const WAIT: Duration = Duration::from_secs(20);

type Active = ActiveServiceClient<TestChannel>;
type Presence = PresenceServiceClient<TestChannel>;

struct Setup {
    app: TestApp,
    active: Active,
    presence: Presence,
    school: School,
}

async fn setup(pupils: usize) -> Setup {
    let app = TestApp::spawn(&[Domain::Active]).await;
    let active = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
    let presence = PresenceServiceClient::new(app.test_channel(Domain::Active).await);
    let mut conn = app.db.conn().await;
    let school = School::create(&mut conn, pupils).await;
    Setup { app, active, presence, school }
}

static SCANS: AtomicU64 = AtomicU64::new(0);

/// A scan now (calls are sequential, so each is later than the previous one).
async fn scan(active: &mut Active, device: &str, tag: &str) -> pb::ProcessScanResponse {
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

async fn start_session(
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

async fn board(presence: &mut Presence, caller: As) -> pb::GetPresenceBoardResponse {
    presence.get_presence_board(request(caller, pb::GetPresenceBoardRequest {})).await.expect("board").into_inner()
}

async fn watch(presence: &mut Presence, caller: As, cursor: &str) -> Streaming<pb::WatchPresenceResponse> {
    presence
        .watch_presence(request(caller, pb::WatchPresenceRequest { cursor: cursor.into() }))
        .await
        .expect("watch")
        .into_inner()
}

/// The next message, heartbeats included.
async fn next_message(stream: &mut Streaming<pb::WatchPresenceResponse>) -> pb::PresenceEvent {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a presence event within the guard time")
        .expect("stream ok")
        .expect("stream open")
        .event
        .expect("event")
}

/// The next change (heartbeats skipped).
async fn next_event(stream: &mut Streaming<pb::WatchPresenceResponse>) -> pb::PresenceEvent {
    loop {
        let e = next_message(stream).await;
        if e.kind() != Kind::Heartbeat {
            return e;
        }
    }
}

async fn next_events(stream: &mut Streaming<pb::WatchPresenceResponse>, n: usize) -> Vec<pb::PresenceEvent> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_event(stream).await);
    }
    out
}

/// (kind, pupil id, room id) of each event.
fn shape<'a>(events: impl IntoIterator<Item = &'a pb::PresenceEvent>) -> Vec<(Kind, Option<i64>, Option<i64>)> {
    events.into_iter().map(|e| (e.kind(), e.pupil.as_ref().map(|p| p.student_id), e.room_id)).collect()
}

/// Two education groups with a teacher each, the pupils split between them.
struct Groups {
    foxes: i64,
    owls: i64,
    /// Staff id of the foxes' teacher.
    fox_teacher: i64,
    owl_teacher: i64,
}

async fn groups(conn: &mut AsyncPgConnection, foxes: &[i64], owls: &[i64]) -> Groups {
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

fn pupil_ids(room: &pb::RoomPresence) -> Vec<i64> {
    let mut ids: Vec<i64> = room.pupils.iter().map(|p| p.student_id).collect();
    ids.sort();
    ids
}

fn room_by_id(b: &pb::GetPresenceBoardResponse, room: i64) -> &pb::RoomPresence {
    b.rooms.iter().find(|r| r.room_id == room).expect("room on the board")
}

#[tokio::test]
async fn the_board_shows_each_caller_exactly_the_pupils_they_may_see() {
    let Setup { app, mut active, mut presence, school: s } = setup(8).await;
    let mut conn = app.db.conn().await;
    let p: Vec<i64> = s.pupils.iter().map(|p| p.id).collect();
    let g = groups(&mut conn, &p[0..3], &p[3..6]).await;
    let sam = fixtures::staff(&mut conn, "Sam", "Springer").await;
    let olga = fixtures::staff(&mut conn, "Olga", "Ohnegruppe").await;
    let erika = s.staff;
    let (room_a, room_b) = (s.rooms[0], s.rooms[1]);
    let session_a = start_session(&mut active, room_a, Some(s.activity), Some(g.foxes), vec![erika]).await;
    let session_b = start_session(&mut active, room_b, Some(s.activity), None, vec![sam]).await;
    // Room A: a fox, an owl and a pupil without a group; room B: a fox and an owl.
    for i in [0, 3, 6] {
        scan(&mut active, &s.readers[0], &s.pupils[i].tag).await;
    }
    for i in [1, 4] {
        scan(&mut active, &s.readers[1], &s.pupils[i].tag).await;
    }

    let admin = board(&mut presence, As::Admin).await;
    assert_eq!(admin.rooms.iter().map(|r| r.room_id).collect::<Vec<_>>(), [room_a, room_b], "by name");
    let a = room_by_id(&admin, room_a);
    assert_eq!(
        (a.session_id, a.room_name.as_str(), a.activity_name.as_str(), a.education_group_name.as_str()),
        (session_a, "Raum A", "Freispiel", "Füchse")
    );
    assert_eq!((a.activity_id, a.education_group_id, a.capacity), (Some(s.activity), Some(g.foxes), None));
    assert_eq!(
        a.supervisors,
        [pb::PresenceSupervisor { staff_id: erika, display_name: "Erika B.".into() }],
        "supervisors with display names"
    );
    assert_eq!((a.pupil_count, pupil_ids(a), a.pupils_redacted, a.mine), (3, vec![p[0], p[3], p[6]], false, false));
    let kind0 = a.pupils.iter().find(|x| x.student_id == p[0]).expect("pupil 0");
    assert_eq!(kind0.display_name, "Kind0 T.", "first name + last initial only");
    assert!(kind0.since.is_some());
    let b = room_by_id(&admin, room_b);
    assert_eq!((b.session_id, b.pupil_count, pupil_ids(b), b.pupils_redacted), (session_b, 2, vec![p[1], p[4]], false));
    assert_eq!(b.education_group_id, None);
    let counts = admin.counts.expect("counts");
    assert_eq!((counts.in_room, counts.total), (5, 8));
    assert!(!admin.cursor.is_empty());
    assert_eq!(admin.date, phoenix_common::time::business_date(Utc::now()).format("%Y-%m-%d").to_string());

    // The foxes' teacher: only foxes, in every room; room A (the foxes' session) is theirs.
    let fox = board(&mut presence, As::Staff(g.fox_teacher)).await;
    assert_eq!(fox.rooms.iter().map(|r| (r.room_id, r.mine)).collect::<Vec<_>>(), [(room_a, true), (room_b, false)]);
    let (fa, fb) = (room_by_id(&fox, room_a), room_by_id(&fox, room_b));
    assert_eq!((fa.pupil_count, pupil_ids(fa), fa.pupils_redacted), (3, vec![p[0]], true));
    assert_eq!((fb.pupil_count, pupil_ids(fb), fb.pupils_redacted), (2, vec![p[1]], true));

    // The owls' teacher: only owls; nothing is theirs, so the order is by name.
    let owl = board(&mut presence, As::Staff(g.owl_teacher)).await;
    assert_eq!(owl.rooms.iter().map(|r| (r.room_id, r.mine)).collect::<Vec<_>>(), [(room_a, false), (room_b, false)]);
    assert_eq!(pupil_ids(room_by_id(&owl, room_a)), [p[3]]);
    assert_eq!(pupil_ids(room_by_id(&owl, room_b)), [p[4]]);

    // Room B's supervisor sees everyone in B (whatever their group) and nobody in A; B first.
    let sup = board(&mut presence, As::Staff(sam)).await;
    assert_eq!(sup.rooms.iter().map(|r| (r.room_id, r.mine)).collect::<Vec<_>>(), [(room_b, true), (room_a, false)]);
    let (sa, sb) = (room_by_id(&sup, room_a), room_by_id(&sup, room_b));
    assert_eq!((pupil_ids(sb), sb.pupils_redacted), (vec![p[1], p[4]], false));
    assert_eq!((pupil_ids(sa), sa.pupils_redacted, sa.pupil_count), (vec![], true, 3));

    // Staff of no group supervising nothing: counts and rooms, no pupils.
    let none = board(&mut presence, As::Staff(olga)).await;
    assert!(none.rooms.iter().all(|r| r.pupils.is_empty() && r.pupils_redacted && !r.mine));
    assert_eq!(none.rooms.iter().map(|r| r.pupil_count).collect::<Vec<_>>(), [3, 2]);

    // Health reports the presence service next to ActiveService.
    let serving = tonic_health::ServingStatus::Serving as i32;
    for service in ["phoenix.active.v1.ActiveService", "phoenix.active.v1.PresenceService"] {
        let status = phoenix_tests::app::health_status(app.addr(Domain::Active), service).await.expect("health");
        assert_eq!(status, serving, "{service}");
    }

    for other in [&fox, &owl, &sup, &none] {
        assert_eq!(other.counts, admin.counts, "aggregates are the same for everyone");
        assert_eq!(other.rooms.len(), 2);
        let supervisors: Vec<_> = other.rooms.iter().map(|r| r.supervisors.clone()).collect();
        assert_eq!(supervisors.len(), 2);
    }
    let _ = g.owls;
}

#[tokio::test]
async fn counts_place_every_active_pupil_in_exactly_one_state() {
    let Setup { app, mut active, mut presence, school: s } = setup(8).await;
    let mut conn = app.db.conn().await;
    school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let tag = |i: usize| s.pupils[i].tag.clone();
    scan(&mut active, &s.readers[0], &tag(0)).await; // 0: in the room
    scan(&mut active, &s.readers[0], &tag(1)).await; // 1: in and out again → in transit
    scan(&mut active, &s.readers[0], &tag(1)).await;
    // 2: never seen → absent
    scan(&mut active, &s.gate, &tag(3)).await; // 3: arrived and went home
    scan(&mut active, &s.gate, &tag(3)).await;
    scan(&mut active, &s.gate, &tag(5)).await; // 5: arrived at the gate only → in transit
    scan(&mut active, &s.readers[0], &tag(7)).await; // 7: in the room, then marked sick
    let mark_sick = |i: usize| {
        diesel::update(users::students::table.find(s.pupils[i].id))
            .set((users::students::sick.eq(true), users::students::sick_since.eq(Some(Utc::now()))))
    };
    mark_sick(4).execute(&mut conn).await.expect("sick"); // 4: sick at home
    mark_sick(7).execute(&mut conn).await.expect("sick");
    diesel::update(users::students::table.find(s.pupils[6].id)) // 6: left the school
        .set(users::students::deactivated_at.eq(Some(Utc::now())))
        .execute(&mut conn)
        .await
        .expect("deactivate");

    let counts = board(&mut presence, As::Admin).await.counts.expect("counts");
    assert_eq!(
        counts,
        pb::PresenceCounts { in_room: 2, in_transit: 2, absent: 1, gone_home: 1, sick: 1, total: 7 },
        "the room wins over sick; a deactivated pupil is not counted"
    );
    let sum = counts.in_room + counts.in_transit + counts.absent + counts.gone_home + counts.sick;
    assert_eq!(sum, counts.total);
}

#[tokio::test]
async fn the_stream_carries_real_scans_in_commit_order() {
    let Setup { app: _app, mut active, mut presence, school: s } = setup(3).await;
    let session_a = school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let session_b = school::start_session(&mut active, s.rooms[1], s.activity, s.staff).await;
    let cursor = board(&mut presence, As::Admin).await.cursor;
    let mut stream = watch(&mut presence, As::Admin, &cursor).await;
    let (p0, p1, p2) = (&s.pupils[0], &s.pupils[1], &s.pupils[2]);
    scan(&mut active, &s.readers[0], &p0.tag).await; // checked in A
    scan(&mut active, &s.readers[1], &p0.tag).await; // transferred to B
    scan(&mut active, &s.readers[0], &p1.tag).await; // checked in A
    scan(&mut active, &s.readers[1], &p0.tag).await; // checked out of B
    scan(&mut active, &s.gate, &p2.tag).await; // arrived
    scan(&mut active, &s.gate, &p2.tag).await; // gone home
    active.end_session(pb::EndSessionRequest { id: session_b }).await.expect("end");

    let events = next_events(&mut stream, 7).await;
    let (a, b) = (Some(s.rooms[0]), Some(s.rooms[1]));
    assert_eq!(
        shape(&events),
        [
            (Kind::CheckedIn, Some(p0.id), a),
            (Kind::Transferred, Some(p0.id), b),
            (Kind::CheckedIn, Some(p1.id), a),
            (Kind::CheckedOut, Some(p0.id), b),
            (Kind::Arrived, Some(p2.id), None),
            (Kind::GoneHome, Some(p2.id), None),
            (Kind::SessionEnded, None, b),
        ]
    );
    let cursors: std::collections::HashSet<_> = events.iter().map(|e| e.cursor.clone()).collect();
    assert_eq!(cursors.len(), 7, "every event has its own position");
    let e = &events[0];
    assert_eq!((e.session_id, e.room_name.as_str()), (Some(session_a), "Raum A"));
    let pupil = e.pupil.as_ref().expect("admin sees the pupil");
    assert_eq!(pupil.display_name, "Kind0 T.");
    assert!(pupil.since.is_some() && e.occurred_at.is_some());
    let t = &events[1];
    assert_eq!((t.from_room_id, t.from_room_name.as_str(), t.session_id), (a, "Raum A", Some(session_b)));
    assert_eq!(events[5].from_room_id, None, "p2 was in no room when going home");
    // Counts come with every event; the last is read after every change above.
    let last = events[6].counts.expect("counts");
    assert_eq!((last.in_room, last.in_transit, last.gone_home, last.absent), (1, 1, 1, 0));
    assert_eq!(events[6].room_pupil_count, Some(0), "no session runs in B any more");
}

#[tokio::test]
async fn session_events_carry_the_room_as_the_board_shows_it() {
    let Setup { app: _app, mut active, mut presence, school: s } = setup(1).await;
    let cursor = board(&mut presence, As::Admin).await.cursor;
    let mut admin = watch(&mut presence, As::Admin, &cursor).await;
    let mut erika = watch(&mut presence, As::Staff(s.staff), &cursor).await;
    let session = school::start_session(&mut active, s.rooms[2], s.activity, s.staff).await;
    for (stream, mine) in [(&mut admin, false), (&mut erika, true)] {
        let e = next_event(stream).await;
        assert_eq!((e.kind(), e.session_id, e.room_id), (Kind::SessionStarted, Some(session), Some(s.rooms[2])));
        let room = e.room.expect("the room tile");
        assert_eq!((room.room_name.as_str(), room.activity_name.as_str(), room.mine), ("Raum C", "Freispiel", mine));
        assert_eq!(room.supervisors.iter().map(|x| x.staff_id).collect::<Vec<_>>(), [s.staff]);
        assert_eq!((room.pupil_count, room.pupils.len(), room.pupils_redacted), (0, 0, false));
    }
}

#[tokio::test]
async fn resuming_with_the_last_cursor_delivers_exactly_the_missed_events() {
    let Setup { app: _app, mut active, mut presence, school: s } = setup(4).await;
    school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let mut stream = watch(&mut presence, As::Admin, "").await;
    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;
    scan(&mut active, &s.readers[0], &s.pupils[1].tag).await;
    let seen = next_events(&mut stream, 2).await;
    drop(stream);

    // Changes while disconnected.
    for i in [2, 3, 0] {
        scan(&mut active, &s.readers[0], &s.pupils[i].tag).await;
    }
    let mut resumed = watch(&mut presence, As::Admin, &seen[1].cursor).await;
    let missed = next_events(&mut resumed, 3).await;
    let room = Some(s.rooms[0]);
    assert_eq!(
        shape(&missed),
        [
            (Kind::CheckedIn, Some(s.pupils[2].id), room),
            (Kind::CheckedIn, Some(s.pupils[3].id), room),
            (Kind::CheckedOut, Some(s.pupils[0].id), room),
        ]
    );
    // Nothing before them again, nothing twice: the next event is the sentinel.
    scan(&mut active, &s.readers[0], &s.pupils[1].tag).await;
    let sentinel = next_event(&mut resumed).await;
    assert_eq!(shape([&sentinel]), [(Kind::CheckedOut, Some(s.pupils[1].id), room)]);

    // Resuming from a cursor in the middle replays from there.
    let mut again = watch(&mut presence, As::Admin, &missed[0].cursor).await;
    let replay = next_events(&mut again, 3).await;
    assert_eq!(
        replay.iter().map(|e| e.cursor.clone()).collect::<Vec<_>>(),
        [missed[1].cursor.clone(), missed[2].cursor.clone(), sentinel.cursor.clone()]
    );
}

#[tokio::test]
async fn the_board_cursor_yields_exactly_what_the_board_does_not_show() {
    let Setup { app, mut active, mut presence, school: s } = setup(3).await;
    let session = school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    // A transaction that wrote an event and is still open while the board is read: it has
    // a lower transaction id than the scan that commits after it and is on the board.
    let mut late = app.db.conn().await;
    diesel::sql_query("BEGIN").execute(&mut late).await.expect("begin");
    events::record(&mut late, PresenceChange::session(ChangeKind::SupervisorsChanged, session, s.rooms[0]))
        .await
        .expect("event in the open transaction");
    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;

    let snapshot = board(&mut presence, As::Admin).await;
    assert_eq!(room_by_id(&snapshot, s.rooms[0]).pupil_count, 1, "the scan is on the board");
    diesel::sql_query("COMMIT").execute(&mut late).await.expect("commit");
    scan(&mut active, &s.readers[0], &s.pupils[1].tag).await;

    let mut stream = watch(&mut presence, As::Admin, &snapshot.cursor).await;
    let events = next_events(&mut stream, 2).await;
    let room = Some(s.rooms[0]);
    assert_eq!(
        shape(&events),
        [(Kind::SupervisorsChanged, None, room), (Kind::CheckedIn, Some(s.pupils[1].id), room)],
        "the late commit is delivered, the scan already on the board is not"
    );
    scan(&mut active, &s.readers[0], &s.pupils[2].tag).await;
    assert_eq!(shape([&next_event(&mut stream).await]), [(Kind::CheckedIn, Some(s.pupils[2].id), room)]);

    // The first event's cursor still knows what the board held: resuming from it skips
    // the scan on the board too.
    let mut resumed = watch(&mut presence, As::Admin, &events[0].cursor).await;
    assert_eq!(next_event(&mut resumed).await.cursor, events[1].cursor);
}

#[tokio::test]
async fn the_stream_redacts_pupils_per_caller() {
    let Setup { app, mut active, mut presence, school: s } = setup(3).await;
    let mut conn = app.db.conn().await;
    let g = groups(&mut conn, &[s.pupils[0].id], &[s.pupils[1].id]).await;
    let sam = fixtures::staff(&mut conn, "Sam", "Springer").await;
    start_session(&mut active, s.rooms[0], Some(s.activity), None, vec![s.staff]).await;
    start_session(&mut active, s.rooms[1], Some(s.activity), None, vec![sam]).await;
    let cursor = board(&mut presence, As::Admin).await.cursor;
    let callers = [As::Admin, As::Staff(g.fox_teacher), As::Staff(g.owl_teacher), As::Staff(s.staff)];
    let mut streams = Vec::new();
    for c in callers {
        streams.push(watch(&mut presence, c, &cursor).await);
    }
    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await; // fox into A (Erika's)
    scan(&mut active, &s.readers[1], &s.pupils[1].tag).await; // owl into B (Sam's)
    scan(&mut active, &s.readers[0], &s.pupils[1].tag).await; // owl moves B → A
    scan(&mut active, &s.gate, &s.pupils[2].tag).await; // no group, arrives

    let (fox, owl, none) = (Some(s.pupils[0].id), Some(s.pupils[1].id), Some(s.pupils[2].id));
    let expected: [[Option<i64>; 4]; 4] = [
        [fox, owl, owl, none],   // admin: everyone
        [fox, None, None, None], // foxes' teacher: the fox only
        [None, owl, owl, None],  // owls' teacher: the owl only
        [fox, None, owl, None],  // Erika (room A): who is in or enters A
    ];
    for (stream, want) in streams.iter_mut().zip(expected) {
        let events = next_events(stream, 4).await;
        let got: Vec<Option<i64>> = events.iter().map(|e| e.pupil.as_ref().map(|p| p.student_id)).collect();
        assert_eq!(got, want);
        // Room ids and counts are there for everyone.
        assert_eq!(events[2].room_id, Some(s.rooms[0]));
        assert_eq!(events[2].from_room_id, Some(s.rooms[1]));
        assert!(events.iter().all(|e| e.counts.is_some()));
    }
}

/// A second active server (its own hub) on the same database, like a second replica.
async fn second_replica(app: &TestApp) -> (std::net::SocketAddr, ShutdownToken) {
    let ctx = phoenix::services::ServiceContext::new(app.db.pool().await, app.config.clone());
    let shutdown = ShutdownToken::new();
    let running = phoenix::services::start(&[Domain::Active], &ctx, app.config.listen_host, 0, false, &shutdown)
        .await
        .expect("second active server");
    (running[0].addr, shutdown)
}

#[tokio::test]
async fn a_change_committed_through_one_replica_reaches_watchers_of_another() {
    let Setup { app, mut active, school: s, .. } = setup(2).await;
    let (addr, replica) = second_replica(&app).await;
    let (_, token) = admin_token(&app).await;
    let mut other = PresenceServiceClient::new(phoenix_tests::app::connect(addr).await);
    let board = other
        .get_presence_board(bearer(pb::GetPresenceBoardRequest {}, &token))
        .await
        .expect("board on the replica")
        .into_inner();
    let mut stream = other
        .watch_presence(bearer(pb::WatchPresenceRequest { cursor: board.cursor }, &token))
        .await
        .expect("watch on the replica")
        .into_inner();
    // Through the first server.
    let session = school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;
    let events = next_events(&mut stream, 2).await;
    assert_eq!(
        shape(&events),
        [(Kind::SessionStarted, None, Some(s.rooms[0])), (Kind::CheckedIn, Some(s.pupils[0].id), Some(s.rooms[0]))]
    );
    assert_eq!(events[1].session_id, Some(session));
    replica.cancel();
}

#[tokio::test]
async fn bad_and_expired_cursors_are_refused() {
    let Setup { app, mut active, mut presence, school: s } = setup(2).await;
    for bad in ["not a cursor!", "AQ", "AQAAAAAAAAAAAAAAAAAAAAE"] {
        assert_invalid(
            presence.watch_presence(pb::WatchPresenceRequest { cursor: bad.into() }).await.map(|_| ()),
            &["cursor"],
        );
    }
    // Well-formed but ahead of the database: not a position of this log.
    let ahead = phoenix_active::presence::Cursor::after(phoenix_active::presence::cursor::Position::new(1 << 40, 1));
    assert_invalid(
        presence.watch_presence(pb::WatchPresenceRequest { cursor: ahead.encode() }).await.map(|_| ()),
        &["cursor"],
    );

    school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let old = board(&mut presence, As::Admin).await.cursor;
    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;
    let mut stream = watch(&mut presence, As::Admin, &old).await;
    let event = next_event(&mut stream).await;
    drop(stream);
    scan(&mut active, &s.readers[0], &s.pupils[1].tag).await;

    // The first scan's event is now older than the retention and purged.
    let mut conn = app.db.conn().await;
    diesel::sql_query(
        "UPDATE active.presence_events SET occurred_at = now() - interval '3 days' \
         WHERE student_id = $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(s.pupils[0].id)
    .execute(&mut conn)
    .await
    .expect("age the event");
    let purged = phoenix_active::presence::purge(&mut conn, Duration::from_secs(48 * 3600)).await.expect("purge");
    assert_eq!(purged, Some(2), "the session start and the first scan (a prefix in stream order)");

    for expired in [&old] {
        let status = assert_code(
            presence.watch_presence(pb::WatchPresenceRequest { cursor: expired.clone() }).await,
            Code::FailedPrecondition,
        );
        assert_eq!(reason(&status).as_deref(), Some(phoenix_active::presence::CURSOR_EXPIRED));
    }
    // The purged event's own cursor is still good: nothing after it was purged.
    let mut stream = watch(&mut presence, As::Admin, &event.cursor).await;
    assert_eq!(shape([&next_event(&mut stream).await]), [(Kind::CheckedIn, Some(s.pupils[1].id), Some(s.rooms[0]))]);
}

/// A presence server of our own with `settings` (heartbeats, tiny buffers), behind the
/// authorization layer, on an ephemeral port.
async fn custom_server(app: &TestApp, settings: PresenceSettings) -> (std::net::SocketAddr, ShutdownToken) {
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

#[tokio::test]
async fn an_idle_stream_gets_heartbeats_whose_cursor_resumes_exactly() {
    let Setup { app, mut active, school: s, .. } = setup(1).await;
    let mut settings = PresenceSettings::new(chrono_tz::Europe::Berlin);
    settings.heartbeat = Duration::from_millis(100);
    let (addr, shutdown) = custom_server(&app, settings).await;
    let mut client = PresenceServiceClient::new(phoenix_tests::app::connect(addr).await);
    let (_, token) = admin_token(&app).await;
    school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let mut stream =
        client.watch_presence(bearer(pb::WatchPresenceRequest::default(), &token)).await.expect("watch").into_inner();
    let beat = next_message(&mut stream).await;
    assert_eq!(beat.kind(), Kind::Heartbeat);
    assert!(beat.pupil.is_none() && beat.room_id.is_none() && !beat.cursor.is_empty());
    assert_eq!(beat.counts.map(|c| c.total), Some(1));
    drop(stream);

    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;
    let mut resumed = client
        .watch_presence(bearer(pb::WatchPresenceRequest { cursor: beat.cursor }, &token))
        .await
        .expect("resume")
        .into_inner();
    assert_eq!(
        shape([&next_event(&mut resumed).await]),
        [(Kind::CheckedIn, Some(s.pupils[0].id), Some(s.rooms[0]))],
        "the heartbeat's position: nothing before it again, nothing after it lost"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_burst_larger_than_every_buffer_arrives_complete_and_in_order() {
    let Setup { app, mut active, school: s, .. } = setup(1).await;
    let mut settings = PresenceSettings::new(chrono_tz::Europe::Berlin);
    settings.channel_capacity = 1; // a watcher that is behind by two batches lags
    let (addr, shutdown) = custom_server(&app, settings).await;
    // A client with a tiny HTTP/2 window that reads nothing during the burst: the watcher
    // blocks on it, misses batches and must re-read them from the table.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .initial_stream_window_size(Some(1024))
        .initial_connection_window_size(Some(1024))
        .connect()
        .await
        .expect("connect");
    let mut client = PresenceServiceClient::new(channel);
    let (_, token) = admin_token(&app).await;
    let session = school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let mut stream =
        client.watch_presence(bearer(pb::WatchPresenceRequest::default(), &token)).await.expect("watch").into_inner();
    // 6,000 events in 12 transactions (each a full page), then 100 single ones.
    let mut conn = app.db.conn().await;
    for _ in 0..12 {
        diesel::sql_query(format!(
            "WITH e AS (INSERT INTO active.presence_events (kind, session_id, room_id) \
             SELECT 'supervisors_changed', {session}, {} FROM generate_series(1, 500) RETURNING id) \
             SELECT pg_notify('phoenix_presence', max(id)::text) FROM e",
            s.rooms[0]
        ))
        .execute(&mut conn)
        .await
        .expect("burst");
    }
    for _ in 0..100 {
        events::record(&mut conn, PresenceChange::session(ChangeKind::SupervisorsChanged, session, s.rooms[0]))
            .await
            .expect("event");
    }
    let events = next_events(&mut stream, 6100).await;
    let positions: Vec<_> =
        events.iter().map(|e| phoenix_active::presence::Cursor::decode(&e.cursor).expect("a cursor").after).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "in stream order, no event twice");
    assert!(events.iter().all(|e| e.kind() == Kind::SupervisorsChanged));
    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;
    assert_eq!(next_event(&mut stream).await.kind(), Kind::CheckedIn, "nothing left over");
    shutdown.cancel();
}

#[tokio::test]
async fn the_hub_reconnects_its_listen_connection_and_loses_nothing() {
    let Setup { app, mut active, mut presence, school: s } = setup(2).await;
    school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let mut stream = watch(&mut presence, As::Admin, "").await;
    let mut conn = app.db.conn().await;
    let hub_pids = async |conn: &mut AsyncPgConnection| -> Vec<i32> {
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
        }
        diesel::sql_query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
        )
        .bind::<diesel::sql_types::Text, _>(phoenix_active::presence::hub::APPLICATION_NAME)
        .load::<Pid>(conn)
        .await
        .expect("pg_stat_activity")
        .into_iter()
        .map(|p| p.pid)
        .collect()
    };
    let before = hub_pids(&mut conn).await;
    assert_eq!(before.len(), 1, "one LISTEN connection per process");
    diesel::sql_query("SELECT pg_terminate_backend($1)")
        .bind::<diesel::sql_types::Integer, _>(before[0])
        .execute(&mut conn)
        .await
        .expect("terminate the hub's connection");
    // Changes while the hub reconnects.
    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;
    scan(&mut active, &s.readers[0], &s.pupils[1].tag).await;
    let events = next_events(&mut stream, 2).await;
    assert_eq!(
        shape(&events),
        [
            (Kind::CheckedIn, Some(s.pupils[0].id), Some(s.rooms[0])),
            (Kind::CheckedIn, Some(s.pupils[1].id), Some(s.rooms[0]))
        ]
    );
    // A new LISTEN connection replaced the old one.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = hub_pids(&mut conn).await;
        if now.len() == 1 && now[0] != before[0] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the hub did not reconnect: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;
    assert_eq!(next_event(&mut stream).await.kind(), Kind::CheckedOut);
}

#[tokio::test]
async fn shutdown_ends_open_streams_so_the_server_drains() {
    let Setup { app, mut active, mut presence, school: s } = setup(1).await;
    school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let mut stream = watch(&mut presence, As::Admin, "").await;
    tokio::time::timeout(WAIT, app.stop()).await.expect("the server drains with a stream open");
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    match end {
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        Ok(None) => {} // the connection closed cleanly after the status
        Ok(Some(_)) => unreachable!(),
    }
}

#[tokio::test]
async fn a_real_reader_scan_over_mqtt_reaches_the_stream() {
    let mut stack = phoenix_tests::reader::ReaderStack::spawn(1).await;
    let s = stack.school.clone();
    school::start_session(&mut stack.active, s.rooms[0], s.activity, s.staff).await;
    let mut presence = PresenceServiceClient::new(stack.app.test_channel(Domain::Active).await);
    let cursor = board(&mut presence, As::Admin).await.cursor;
    let mut stream = watch(&mut presence, As::Staff(s.staff), &cursor).await;
    let mut reader = stack.reader(&s.readers[0]).await;
    let signed = reader.sign("mqtt-presence-1", &s.pupils[0].tag, Utc::now());
    let result = reader.send(&signed, WAIT).await.expect("result").expect_result().clone();
    assert_eq!(result.code, phoenix_reader_protocol::Code::Ok);
    let event = next_event(&mut stream).await;
    assert_eq!(shape([&event]), [(Kind::CheckedIn, Some(s.pupils[0].id), Some(s.rooms[0]))]);
    assert_eq!(event.pupil.expect("the room's supervisor sees the pupil").display_name, "Kind0 T.");
    stack.stop().await;
}
