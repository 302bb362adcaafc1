//! `phoenix.iot.v1`: reader registration and keys, get/list/update/delete, device logs —
//! over real gRPC against a real database.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_common::domain::Domain;
use phoenix_db::schema::iot;
use phoenix_proto::iot::v1 as pb;
use phoenix_proto::iot::v1::iot_service_client::IotServiceClient;
use phoenix_reader_protocol::{Scan, derive_device_key, sign, verify_signature};
use phoenix_tests::app::TEST_DEVICE_KEY_SECRET;
use phoenix_tests::grpc::{reason, violated_fields};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;

async fn setup() -> (TestApp, IotServiceClient<phoenix_tests::auth::TestChannel>, i64) {
    let app = TestApp::spawn(&[Domain::Iot]).await;
    let client = IotServiceClient::new(app.test_channel(Domain::Iot).await);
    let mut conn = app.db.conn().await;
    let room = fixtures::room(&mut conn, "Raum 101", Some(25)).await;
    (app, client, room)
}

fn room_reader(device_id: &str, room: i64) -> pb::RegisterDeviceRequest {
    pb::RegisterDeviceRequest {
        device_id: device_id.into(),
        kind: pb::DeviceKind::Room as i32,
        room_id: Some(room),
        name: format!("Leser {device_id}"),
    }
}

fn entrance(device_id: &str) -> pb::RegisterDeviceRequest {
    pb::RegisterDeviceRequest {
        device_id: device_id.into(),
        kind: pb::DeviceKind::Entrance as i32,
        room_id: None,
        name: String::new(),
    }
}

fn signed(key: &str, device: &str) -> Scan {
    let (scan_id, tag, at) = ("s-1", "04A1B2C3", "2026-11-25T08:00:00Z");
    Scan {
        scan_id: scan_id.into(),
        tag: tag.into(),
        scanned_at: at.into(),
        sig: Some(sign(key, device, scan_id, tag, at)),
    }
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() })
}

async fn log_events(client: &mut IotServiceClient<phoenix_tests::auth::TestChannel>, id: i64) -> Vec<i32> {
    let logs = client
        .list_device_logs(pb::ListDeviceLogsRequest { id, ..Default::default() })
        .await
        .expect("list logs")
        .into_inner();
    logs.logs.iter().map(|l| l.event).collect()
}

#[tokio::test]
async fn register_shows_the_key_once_and_stores_no_key_material() {
    let (app, mut client, room) = setup().await;
    let reply = client.register_device(room_reader("reader-01", room)).await.expect("register").into_inner();
    let device = reply.device.expect("device");
    assert_eq!(device.device_id, "reader-01");
    assert_eq!(device.kind, pb::DeviceKind::Room as i32);
    assert_eq!(device.status, pb::DeviceStatus::Active as i32);
    assert_eq!(device.device_type, pb::DeviceType::RfidReader as i32);
    assert_eq!(device.room_id, Some(room));
    assert!(!device.online, "never seen yet");
    let key = reply.device_key;
    assert_eq!(key.len(), 64);
    assert_eq!(key, derive_device_key(TEST_DEVICE_KEY_SECRET.as_bytes(), "reader-01", device.key_version));
    assert!(verify_signature(&key, "reader-01", &signed(&key, "reader-01")));

    // No column of the row holds the key (nor the device-log detail).
    let mut conn = app.db.conn().await;
    let rows: Vec<String> = diesel::sql_query("SELECT row_to_json(d)::text AS j FROM iot.devices d")
        .load::<JsonRow>(&mut conn)
        .await
        .expect("rows")
        .into_iter()
        .map(|r| r.j)
        .chain(
            diesel::sql_query("SELECT row_to_json(l)::text AS j FROM iot.device_logs l")
                .load::<JsonRow>(&mut conn)
                .await
                .expect("logs")
                .into_iter()
                .map(|r| r.j),
        )
        .collect();
    assert!(rows.iter().all(|r| !r.contains(&key)), "key material stored: {rows:?}");

    // Get has no key; the log records the registration.
    let got = client
        .get_device(pb::GetDeviceRequest { device: Some(pb::get_device_request::Device::DeviceId("reader-01".into())) })
        .await
        .expect("get")
        .into_inner()
        .device
        .expect("device");
    assert_eq!(got, device);
    assert_eq!(log_events(&mut client, device.id).await, [pb::DeviceLogEvent::Registered as i32]);

    let e = client.register_device(entrance("entrance-01")).await.expect("entrance").into_inner();
    assert_eq!(e.device.expect("device").room_id, None);
}

#[derive(diesel::QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    j: String,
}

#[tokio::test]
async fn register_rejects_bad_input_with_field_violations() {
    let (_app, mut client, room) = setup().await;
    let err = client
        .register_device(pb::RegisterDeviceRequest {
            device_id: "bad/id".into(),
            kind: pb::DeviceKind::Unspecified as i32,
            room_id: None,
            name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["device_id", "kind"]);
    let err = client.register_device(room_reader("r-1", 0)).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["room_id"]);
    let err = client.register_device(pb::RegisterDeviceRequest { room_id: None, ..room_reader("r-1", 1) }).await;
    assert_eq!(violated_fields(&err.unwrap_err()), ["room_id"], "a room reader needs a room");
    let err = client.register_device(pb::RegisterDeviceRequest { room_id: Some(room), ..entrance("e-1") }).await;
    assert_eq!(violated_fields(&err.unwrap_err()), ["room_id"], "an entrance reader has no room");
    let err = client.register_device(room_reader("r-1", room + 1000)).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["room_id"], "unknown room");
    assert!(err.message().contains("does not exist"), "{}", err.message());

    client.register_device(room_reader("r-1", room)).await.expect("first");
    let dup = client.register_device(room_reader("r-1", room)).await.unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists, "{dup:?}");
}

#[tokio::test]
async fn rotating_a_key_makes_the_old_one_stop_verifying() {
    let (_app, mut client, room) = setup().await;
    let reg = client.register_device(room_reader("reader-07", room)).await.expect("register").into_inner();
    let device = reg.device.expect("device");
    let old_scan = signed(&reg.device_key, "reader-07");

    let rot =
        client.rotate_device_key(pb::RotateDeviceKeyRequest { id: device.id }).await.expect("rotate").into_inner();
    let rotated = rot.device.expect("device");
    assert_eq!(rotated.key_version, device.key_version + 1);
    assert!(rotated.key_rotate_time.is_some());
    assert_ne!(rot.device_key, reg.device_key);
    let current = derive_device_key(TEST_DEVICE_KEY_SECRET.as_bytes(), "reader-07", rotated.key_version);
    assert_eq!(rot.device_key, current);
    assert!(!verify_signature(&current, "reader-07", &old_scan), "old key no longer verifies");
    assert!(verify_signature(&current, "reader-07", &signed(&rot.device_key, "reader-07")));
    assert_eq!(
        log_events(&mut client, device.id).await,
        [pb::DeviceLogEvent::KeyRotated as i32, pb::DeviceLogEvent::Registered as i32]
    );

    let missing = client.rotate_device_key(pb::RotateDeviceKeyRequest { id: device.id + 1000 }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(
        violated_fields(&client.rotate_device_key(pb::RotateDeviceKeyRequest { id: 0 }).await.unwrap_err()),
        ["id"]
    );
}

#[tokio::test]
async fn list_filters_paginates_and_reports_online() {
    let (app, mut client, room) = setup().await;
    let mut conn = app.db.conn().await;
    let other_room = fixtures::room(&mut conn, "Turnhalle", None).await;
    for i in 0..5 {
        client.register_device(room_reader(&format!("lab-{i}"), room)).await.expect("register");
    }
    client.register_device(room_reader("gym-1", other_room)).await.expect("register");
    client.register_device(entrance("gate")).await.expect("register");

    // All devices (plus the seeded virtual one), two per page, with a stable total.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_devices(pb::ListDevicesRequest { page_size: 2, page_token: token.clone(), ..Default::default() })
            .await
            .expect("list")
            .into_inner();
        assert_eq!(page.total_size, 8);
        assert!(page.devices.len() <= 2);
        seen.extend(page.devices.into_iter().map(|d| d.device_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 8);
    assert!(seen.contains(&"WEB-MANUAL-001".to_owned()));

    let list = |req: pb::ListDevicesRequest| {
        let mut c = client.clone();
        async move { c.list_devices(req).await.map(|r| r.into_inner()) }
    };
    let in_room = list(pb::ListDevicesRequest { room_id: Some(room), ..Default::default() }).await.expect("room");
    assert_eq!(in_room.total_size, 5);
    let entrances = list(pb::ListDevicesRequest { kind: pb::DeviceKind::Entrance as i32, ..Default::default() })
        .await
        .expect("kind");
    assert_eq!(entrances.devices.iter().map(|d| d.device_id.as_str()).collect::<Vec<_>>(), ["gate"]);
    let search = list(pb::ListDevicesRequest { search: "LAB-".into(), ..Default::default() }).await.expect("search");
    assert_eq!(search.total_size, 5);
    let search = list(pb::ListDevicesRequest { search: "lab_".into(), ..Default::default() }).await.expect("search");
    assert_eq!(search.total_size, 0, "LIKE wildcards in the search are literal");

    // Online = seen within 5 minutes and not marked offline.
    diesel::update(iot::devices::table.filter(iot::devices::device_id.eq("lab-0")))
        .set(iot::devices::last_seen.eq(diesel::dsl::now))
        .execute(&mut conn)
        .await
        .expect("seen now");
    diesel::sql_query("UPDATE iot.devices SET last_seen = now() - interval '6 minutes' WHERE device_id = 'lab-1'")
        .execute(&mut conn)
        .await
        .expect("seen long ago");
    diesel::sql_query("UPDATE iot.devices SET last_seen = now(), offline_since = now() WHERE device_id = 'lab-2'")
        .execute(&mut conn)
        .await
        .expect("marked offline");
    let online = list(pb::ListDevicesRequest { online: Some(true), ..Default::default() }).await.expect("online");
    assert_eq!(online.devices.iter().map(|d| d.device_id.as_str()).collect::<Vec<_>>(), ["lab-0"]);
    assert!(online.devices[0].online);
    let offline = list(pb::ListDevicesRequest { online: Some(false), ..Default::default() }).await.expect("offline");
    assert_eq!(offline.total_size, 7);
    assert!(offline.devices.iter().all(|d| !d.online));

    let err = list(pb::ListDevicesRequest { page_size: 501, ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["page_size"]);
    let err =
        list(pb::ListDevicesRequest { page_token: "not-a-token".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["page_token"]);
    let err = list(pb::ListDevicesRequest { status: 77, ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["status"]);
}

#[tokio::test]
async fn update_applies_the_mask_and_logs_status_changes() {
    let (app, mut client, room) = setup().await;
    let mut conn = app.db.conn().await;
    let other_room = fixtures::room(&mut conn, "Kunstraum", Some(10)).await;
    let device =
        client.register_device(room_reader("r-9", room)).await.expect("register").into_inner().device.expect("d");

    let updated = client
        .update_device(pb::UpdateDeviceRequest {
            device: Some(pb::Device {
                id: device.id,
                status: pb::DeviceStatus::Maintenance as i32,
                room_id: Some(other_room),
                name: "  Neuer Name ".into(),
                ..Default::default()
            }),
            update_mask: mask(&["status", "room_id"]),
        })
        .await
        .expect("update")
        .into_inner()
        .device
        .expect("device");
    assert_eq!(updated.status, pb::DeviceStatus::Maintenance as i32);
    assert_eq!(updated.room_id, Some(other_room));
    assert_eq!(updated.name, device.name, "name not in the mask: unchanged");
    let renamed = client
        .update_device(pb::UpdateDeviceRequest {
            device: Some(pb::Device { id: device.id, name: "  Neuer Name ".into(), ..Default::default() }),
            update_mask: mask(&["name"]),
        })
        .await
        .expect("rename")
        .into_inner()
        .device
        .expect("device");
    assert_eq!(renamed.name, "Neuer Name");
    assert_eq!(renamed.status, pb::DeviceStatus::Maintenance as i32);
    let status_logs: Vec<String> = iot::device_logs::table
        .filter(iot::device_logs::device_id.eq(device.id))
        .filter(iot::device_logs::event.eq("status_changed"))
        .select(iot::device_logs::detail)
        .load::<serde_json::Value>(&mut conn)
        .await
        .expect("logs")
        .into_iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(status_logs, [r#"{"from":"active","to":"maintenance"}"#]);

    let update = |device: pb::Device, paths: &[&str]| {
        let mut c = client.clone();
        let req = pb::UpdateDeviceRequest { device: Some(device), update_mask: mask(paths) };
        async move { c.update_device(req).await }
    };
    let unbind = update(pb::Device { id: device.id, room_id: None, ..Default::default() }, &["room_id"]).await;
    assert_eq!(violated_fields(&unbind.unwrap_err()), ["device.room_id"], "a room reader must stay bound");
    let bad = update(pb::Device { id: device.id, ..Default::default() }, &["status", "kind"]).await;
    assert_eq!(violated_fields(&bad.unwrap_err()), ["device.status", "update_mask"]);
    let missing = update(pb::Device { id: device.id + 999, name: "x".into(), ..Default::default() }, &["name"]).await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
    let no_room =
        update(pb::Device { id: device.id, room_id: Some(other_room + 99), ..Default::default() }, &["room_id"]);
    assert_eq!(violated_fields(&no_room.await.unwrap_err()), ["device.room_id"]);
}

#[tokio::test]
async fn delete_removes_a_reader_but_not_the_virtual_device() {
    let (app, mut client, room) = setup().await;
    let device =
        client.register_device(room_reader("r-del", room)).await.expect("register").into_inner().device.expect("d");
    client.delete_device(pb::DeleteDeviceRequest { id: device.id }).await.expect("delete");
    let again = client.delete_device(pb::DeleteDeviceRequest { id: device.id }).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    let get = client.get_device(pb::GetDeviceRequest { device: Some(pb::get_device_request::Device::Id(device.id)) });
    assert_eq!(get.await.unwrap_err().code(), Code::NotFound);

    let mut conn = app.db.conn().await;
    let virtual_id: i64 = iot::devices::table
        .filter(iot::devices::device_id.eq("WEB-MANUAL-001"))
        .select(iot::devices::id)
        .first(&mut conn)
        .await
        .expect("seeded virtual device");
    let err = client.delete_device(pb::DeleteDeviceRequest { id: virtual_id }).await.unwrap_err();
    assert_eq!(reason(&err).unwrap_or_default(), "SYSTEM_DEVICE");

    // Re-registering the same device id never hands out the deleted reader's key again.
    let old_key = derive_device_key(TEST_DEVICE_KEY_SECRET.as_bytes(), "r-del", device.key_version);
    let again = client.register_device(room_reader("r-del", room)).await.expect("register again").into_inner();
    assert_ne!(again.device_key, old_key);
}

#[tokio::test]
async fn device_logs_page_newest_first() {
    let (_app, mut client, room) = setup().await;
    let device =
        client.register_device(room_reader("r-log", room)).await.expect("register").into_inner().device.expect("d");
    for _ in 0..4 {
        client.rotate_device_key(pb::RotateDeviceKeyRequest { id: device.id }).await.expect("rotate");
    }
    let first = client
        .list_device_logs(pb::ListDeviceLogsRequest { id: device.id, page_size: 3, ..Default::default() })
        .await
        .expect("page 1")
        .into_inner();
    assert_eq!(first.total_size, 5);
    assert_eq!(first.logs.len(), 3);
    assert!(first.logs.iter().all(|l| l.event == pb::DeviceLogEvent::KeyRotated as i32 && l.device_id == "r-log"));
    let second = client
        .list_device_logs(pb::ListDeviceLogsRequest {
            id: device.id,
            page_size: 3,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(second.logs.len(), 2);
    assert_eq!(second.logs.last().map(|l| l.event), Some(pb::DeviceLogEvent::Registered as i32));
    assert!(second.next_page_token.is_empty());
    let only = client
        .list_device_logs(pb::ListDeviceLogsRequest {
            id: device.id,
            event: pb::DeviceLogEvent::Registered as i32,
            ..Default::default()
        })
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(only.total_size, 1);
    let missing = client.list_device_logs(pb::ListDeviceLogsRequest { id: device.id + 50, ..Default::default() });
    assert_eq!(missing.await.unwrap_err().code(), Code::NotFound);
}
