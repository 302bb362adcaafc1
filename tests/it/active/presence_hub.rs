//! `phoenix.active.v1.PresenceService` over real gRPC against real PostgreSQL: delivery across
//! replicas, heartbeats, bursts larger than every buffer, the hub's reconnect and the
//! server's shutdown with open streams.
//!
//! "Nothing else was delivered" is asserted with a sentinel: after the expected events a
//! further change is made, and the next event must be that sentinel. Timeouts only guard
//! against hangs.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_active::events::{self, ChangeKind, PresenceChange};
use phoenix_active::presence::PresenceSettings;
use phoenix_proto::active::v1 as pb;
use phoenix_proto::active::v1::PresenceEventKind as Kind;
use phoenix_proto::active::v1::presence_service_client::PresenceServiceClient;
use phoenix_tests::auth::{admin_token, bearer};
use phoenix_tests::grpc::As;
use phoenix_tests::school;
use tonic::Code;

use super::presence_helpers::*;

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
        .watch_presence(bearer(pb::WatchPresenceRequest { cursor: board.cursor, alerts: false }, &token))
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
async fn an_idle_stream_gets_heartbeats_whose_cursor_resumes_exactly() {
    let Setup { app, mut active, school: s, .. } = setup(1).await;
    let mut settings = PresenceSettings::new(chrono_tz::Europe::Berlin);
    settings.heartbeat = Duration::from_millis(100);
    let Admin { mut client, token, shutdown } = Admin::on_custom_server(&app, settings).await;
    school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let mut stream = watch_from_now(&mut client, &token).await;
    let beat = next_message(&mut stream).await;
    assert_eq!(beat.kind(), Kind::Heartbeat);
    assert!(beat.pupil.is_none() && beat.room_id.is_none() && !beat.cursor.is_empty());
    assert_eq!(beat.counts.map(|c| c.total), Some(1));
    drop(stream);

    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;
    let mut resumed = client
        .watch_presence(bearer(pb::WatchPresenceRequest { cursor: beat.cursor, alerts: false }, &token))
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
async fn each_event_carries_the_counts_after_it_and_a_change_without_an_event_follows_with_the_recount() {
    let Setup { app, mut active, school: s, .. } = setup(4).await;
    let mut settings = PresenceSettings::new(chrono_tz::Europe::Berlin);
    settings.heartbeat = Duration::from_millis(100);
    let Admin { mut client, token, shutdown } = Admin::on_custom_server(&app, settings).await;
    let session = school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let mut stream = watch_from_now(&mut client, &token).await;
    for pupil in &s.pupils[..3] {
        scan(&mut active, &s.readers[0], &pupil.tag).await;
    }
    active.end_session(pb::EndSessionRequest { id: session }).await.expect("end");

    let counts = |e: &pb::PresenceEvent| {
        let c = e.counts.expect("counts");
        (c.in_room, c.in_transit, c.absent, c.sick, c.total, e.room_pupil_count)
    };
    // After each change (and the room's pupils): each check-in moves one pupil, ending the
    // session everyone in its room.
    let after =
        [(1, 0, 3, 0, 4, Some(1)), (2, 0, 2, 0, 4, Some(2)), (3, 0, 1, 0, 4, Some(3)), (0, 3, 1, 0, 4, Some(0))];
    let events = next_events(&mut stream, 4).await;
    let seen: Vec<_> = events.iter().map(counts).collect();
    // Events read in one page share its counts: those after the page's last change, never older.
    let mut at = 0;
    for (i, c) in seen.iter().enumerate() {
        at = (at.max(i)..after.len())
            .find(|&j| after[j] == *c)
            .unwrap_or_else(|| panic!("event {i} carries {c:?}, not the counts after it or a later change: {seen:?}"));
    }
    assert_eq!(seen.last(), after.last(), "the last event's counts are the final ones");

    // Changes that write no presence event: a sick flag, a pupil deactivated.
    let mut conn = app.db.conn().await;
    for sql in [
        format!("UPDATE users.students SET sick = true, sick_since = now() WHERE id = {}", s.pupils[3].id),
        format!("UPDATE users.students SET deactivated_at = now() WHERE id = {}", s.pupils[0].id),
    ] {
        diesel::sql_query(sql).execute(&mut conn).await.expect("change without an event");
    }
    let recounted = async {
        loop {
            let m = next_message(&mut stream).await;
            if m.kind() == Kind::Heartbeat && m.counts.is_some_and(|c| c.sick == 1 && c.total == 3) {
                return m;
            }
        }
    };
    let beat = tokio::time::timeout(WAIT, recounted).await.expect("a heartbeat with the recount within the guard time");
    assert_eq!(counts(&beat), (0, 2, 0, 1, 3, None), "the recount has both changes");
    shutdown.cancel();
}

#[tokio::test]
async fn an_event_read_while_a_later_commit_is_visible_carries_counts_no_snapshot_lacks() {
    let Setup { app, mut active, school: s, .. } = setup(4).await;
    let mut settings = PresenceSettings::new(chrono_tz::Europe::Berlin);
    settings.poll = Duration::from_secs(3600); // only notifications and the quick retry move the hub
    let Admin { mut client, token, shutdown } = Admin::on_custom_server(&app, settings).await;
    let session = school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let mut stream = watch_from_now(&mut client, &token).await;
    for pupil in &s.pupils[..2] {
        scan(&mut active, &s.readers[0], &pupil.tag).await;
    }
    assert_eq!(next_events(&mut stream, 2).await.len(), 2);
    // Two transactions with ids hold the horizon: `early` below the third check-in, `late`
    // between it and the session's end. When `early` commits, the hub reads the check-in's
    // page in a snapshot that already sees the session ended, whose event is still above
    // the horizon (behind `late`).
    let in_transaction = async || {
        let mut conn = app.db.conn().await;
        diesel::sql_query("BEGIN").execute(&mut conn).await.expect("begin");
        diesel::sql_query("SELECT pg_current_xact_id()").execute(&mut conn).await.expect("a transaction id");
        conn
    };
    let mut early = in_transaction().await;
    scan(&mut active, &s.readers[0], &s.pupils[2].tag).await;
    let mut late = in_transaction().await;
    active.end_session(pb::EndSessionRequest { id: session }).await.expect("end");
    diesel::sql_query("COMMIT").execute(&mut early).await.expect("commit early");
    let checked_in = next_event(&mut stream).await;
    assert_eq!(checked_in.kind(), Kind::CheckedIn);
    let c = checked_in.counts.expect("counts");
    let seen = (c.in_room, c.in_transit, c.absent, c.sick, c.total);
    // After the check-in (3 in the room), or after the session's end its page's snapshot
    // holds (3 in transit); never one pupil already out and two still in.
    assert!([(3, 0, 1, 0, 4), (0, 3, 1, 0, 4)].contains(&seen), "the check-in carries {seen:?}");
    assert_eq!(checked_in.room_pupil_count, Some(c.in_room), "the room's pupils from the same snapshot");
    diesel::sql_query("COMMIT").execute(&mut late).await.expect("commit late");
    let ended = next_event(&mut stream).await;
    assert_eq!(ended.kind(), Kind::SessionEnded);
    assert_eq!(ended.counts.map(|c| (c.in_room, c.in_transit, c.absent)), Some((0, 3, 1)));
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
    let mut stream = watch_from_now(&mut client, &token).await;
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
async fn a_commit_behind_an_open_transaction_arrives_when_that_one_commits_and_after_it() {
    let Setup { app, mut active, school: s, .. } = setup(2).await;
    // No safety poll during the test: only notifications (and the hub's quick retry) move it.
    let mut settings = PresenceSettings::new(chrono_tz::Europe::Berlin);
    settings.poll = Duration::from_secs(3600);
    let Admin { mut client, token, shutdown } = Admin::on_custom_server(&app, settings).await;
    let session = school::start_session(&mut active, s.rooms[0], s.activity, s.staff).await;
    let mut stream = watch_from_now(&mut client, &token).await;
    // An older transaction writes an event and stays open while a scan commits after it: the
    // scan's event is above the horizon until the older one ends.
    let mut early = app.db.conn().await;
    diesel::sql_query("BEGIN").execute(&mut early).await.expect("begin");
    events::record(&mut early, PresenceChange::session(ChangeKind::SupervisorsChanged, session, s.rooms[0]))
        .await
        .expect("event in the open transaction");
    scan(&mut active, &s.readers[0], &s.pupils[0].tag).await;
    diesel::sql_query("COMMIT").execute(&mut early).await.expect("commit");
    let events = next_events(&mut stream, 2).await;
    let room = Some(s.rooms[0]);
    assert_eq!(
        shape(&events),
        [(Kind::SupervisorsChanged, None, room), (Kind::CheckedIn, Some(s.pupils[0].id), room)],
        "the older transaction's event first, then the scan's, each once"
    );
    scan(&mut active, &s.readers[0], &s.pupils[1].tag).await;
    assert_eq!(
        shape([&next_event(&mut stream).await]),
        [(Kind::CheckedIn, Some(s.pupils[1].id), room)],
        "nothing else in between"
    );
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

/// An admin's client and token on a presence server of our own with `settings`.
struct Admin {
    client: PresenceServiceClient<tonic::transport::Channel>,
    token: String,
    shutdown: phoenix_common::server::ShutdownToken,
}

impl Admin {
    async fn on_custom_server(app: &phoenix_tests::TestApp, settings: PresenceSettings) -> Self {
        let (addr, shutdown) = custom_server(app, settings).await;
        let client = PresenceServiceClient::new(phoenix_tests::app::connect(addr).await);
        let (_, token) = admin_token(app).await;
        Self { client, token, shutdown }
    }
}

/// A stream of every change from now on (no cursor).
async fn watch_from_now(
    client: &mut PresenceServiceClient<tonic::transport::Channel>,
    token: &str,
) -> tonic::codec::Streaming<pb::WatchPresenceResponse> {
    client.watch_presence(bearer(pb::WatchPresenceRequest::default(), token)).await.expect("watch").into_inner()
}
