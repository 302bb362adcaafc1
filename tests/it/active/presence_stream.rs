//! `phoenix.active.v1.PresenceService` over real gRPC against real PostgreSQL: the live stream
//! driven by real scans (ProcessScan and the MQTT bridge), resuming from event and board
//! cursors without gaps or duplicates, redaction in the stream and cursor errors.
//!
//! "Nothing else was delivered" is asserted with a sentinel: after the expected events a
//! further change is made, and the next event must be that sentinel. Timeouts only guard
//! against hangs.

use std::time::Duration;

use chrono::Utc;
use diesel_async::RunQueryDsl;
use phoenix_active::events::{self, ChangeKind, PresenceChange};
use phoenix_common::domain::Domain;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::PresenceEventKind as Kind;
use phoenix_proto::active::v1::presence_service_client::PresenceServiceClient;
use phoenix_tests::fixtures;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, reason};
use phoenix_tests::school;
use tonic::Code;

use super::presence_helpers::*;

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

#[tokio::test]
async fn bad_and_expired_cursors_are_refused() {
    let Setup { app, mut active, mut presence, school: s } = setup(2).await;
    for bad in ["not a cursor!", "AQ", "AQAAAAAAAAAAAAAAAAAAAAE"] {
        assert_invalid(
            presence.watch_presence(pb::WatchPresenceRequest { cursor: bad.into(), alerts: false }).await.map(|_| ()),
            &["cursor"],
        );
    }
    // Well-formed but ahead of the database: not a position of this log.
    let ahead = phoenix_active::presence::Cursor::after(phoenix_active::presence::cursor::Position::new(1 << 40, 1));
    assert_invalid(
        presence.watch_presence(pb::WatchPresenceRequest { cursor: ahead.encode(), alerts: false }).await.map(|_| ()),
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
            presence.watch_presence(pb::WatchPresenceRequest { cursor: expired.clone(), alerts: false }).await,
            Code::FailedPrecondition,
        );
        assert_eq!(reason(&status).as_deref(), Some(phoenix_active::presence::CURSOR_EXPIRED));
    }
    // The purged event's own cursor is still good: nothing after it was purged.
    let mut stream = watch(&mut presence, As::Admin, &event.cursor).await;
    assert_eq!(shape([&next_event(&mut stream).await]), [(Kind::CheckedIn, Some(s.pupils[1].id), Some(s.rooms[0]))]);
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
