//! The reader pipeline end to end: a real MQTT client as the reader publishes signed scans
//! to a real broker; the gateway bridge verifies them and calls ProcessScan; the Result
//! arrives on the result topic; the database holds the effect.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_db::schema::{active, iot, users};
use phoenix_gateway::sim::{SimReader, timestamp};
use phoenix_reader_protocol::{Code, Outcome, Scan, ScanResult};
use phoenix_tests::reader::ReaderStack;
use phoenix_tests::school::{self, attendance_open, open_visit_count, open_visit_room, visit_count};

const WAIT: Duration = Duration::from_secs(20);

async fn send(reader: &mut SimReader, scan_id: &str, tag: &str, at: DateTime<Utc>) -> ScanResult {
    let scan = reader.sign(scan_id, tag, at);
    reader.send(&scan, WAIT).await.expect("a result").expect_result().clone()
}

fn oc(r: &ScanResult) -> (Outcome, Code) {
    (r.outcome, r.code)
}

async fn device_logs(stack: &ReaderStack, device: &str, event: &str) -> i64 {
    let mut conn = stack.app.db.conn().await;
    iot::device_logs::table
        .inner_join(iot::devices::table)
        .filter(iot::devices::device_id.eq(device))
        .filter(iot::device_logs::event.eq(event))
        .count()
        .get_result(&mut conn)
        .await
        .expect("count logs")
}

/// Opens sessions in rooms A, B, C and the small room (D stays closed).
async fn open_rooms(stack: &mut ReaderStack) {
    let s = stack.school.clone();
    for room in [s.rooms[0], s.rooms[1], s.rooms[2], s.small_room] {
        school::start_session(&mut stack.active, room, s.activity, s.staff).await;
    }
}

#[tokio::test]
async fn every_outcome_from_signed_message_to_result_and_database() {
    let mut stack = ReaderStack::spawn(6).await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let mut conn = stack.app.db.conn().await;
    let mut a = stack.reader(&s.readers[0]).await;
    let mut b = stack.reader(&s.readers[1]).await;
    let mut d = stack.reader(&s.readers[3]).await;
    let mut gate = stack.reader(&s.gate).await;
    let p = &s.pupils[0];
    let t = Utc::now() - Duration::from_secs(600);
    let at = |secs: i64| t + chrono::Duration::seconds(secs);

    // Arrival at the entrance, then check-in, transfer, check-out, departure.
    let r = send(&mut gate, "e2e-1", &p.tag, at(0)).await;
    assert_eq!(oc(&r), (Outcome::CheckedIn, Code::Ok));
    assert_eq!(attendance_open(&mut conn, p.id).await, Some(true));
    let scan = a.sign("e2e-2", &p.tag, at(1));
    let received = a.send(&scan, WAIT).await.expect("result");
    assert_eq!(
        received.raw,
        format!(
            r#"{{"scan_id":"e2e-2","outcome":"checked_in","code":"ok","message":"Eingecheckt: Raum A","student":{{"id":{},"display_name":"Kind0 T."}},"room":{{"id":{},"name":"Raum A"}},"duplicate":false}}"#,
            p.id, s.rooms[0]
        ),
        "the Result JSON is byte for byte the contract's"
    );
    assert_eq!(open_visit_room(&mut conn, p.id).await, Some(s.rooms[0]));
    let r = send(&mut b, "e2e-3", &p.tag, at(2)).await;
    assert_eq!(oc(&r), (Outcome::Transferred, Code::Ok));
    assert_eq!(open_visit_room(&mut conn, p.id).await, Some(s.rooms[1]));
    let r = send(&mut b, "e2e-4", &p.tag, at(3)).await;
    assert_eq!(oc(&r), (Outcome::CheckedOut, Code::Ok));
    assert_eq!(open_visit_room(&mut conn, p.id).await, None);
    send(&mut a, "e2e-5", &p.tag, at(4)).await;
    let r = send(&mut gate, "e2e-6", &p.tag, at(5)).await;
    assert_eq!(oc(&r), (Outcome::CheckedOut, Code::Ok), "gone home");
    assert_eq!(open_visit_room(&mut conn, p.id).await, None);
    assert_eq!(attendance_open(&mut conn, p.id).await, Some(false));
    assert_eq!(visit_count(&mut conn, p.id).await, 3);

    // Refusals, each answered on the result topic and changing nothing.
    let q = &s.pupils[1];
    let r = send(&mut d, "e2e-7", &q.tag, at(10)).await;
    assert_eq!(oc(&r), (Outcome::Rejected, Code::NoActiveSession));
    let r = send(&mut a, "e2e-8", "DEADBEEF00", at(11)).await;
    assert_eq!(oc(&r), (Outcome::Rejected, Code::UnknownTag));
    let mut c2 = stack.app.db.conn().await;
    phoenix_tests::fixtures::card(&mut c2, "0A0B0C0D", false).await;
    let r = send(&mut a, "e2e-9", "0a:0b:0c:0d", at(12)).await;
    assert_eq!(oc(&r), (Outcome::Rejected, Code::TagInactive));
    phoenix_tests::fixtures::card(&mut c2, "0A0B0C0E", true).await;
    phoenix_tests::fixtures::person(&mut c2, "Hans", "Hausmeister", Some("0A0B0C0E")).await;
    let r = send(&mut a, "e2e-10", "0A0B0C0E", at(13)).await;
    assert_eq!(oc(&r), (Outcome::Rejected, Code::NotAStudent));
    let r = send(&mut a, "e2e-11", &q.tag, Utc::now() - chrono::Duration::hours(25)).await;
    assert_eq!(oc(&r), (Outcome::Rejected, Code::StaleScan));
    assert_eq!(device_logs(&stack, &s.readers[0], "stale_scan").await, 1);
    let r = send(&mut a, "e2e-12", &q.tag, at(20)).await;
    assert_eq!(oc(&r), (Outcome::CheckedIn, Code::Ok));
    let r = send(&mut b, "e2e-13", &q.tag, at(19)).await;
    assert_eq!(oc(&r), (Outcome::Rejected, Code::Superseded));
    assert_eq!(open_visit_room(&mut conn, q.id).await, Some(s.rooms[0]));

    // Room full: capacity 2, three pupils.
    let mut small = stack.reader(&s.small_reader).await;
    for (i, pupil) in s.pupils[2..4].iter().enumerate() {
        let r = send(&mut small, &format!("full-{i}"), &pupil.tag, at(30)).await;
        assert_eq!(oc(&r), (Outcome::CheckedIn, Code::Ok));
    }
    let third = &s.pupils[4];
    let r = send(&mut small, "full-2", &third.tag, at(31)).await;
    assert_eq!(oc(&r), (Outcome::Rejected, Code::RoomFull));
    assert_eq!(r.room.as_ref().map(|r| r.id), Some(s.small_room));
    assert_eq!(visit_count(&mut conn, third.id).await, 0, "nothing written");
    assert_eq!(attendance_open(&mut conn, third.id).await, None, "no attendance either");

    // Malformed input from a known reader.
    a.publish_payload(&s.readers[0], r#"{"scan_id":"bad-1","tag":"04A1B2C3"}"#).await.expect("publish");
    let r = a.result_for("bad-1", WAIT).await.expect("malformed answered");
    assert_eq!(oc(r.expect_result()), (Outcome::Rejected, Code::Malformed));
    assert_eq!(
        r.raw,
        r#"{"scan_id":"bad-1","outcome":"rejected","code":"malformed","message":"Ungültige Nachricht","duplicate":false}"#
    );
    assert_eq!(device_logs(&stack, &s.readers[0], "malformed").await, 1);
    stack.stop().await;
}

#[tokio::test]
async fn a_scan_resent_three_times_has_one_effect() {
    let mut stack = ReaderStack::spawn(1).await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let mut a = stack.reader(&s.readers[0]).await;
    let p = &s.pupils[0];
    let scan = a.sign("dup-1", &p.tag, Utc::now());
    let first = a.send(&scan, WAIT).await.expect("result");
    assert!(!first.expect_result().duplicate);
    for _ in 0..3 {
        let again = a.send(&scan, WAIT).await.expect("result");
        assert!(again.expect_result().duplicate);
        assert_eq!(again.raw, first.raw.replace(r#""duplicate":false"#, r#""duplicate":true"#));
    }
    let mut conn = stack.app.db.conn().await;
    assert_eq!(visit_count(&mut conn, p.id).await, 1);
    assert_eq!(open_visit_room(&mut conn, p.id).await, Some(s.rooms[0]), "repeats did not toggle it out");
    let receipts: i64 = active::scan_receipts::table.count().get_result(&mut conn).await.expect("count");
    assert_eq!(receipts, 1);
    stack.stop().await;
}

#[tokio::test]
async fn forged_foreign_unknown_and_inactive_readers_are_refused_and_audited() {
    let mut stack = ReaderStack::spawn(1).await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let p = &s.pupils[0];
    let mut conn = stack.app.db.conn().await;

    // A made-up signature.
    let mut a = stack.reader(&s.readers[0]).await;
    let mut forged = a.sign("f-1", &p.tag, Utc::now());
    forged.sig = Some("0".repeat(64));
    let r = a.send(&forged, WAIT).await.expect("result");
    assert_eq!(oc(r.expect_result()), (Outcome::Rejected, Code::BadSignature));
    // No signature at all.
    let unsigned = Scan { sig: None, ..a.sign("f-2", &p.tag, Utc::now()) };
    let r = a.send(&unsigned, WAIT).await.expect("result");
    assert_eq!(oc(r.expect_result()), (Outcome::Rejected, Code::BadSignature));
    // Signed with another reader's key.
    let mut b = stack.reader_with_key(&s.readers[1], &stack.key(&s.readers[2])).await;
    let r = send(&mut b, "f-3", &p.tag, Utc::now()).await;
    assert_eq!(oc(&r), (Outcome::Rejected, Code::BadSignature));
    // A reader the system does not know.
    let mut ghost = stack.reader_with_key("ghost-01", &stack.key("ghost-01")).await;
    let r = send(&mut ghost, "f-4", &p.tag, Utc::now()).await;
    assert_eq!(oc(&r), (Outcome::Rejected, Code::UnknownDevice));
    // A reader taken out of service (correctly signed).
    diesel::update(iot::devices::table.filter(iot::devices::device_id.eq(&s.readers[2])))
        .set(iot::devices::status.eq("inactive"))
        .execute(&mut conn)
        .await
        .expect("deactivate");
    let mut c = stack.reader(&s.readers[2]).await;
    let r = send(&mut c, "f-5", &p.tag, Utc::now()).await;
    assert_eq!(oc(&r), (Outcome::Rejected, Code::DeviceInactive));

    assert_eq!(visit_count(&mut conn, p.id).await, 0, "no visit written");
    assert_eq!(attendance_open(&mut conn, p.id).await, None);
    assert_eq!(device_logs(&stack, &s.readers[0], "bad_signature").await, 1, "audited (one per window)");
    assert_eq!(device_logs(&stack, &s.readers[1], "bad_signature").await, 1);
    assert_eq!(device_logs(&stack, &s.readers[2], "device_inactive").await, 1);
    let stats = stack.stats();
    assert_eq!(stats.bad_signature, 3);
    assert_eq!(stats.unknown_device, 1);
    // Forged scans never reached ProcessScan: no receipts for them.
    let receipts: Vec<String> =
        active::scan_receipts::table.select(active::scan_receipts::scan_id).load(&mut conn).await.expect("receipts");
    assert_eq!(receipts, ["f-5"]);
    stack.stop().await;
}

#[tokio::test]
async fn authenticated_messages_and_status_drive_last_seen_and_online() {
    let mut stack = ReaderStack::spawn(1).await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let mut conn = stack.app.db.conn().await;
    let state = |device: String| {
        let url = stack.app.db.url().to_owned();
        async move {
            let mut c = <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&url)
                .await
                .expect("conn");
            let c = &mut c;
            iot::devices::table
                .filter(iot::devices::device_id.eq(device))
                .select((iot::devices::last_seen, iot::devices::offline_since))
                .first::<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)>(c)
                .await
                .expect("device")
        }
    };
    // The simulated reader announces `online` (retained): last_seen set.
    let mut a = stack.reader(&s.readers[0]).await;
    wait_until(|| state(s.readers[0].clone()), |(seen, off)| seen.is_some() && off.is_none()).await;
    a.publish_status("offline").await.expect("status");
    wait_until(|| state(s.readers[0].clone()), |(_, off)| off.is_some()).await;
    assert_eq!(device_logs(&stack, &s.readers[0], "offline").await, 1);
    // The next authenticated message marks it online again at once.
    send(&mut a, "o-1", &s.pupils[0].tag, Utc::now()).await;
    let (seen, off) = state(s.readers[0].clone()).await;
    assert!(off.is_none() && seen.is_some_and(|t| t > Utc::now() - chrono::Duration::seconds(30)));
    assert_eq!(device_logs(&stack, &s.readers[0], "online").await, 2);
    // Garbage status payloads are dropped.
    a.publish_status("maybe").await.expect("status");
    drop(a); // connection dropped without DISCONNECT: the broker publishes the Last Will
    wait_until(|| state(s.readers[0].clone()), |(_, off)| off.is_some()).await;
    let _ = &mut conn;
    stack.stop().await;
}

async fn wait_until<F, Fut, T>(mut probe: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = probe().await;
        if done(&value) {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not reached; last value {value:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A buffered scan: `(scan id, tag, scanned_at)`.
type Buffered = (String, String, DateTime<Utc>);

/// The final state of each pupil: room of the open visit, attendance open.
async fn final_state(stack: &ReaderStack) -> Vec<(Option<usize>, Option<bool>)> {
    let mut conn = stack.app.db.conn().await;
    let mut out = Vec::new();
    for p in &stack.school.pupils {
        assert!(open_visit_count(&mut conn, p.id).await <= 1);
        let room = open_visit_room(&mut conn, p.id)
            .await
            .map(|r| stack.school.rooms.iter().position(|x| *x == r).expect("a school room"));
        out.push((room, attendance_open(&mut conn, p.id).await));
    }
    out
}

#[tokio::test]
async fn an_offline_buffer_replayed_out_of_order_ends_as_in_order() {
    // 10 pupils × 5 scans: entrance, then rooms A, B, C, D, a minute apart (50 scans).
    let pupils = 10;
    let plan = |stack: &ReaderStack, base: DateTime<Utc>| {
        let s = &stack.school;
        let mut scans = Vec::new();
        for (i, p) in s.pupils.iter().enumerate() {
            let devices = [&s.gate, &s.readers[0], &s.readers[1], &s.readers[2], &s.readers[3]];
            for (k, d) in devices.iter().enumerate() {
                let at = base + chrono::Duration::minutes(k as i64) + chrono::Duration::seconds(i as i64);
                scans.push(((*d).clone(), format!("buf-{i}-{k}"), p.tag.clone(), at));
            }
        }
        scans
    };
    let base = Utc::now() - chrono::Duration::hours(2);

    // In order, one at a time.
    let mut ordered = ReaderStack::spawn(pupils).await;
    ordered.school.open_all_rooms(&mut ordered.active).await;
    let scans = plan(&ordered, base);
    let mut readers = std::collections::HashMap::new();
    for (device, _, _, _) in &scans {
        if !readers.contains_key(device) {
            readers.insert(device.clone(), ordered.reader(device).await);
        }
    }
    let mut sorted = scans.clone();
    sorted.sort_by_key(|(_, _, _, at)| *at);
    for (device, id, tag, at) in &sorted {
        let reader = readers.get_mut(device).expect("reader");
        send(reader, id, tag, *at).await;
    }
    let expected = final_state(&ordered).await;
    assert!(expected.iter().all(|(room, present)| *room == Some(3) && *present == Some(true)), "{expected:?}");
    drop(readers);
    ordered.stop().await;

    // The same 50 scans, shuffled, each reader replaying its buffer at once.
    let mut shuffled = ReaderStack::spawn(pupils).await;
    shuffled.school.open_all_rooms(&mut shuffled.active).await;
    let mut scans = plan(&shuffled, base);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..scans.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        scans.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    assert_ne!(scans, {
        let mut s = scans.clone();
        s.sort_by_key(|(_, _, _, at)| *at);
        s
    });
    let mut buffers: Vec<(String, Vec<Buffered>)> = Vec::new();
    for (device, id, tag, at) in scans {
        match buffers.iter_mut().find(|(d, _)| *d == device) {
            Some((_, b)) => b.push((id, tag, at)),
            None => buffers.push((device, vec![(id, tag, at)])),
        }
    }
    let mut tasks = Vec::new();
    for (device, buffer) in buffers {
        let mut reader = shuffled.reader(&device).await;
        tasks.push(tokio::spawn(async move {
            let signed: Vec<Scan> =
                buffer.iter().map(|(id, tag, at)| reader.sign_raw(id, tag, &timestamp(*at))).collect();
            let results = reader.replay(&signed, WAIT).await.expect("replayed");
            assert_eq!(results.len(), signed.len());
            results.into_iter().map(|r| r.expect_result().code).collect::<Vec<_>>()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.extend(t.await.expect("join"));
    }
    assert_eq!(codes.len(), 50);
    assert!(codes.iter().all(|c| matches!(c, Code::Ok | Code::Superseded)), "{codes:?}");
    assert_eq!(final_state(&shuffled).await, expected);
    shuffled.stop().await;
}

#[tokio::test]
async fn two_readers_scanning_one_pupil_concurrently_never_open_two_visits() {
    let mut stack = ReaderStack::spawn(1).await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let p = s.pupils[0].clone();
    let mut a = stack.reader(&s.readers[0]).await;
    let mut b = stack.reader(&s.readers[1]).await;
    let base = Utc::now() - chrono::Duration::minutes(30);
    let mut conn = stack.app.db.conn().await;
    for round in 0..100 {
        let at = base + chrono::Duration::milliseconds(round * 10);
        let sa = a.sign(&format!("a-{round}"), &p.tag, at);
        let sb = b.sign(&format!("b-{round}"), &p.tag, at);
        a.publish(&sa).await.expect("publish");
        b.publish(&sb).await.expect("publish");
        let (ra, rb) = tokio::join!(a.result_for(&sa.scan_id, WAIT), b.result_for(&sb.scan_id, WAIT));
        for r in [ra, rb] {
            let r = r.expect("answered");
            assert!(matches!(r.expect_result().code, Code::Ok | Code::Superseded), "{}", r.raw);
        }
        assert!(open_visit_count(&mut conn, p.id).await <= 1, "round {round}");
    }
    let overlapping: i64 = active::visits::table
        .filter(active::visits::student_id.eq(p.id))
        .filter(active::visits::exit_time.is_null())
        .count()
        .get_result(&mut conn)
        .await
        .expect("count");
    assert!(overlapping <= 1);
    stack.stop().await;
}

#[tokio::test]
async fn garbage_on_the_scan_topic_never_stops_the_gateway() {
    let mut stack = ReaderStack::spawn(1).await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let mut a = stack.reader(&s.readers[0]).await;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let valid_topic_devices = [s.readers[0].as_str(), "unknown-reader"];
    let invalid_topic_devices = ["bad!id", "sp ace", &"x".repeat(65)];
    for i in 0..1000u64 {
        let n = next();
        let payload: Vec<u8> = match i % 8 {
            0 => (0..(n % 300)).map(|_| next() as u8).collect(),
            1 => vec![b'{'; 4097 + (n % 6000) as usize],
            2 => br#"{"scan_id":"g","tag":"04A1B2C3","scanned_at":"2026-13-45T99:00:00Z","sig":"00"}"#.to_vec(),
            3 => br#"{"scan_id":123,"tag":[],"scanned_at":null}"#.to_vec(),
            4 => format!(
                r#"{{"scan_id":"{}","tag":"04A1B2C3","scanned_at":"2026-11-25T08:00:00Z","sig":"{:x}"}}"#,
                "s".repeat((n % 70) as usize),
                n
            )
            .into_bytes(),
            5 => b"null".to_vec(),
            6 => "\u{1F600}".repeat((n % 50) as usize).into_bytes(),
            _ => br#"{"scan_id":"","tag":"","scanned_at":"","sig":""}"#.to_vec(),
        };
        let device =
            if n % 5 == 0 { invalid_topic_devices[(n % 3) as usize] } else { valid_topic_devices[(n % 2) as usize] };
        a.publish_payload(device, payload).await.expect("publish");
    }
    // The gateway still answers a valid scan afterwards.
    let r = send(&mut a, "after-garbage", &s.pupils[0].tag, Utc::now()).await;
    assert_eq!(oc(&r), (Outcome::CheckedIn, Code::Ok));
    let stats = stack.stats();
    assert!(stats.received >= 1001, "{stats:?}");
    assert!(stats.dropped > 0, "invalid topic device ids are dropped and counted: {stats:?}");
    assert!(stats.malformed > 0, "{stats:?}");
    let mut conn = stack.app.db.conn().await;
    assert_eq!(visit_count(&mut conn, s.pupils[0].id).await, 1, "garbage wrote nothing");
    let pupils: i64 = users::students::table.count().get_result(&mut conn).await.expect("count");
    assert_eq!(pupils, 1);
    stack.stop().await;
}

#[tokio::test]
async fn a_gateway_restart_mid_stream_loses_no_scan_and_applies_none_twice() {
    let mut stack = ReaderStack::spawn(20).await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let mut a = stack.reader(&s.readers[0]).await;
    let at = Utc::now();
    let scans: Vec<Scan> = s.pupils.iter().enumerate().map(|(i, p)| a.sign(&format!("gr-{i}"), &p.tag, at)).collect();
    for scan in &scans[..10] {
        a.publish(scan).await.expect("publish");
    }
    stack.stop_bridge().await;
    // Published while no gateway is connected: held in its persistent session.
    for scan in &scans[10..] {
        a.publish(scan).await.expect("publish");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.start_bridge().await;
    for scan in &scans {
        // A reader re-sends whatever got no Result (docs/reader-pipeline.md); receipts make it safe.
        let r = match a.result_for(&scan.scan_id, Duration::from_secs(6)).await {
            Some(r) => r,
            None => a.send(scan, WAIT).await.expect("answered after re-send"),
        };
        assert_eq!(r.expect_result().code, Code::Ok, "{}", r.raw);
    }
    let mut conn = stack.app.db.conn().await;
    for p in &s.pupils {
        assert_eq!(visit_count(&mut conn, p.id).await, 1, "exactly one effect");
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_broker_restart_mid_stream_loses_no_scan_and_applies_none_twice() {
    let Some(mosquitto) = phoenix_tests::reader::Mosquitto::binary() else { return };
    let mut broker = phoenix_tests::reader::Mosquitto::start(mosquitto).await;
    let mut stack = ReaderStack::spawn_on(30, &broker.url()).await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let mut a = stack.reader(&s.readers[0]).await;
    let at = Utc::now();
    let scans: Vec<Scan> = s.pupils.iter().enumerate().map(|(i, p)| a.sign(&format!("br-{i}"), &p.tag, at)).collect();
    for scan in &scans[..10] {
        a.send(scan, WAIT).await.expect("answered before the restart");
    }
    // Mid-stream: ten more in flight, then the broker dies (losing sessions and queues).
    for scan in &scans[10..20] {
        a.publish(scan).await.expect("publish");
    }
    broker.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(broker.restart().await, "mosquitto restarts");
    let before = stack.stats().connections;
    // Readers re-send until they have a Result; the gateway reconnects and resubscribes.
    for scan in &scans[10..] {
        let r = match a.result_for(&scan.scan_id, Duration::from_millis(100)).await {
            Some(r) => r,
            None => a.send(scan, Duration::from_secs(40)).await.expect("answered after the restart"),
        };
        assert_eq!(r.expect_result().code, Code::Ok, "{}", r.raw);
    }
    assert!(stack.stats().connections > before, "the gateway reconnected");
    let mut conn = stack.app.db.conn().await;
    for p in &s.pupils {
        assert_eq!(visit_count(&mut conn, p.id).await, 1, "exactly one effect per scan");
        assert_eq!(open_visit_room(&mut conn, p.id).await, Some(s.rooms[0]));
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_reader_over_its_rate_limit_gets_rate_limited_and_nothing_is_stored() {
    let mut stack = ReaderStack::spawn(10).await;
    stack.stop_bridge().await;
    stack.reader_rate = (1, 3);
    stack.start_bridge().await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let mut a = stack.reader(&s.readers[0]).await;
    let at = Utc::now() - Duration::from_secs(60);
    let scans: Vec<Scan> =
        s.pupils.iter().enumerate().map(|(i, p)| a.sign(&format!("flood-{i}"), &p.tag, at)).collect();
    let results = a.replay(&scans, WAIT).await.expect("every scan answered");

    let mut conn = stack.app.db.conn().await;
    let mut limited = Vec::new();
    for (scan, received) in scans.iter().zip(&results) {
        let r = received.expect_result();
        let stored: i64 = active::scan_receipts::table
            .filter(active::scan_receipts::scan_id.eq(&scan.scan_id))
            .count()
            .get_result(&mut conn)
            .await
            .expect("receipts");
        if r.code == Code::RateLimited {
            assert_eq!(r.outcome, Outcome::Rejected);
            assert_eq!(stored, 0, "{}: a rate-limited scan leaves no receipt", scan.scan_id);
            limited.push(scan.clone());
        } else {
            assert_eq!(oc(r), (Outcome::CheckedIn, Code::Ok), "{}", scan.scan_id);
            assert_eq!(stored, 1);
        }
    }
    // Ten scans at once against a burst of three at one per second.
    assert!(limited.len() >= 3, "only {} of 10 scans were limited", limited.len());
    assert_eq!(stack.stats().rate_limited, limited.len() as u64);
    assert_eq!(device_logs(&stack, &s.readers[0], "rate_limited").await, 1, "logged once per window");

    // Not stored, so the same scan is applied once the reader's budget has refilled.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = a.send(&limited[0], WAIT).await.expect("result").expect_result().clone();
    assert_eq!((oc(&again), again.duplicate), ((Outcome::CheckedIn, Code::Ok), false));
}

/// The Result a reader receives for `tag` scanned at `at`, as published (byte for byte).
async fn raw(reader: &mut SimReader, scan_id: &str, tag: &str, at: DateTime<Utc>) -> String {
    let scan = reader.sign(scan_id, tag, at);
    reader.send(&scan, WAIT).await.expect("a result").raw
}

#[tokio::test]
async fn every_result_text_and_display_name_is_the_contracts_byte_for_byte() {
    // The Result is built by the database function active.process_scan: its German messages,
    // its optional fields and the display names (trimmed of Unicode white space, the initial
    // upper-cased by the full Unicode mapping, as phoenix_reader_protocol::display_name does).
    let mut stack = ReaderStack::spawn(0).await;
    let s = stack.school.clone();
    let mut conn = stack.app.db.conn().await;
    let names = [
        ("Jörg", "ßmith", "Jörg SS."),
        (" Anna Lena ", "östermann", "Anna Lena Ö."),
        ("Émile\u{a0}", "\u{2003}zola", "Émile Z."),
    ];
    let mut pupils = Vec::new();
    for (i, (first, last, shown)) in names.iter().enumerate() {
        assert_eq!(phoenix_reader_protocol::display_name(first, last), *shown, "the reader protocol's rule");
        let tag = phoenix_tests::fixtures::tag(100 + i);
        let id = phoenix_tests::fixtures::student(&mut conn, first, last, &tag).await;
        pupils.push((id, tag, *shown));
    }
    let one_place = phoenix_tests::fixtures::activity(&mut conn, "Einzelstunde", 1).await;
    diesel::update(phoenix_db::schema::facilities::rooms::table.find(s.rooms[3]))
        .set(phoenix_db::schema::facilities::rooms::capacity.eq(Some(0)))
        .execute(&mut conn)
        .await
        .expect("close room D");
    for room in [s.rooms[0], s.rooms[1], s.rooms[3]] {
        school::start_session(&mut stack.active, room, s.activity, s.staff).await;
    }
    school::start_session(&mut stack.active, s.rooms[2], one_place, s.staff).await;
    let (mut a, mut b) = (stack.reader(&s.readers[0]).await, stack.reader(&s.readers[1]).await);
    let (mut c, mut d) = (stack.reader(&s.readers[2]).await, stack.reader(&s.readers[3]).await);
    let mut gate = stack.reader(&s.gate).await;
    let t = Utc::now() - chrono::Duration::minutes(10);
    let at = |secs: i64| t + chrono::Duration::seconds(secs);
    let student = |i: usize| format!(r#""student":{{"id":{},"display_name":"{}"}}"#, pupils[i].0, pupils[i].2);
    let room = |i: usize, name: &str| format!(r#""room":{{"id":{},"name":"{name}"}}"#, s.rooms[i]);
    let ok = |id: &str, outcome: &str, message: &str, extra: String| {
        format!(
            r#"{{"scan_id":"{id}","outcome":"{outcome}","code":"ok","message":"{message}",{extra}"duplicate":false}}"#
        )
    };
    let (p, q) = (&pupils[0].1, &pupils[1].1);

    let got = raw(&mut gate, "t-1", p, at(0)).await;
    assert_eq!(got, ok("t-1", "checked_in", "Willkommen!", format!("{},", student(0))));
    let got = raw(&mut a, "t-2", p, at(1)).await;
    let checked_in = ok("t-2", "checked_in", "Eingecheckt: Raum A", format!("{},{},", student(0), room(0, "Raum A")));
    assert_eq!(got, checked_in);
    let got = raw(&mut b, "t-3", p, at(2)).await;
    assert_eq!(got, ok("t-3", "transferred", "Gewechselt: Raum B", format!("{},{},", student(0), room(1, "Raum B"))));
    let got = raw(&mut b, "t-4", p, at(3)).await;
    assert_eq!(got, ok("t-4", "checked_out", "Ausgecheckt: Raum B", format!("{},{},", student(0), room(1, "Raum B"))));
    let got = raw(&mut a, "t-2", p, at(1)).await;
    assert_eq!(got, checked_in.replace(r#""duplicate":false"#, r#""duplicate":true"#), "a repeat: the stored Result");
    let got = raw(&mut a, "t-5", p, at(2)).await;
    assert_eq!(
        got,
        format!(
            r#"{{"scan_id":"t-5","outcome":"rejected","code":"superseded","message":"Bereits aktualisiert",{},"duplicate":false}}"#,
            student(0)
        ),
        "older than the pupil's last change: the pupil, no room"
    );
    let got = raw(&mut gate, "t-6", p, at(4)).await;
    assert_eq!(got, ok("t-6", "checked_out", "Auf Wiedersehen!", format!("{},", student(0))));

    let got = raw(&mut c, "t-7", q, at(5)).await;
    assert_eq!(got, ok("t-7", "checked_in", "Eingecheckt: Raum C", format!("{},{},", student(1), room(2, "Raum C"))));
    let rejected = |id: &str, message: &str, i: usize, extra: String| {
        format!(
            r#"{{"scan_id":"{id}","outcome":"rejected","code":"room_full","message":"{message}",{},{extra},"duplicate":false}}"#,
            student(i)
        )
    };
    let got = raw(&mut c, "t-8", &pupils[2].1, at(6)).await;
    assert_eq!(got, rejected("t-8", "Aktivität ist voll", 2, room(2, "Raum C")), "the activity's one place is taken");
    let got = raw(&mut d, "t-9", &pupils[2].1, at(7)).await;
    assert_eq!(got, rejected("t-9", "Raum ist voll", 2, room(3, "Raum D")), "capacity 0: the room is closed");
    assert_eq!(visit_count(&mut conn, pupils[2].0).await, 0, "nothing written for the refusals");
    let receipts: Vec<String> = active::scan_receipts::table
        .order(active::scan_receipts::id)
        .select(active::scan_receipts::code)
        .load(&mut conn)
        .await
        .expect("receipts");
    assert_eq!(receipts, ["ok", "ok", "ok", "ok", "superseded", "ok", "ok", "room_full", "room_full"], "one per scan");
    stack.stop().await;
}

#[tokio::test]
async fn the_entrance_lets_a_collected_pupil_go_from_fifteen_minutes_before_the_pickup_time() {
    use chrono::{Datelike as _, NaiveTime, TimeZone as _};
    use phoenix_active::scan::{self, MAX_CLOCK_AHEAD, ScanCommand, ScanSettings};
    use phoenix_db::schema::schedule::student_pickup_schedules as weekly;
    let db = phoenix_tests::TestDb::new().await;
    let mut conn = db.conn().await;
    let s = school::School::create(&mut conn, 3).await;
    let tz = chrono_tz::Europe::Berlin;
    let time = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("time");
    let settings = ScanSettings {
        max_age: Duration::from_secs(5 * 24 * 3600),
        max_ahead: MAX_CLOCK_AHEAD,
        timezone: tz,
        daily_checkout_time: time(15, 0),
    };
    // The latest Monday–Friday at least a day ago: its scans are replays within the window.
    let mut day = phoenix_common::time::business_date_in(Utc::now(), tz) - chrono::Duration::days(1);
    while day.weekday().number_from_monday() > 5 {
        day -= chrono::Duration::days(1);
    }
    let local = |h, m| tz.from_local_datetime(&day.and_time(time(h, m))).single().expect("local time").to_utc();
    let weekday = day.weekday().number_from_monday() as i16;
    let [at_two, at_five] = [&s.pupils[0], &s.pupils[1]];
    diesel::insert_into(weekly::table)
        .values(vec![
            (weekly::student_id.eq(at_two.id), weekly::weekday.eq(weekday), weekly::pickup_time.eq(time(14, 0))),
            (weekly::student_id.eq(at_five.id), weekly::weekday.eq(weekday), weekly::pickup_time.eq(time(17, 0))),
        ])
        .execute(&mut conn)
        .await
        .expect("weekly pickups");
    let mut n = 0;
    let mut at_gate = async |tag: &str, at: DateTime<Utc>| {
        n += 1;
        let cmd = ScanCommand { device_id: s.gate.clone(), scan_id: format!("g-{n}"), tag: tag.into(), scanned_at: at };
        let r = scan::process(&mut conn, settings, cmd, Utc::now()).await.expect("scan");
        format!("{}/{}", r.outcome.as_str(), r.code.as_str())
    };
    for p in &s.pupils {
        assert_eq!(at_gate(&p.tag, local(8, 0)).await, "checked_in/ok");
    }
    assert_eq!(at_gate(&at_two.tag, local(13, 44)).await, "rejected/pickup_not_allowed", "16 minutes early");
    assert_eq!(at_gate(&at_two.tag, local(13, 45)).await, "checked_out/ok", "15 minutes early");
    assert_eq!(at_gate(&at_five.tag, local(14, 59)).await, "rejected/pickup_not_allowed");
    assert_eq!(at_gate(&at_five.tag, local(15, 0)).await, "checked_out/ok", "from the daily check-out time, always");
    assert_eq!(at_gate(&s.pupils[2].tag, local(10, 0)).await, "checked_out/ok", "no pickup rule: free to go");
}
