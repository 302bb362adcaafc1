//! The embedded broker's credentials and ACLs (issue #13), on a secured broker of the test's
//! own ([`ReaderStack::spawn_secured`]; these tests always use the embedded broker: the
//! shared `MQTT_URL` broker of the other reader tests checks no credentials).
//!
//! Refused: no credentials, a wrong password, an unknown device, a Last Will on another
//! reader's topic, the gateway's client id without the gateway's password. Disconnected: a
//! reader subscribing to another's result topic or publishing to another's scan topic. The
//! gateway's session and the honest readers keep working throughout.

use std::time::Duration;

use chrono::Utc;
use phoenix_gateway::bridge::parse_mqtt_url;
use phoenix_gateway::broker_acl::MqttLogin;
use phoenix_gateway::sim::SimReader;
use phoenix_reader_protocol::{Code, Outcome, topics};
use phoenix_tests::reader::ReaderStack;
use phoenix_tests::school::{self, visit_count};
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};

const WAIT: Duration = Duration::from_secs(20);

/// A raw MQTT client: `Ok` once the broker accepted the CONNECT, else the first error.
async fn connect(
    stack: &ReaderStack,
    client_id: &str,
    login: Option<&MqttLogin>,
    will: Option<LastWill>,
) -> Result<(AsyncClient, EventLoop), ConnectionError> {
    let (host, port) = parse_mqtt_url(&stack.mqtt_url).expect("url");
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(30));
    if let Some(login) = login {
        options.set_credentials(login.username.clone(), login.password.expose());
    }
    if let Some(will) = will {
        options.set_last_will(will);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await.expect("an answer to CONNECT") {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok((client, eventloop)),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

fn refused(result: Result<(AsyncClient, EventLoop), ConnectionError>) -> ConnectReturnCode {
    match result {
        Err(ConnectionError::ConnectionRefused(code)) => code,
        Err(e) => panic!("expected a refusing CONNACK, got {e:?}"),
        Ok(_) => panic!("the broker accepted the CONNECT"),
    }
}

/// Polls until the connection fails; panics if it is still up after 5 s.
async fn expect_disconnected(eventloop: &mut EventLoop) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await.expect("disconnected within 5 s") {
            Ok(Event::Incoming(Packet::SubAck(_) | Packet::PubAck(_))) => panic!("the broker accepted the packet"),
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

async fn open_rooms(stack: &mut ReaderStack) {
    let s = stack.school.clone();
    for room in [s.rooms[0], s.rooms[1]] {
        school::start_session(&mut stack.active, room, s.activity, s.staff).await;
    }
}

async fn scan_ok(reader: &mut SimReader, scan_id: &str, tag: &str) -> Outcome {
    let scan = reader.sign(scan_id, tag, Utc::now());
    let r = reader.send(&scan, WAIT).await.expect("a result").expect_result().clone();
    assert_eq!(r.code, Code::Ok, "{r:?}");
    r.outcome
}

#[tokio::test]
async fn clients_without_valid_credentials_are_refused_and_honest_readers_keep_scanning() {
    let mut stack = ReaderStack::spawn_secured(2).await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let mut a = stack.reader(&s.readers[0]).await;
    assert_eq!(scan_ok(&mut a, "c-1", &s.pupils[0].tag).await, Outcome::CheckedIn);

    // No credentials at all.
    assert_eq!(refused(connect(&stack, "anon", None, None).await), ConnectReturnCode::BadUserNamePassword);
    // A registered reader with a wrong password (here: another reader's).
    let other = MqttLogin::reader(&s.readers[0], &stack.key(&s.readers[1]));
    assert_eq!(refused(connect(&stack, "wrong-pw", Some(&other), None).await), ConnectReturnCode::BadUserNamePassword);
    // The right password scheme for a device id nobody registered.
    let ghost = MqttLogin::reader("ghost-01", &stack.key("ghost-01"));
    assert_eq!(refused(connect(&stack, "ghost", Some(&ghost), None).await), ConnectReturnCode::BadUserNamePassword);
    // The SimReader reports the refusal instead of hanging on for ever.
    assert!(stack.reader_with_login(&s.readers[1], &other).await.is_err());
    // A valid reader whose Last Will would speak for another reader.
    let b_login = MqttLogin::reader(&s.readers[1], &stack.key(&s.readers[1]));
    let will = LastWill::new(topics::status(&stack.prefix, &s.readers[0]), "offline", QoS::AtLeastOnce, true);
    assert_eq!(
        refused(connect(&stack, "bad-will", Some(&b_login), Some(will)).await),
        ConnectReturnCode::NotAuthorized
    );

    // Honest readers are unaffected.
    assert_eq!(scan_ok(&mut a, "c-2", &s.pupils[0].tag).await, Outcome::CheckedOut);
    let mut b = stack.reader(&s.readers[1]).await;
    assert_eq!(scan_ok(&mut b, "c-3", &s.pupils[1].tag).await, Outcome::CheckedIn);
    let acl = stack.acl_stats().expect("secured broker");
    assert!(acl.refused_connects >= 5, "{acl:?}");
    assert_eq!(acl.violations, 0);
    stack.stop().await;
}

#[tokio::test]
async fn a_reader_reaching_for_another_readers_topics_is_disconnected() {
    let mut stack = ReaderStack::spawn_secured(2).await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let (dev_a, dev_b) = (s.readers[0].clone(), s.readers[1].clone());
    let mut b = stack.reader(&dev_b).await;
    assert_eq!(scan_ok(&mut b, "b-1", &s.pupils[1].tag).await, Outcome::CheckedIn);
    let a_login = MqttLogin::reader(&dev_a, &stack.key(&dev_a));

    // A subscribes to B's results (names of pupils with rooms).
    let (client, mut events) = connect(&stack, "a-spy", Some(&a_login), None).await.expect("A connects");
    client.subscribe(topics::result(&stack.prefix, &dev_b), QoS::AtLeastOnce).await.expect("queued");
    expect_disconnected(&mut events).await;
    // A subscribes to everything.
    let (client, mut events) = connect(&stack, "a-wild", Some(&a_login), None).await.expect("A connects");
    client.subscribe(format!("{}/#", stack.prefix), QoS::AtLeastOnce).await.expect("queued");
    expect_disconnected(&mut events).await;
    // A forges a scan on B's topic, signed with B's key even: it never reaches the gateway.
    let received = stack.stats().received;
    let forged = b.sign("forged-1", &s.pupils[0].tag, Utc::now());
    let (client, mut events) = connect(&stack, "a-forge", Some(&a_login), None).await.expect("A connects");
    client
        .publish(topics::scan(&stack.prefix, &dev_b), QoS::AtLeastOnce, false, forged.to_json())
        .await
        .expect("queued");
    expect_disconnected(&mut events).await;
    // A publishes a Result for B.
    let (client, mut events) = connect(&stack, "a-result", Some(&a_login), None).await.expect("A connects");
    client
        .publish(topics::result(&stack.prefix, &dev_b), QoS::AtLeastOnce, false, r#"{"scan_id":"x"}"#)
        .await
        .expect("queued");
    expect_disconnected(&mut events).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stack.stats().received, received, "nothing of A's reached the bridge");
    assert!(b.next_result(Duration::from_millis(300)).await.is_none(), "B got no forged Result");

    // B keeps working, and A's own topics still work for A.
    assert_eq!(scan_ok(&mut b, "b-2", &s.pupils[1].tag).await, Outcome::CheckedOut);
    let mut a = stack.reader(&dev_a).await;
    assert_eq!(scan_ok(&mut a, "a-1", &s.pupils[0].tag).await, Outcome::CheckedIn);
    let mut conn = stack.app.db.conn().await;
    assert_eq!(visit_count(&mut conn, s.pupils[0].id).await, 1, "the forged scan wrote nothing");
    let acl = stack.acl_stats().expect("secured broker");
    assert_eq!(acl.violations, 4, "{acl:?}");
    stack.stop().await;
}

#[tokio::test]
async fn the_gateways_session_cannot_be_taken_over_without_its_password() {
    let mut stack = ReaderStack::spawn_secured(1).await;
    open_rooms(&mut stack).await;
    let s = stack.school.clone();
    let mut a = stack.reader(&s.readers[0]).await;
    assert_eq!(scan_ok(&mut a, "g-1", &s.pupils[0].tag).await, Outcome::CheckedIn);
    let connections = stack.stats().connections;
    let gateway = stack.gateway_login();
    let client_id = stack.client_id.clone();

    // The gateway's client id: without credentials, with a wrong password, as a reader.
    assert_eq!(refused(connect(&stack, &client_id, None, None).await), ConnectReturnCode::BadUserNamePassword);
    let wrong = MqttLogin::new(gateway.username.clone(), "not-the-password");
    assert_eq!(refused(connect(&stack, &client_id, Some(&wrong), None).await), ConnectReturnCode::BadUserNamePassword);
    let reader = MqttLogin::reader(&s.readers[0], &stack.key(&s.readers[0]));
    assert_eq!(refused(connect(&stack, &client_id, Some(&reader), None).await), ConnectReturnCode::BadClientId);
    // The gateway's username with the wrong password under any client id.
    assert_eq!(refused(connect(&stack, "x-gw", Some(&wrong), None).await), ConnectReturnCode::BadUserNamePassword);

    // The bridge never lost its session, and scans are still answered.
    assert_eq!(scan_ok(&mut a, "g-2", &s.pupils[0].tag).await, Outcome::CheckedOut);
    assert_eq!(stack.stats().connections, connections, "the bridge was never disconnected");
    // With the gateway's password a second connection is the gateway (a restart resumes).
    let (client, mut events) = connect(&stack, "gw-probe", Some(&gateway), None).await.expect("gateway login");
    client.subscribe(topics::scan_filter(&stack.prefix, Some("probe")), QoS::AtLeastOnce).await.expect("queued");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, events.poll()).await.expect("SUBACK") {
            Ok(Event::Incoming(Packet::SubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("the gateway's login may subscribe to the scans: {e:?}"),
        }
    }
    drop(client);
    stack.stop().await;
}
