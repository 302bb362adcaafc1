//! `phoenix.config.v1`: settings validated against the registry, locked system settings,
//! all-or-nothing import, feature flags, and the cross-replica cache.

use std::time::Duration;

use pb::config_service_client::ConfigServiceClient;
use phoenix_common::domain::Domain;
use phoenix_config::ConfigCache;
use phoenix_proto::config::v1 as pb;
use phoenix_tests::TestApp;
use phoenix_tests::auth::AuthedChannel;
use tonic::Code;

use crate::support::{assert_invalid, assert_precondition};

const RETENTION: &str = "privacy.default_visit_retention_days";

async fn client(app: &TestApp) -> ConfigServiceClient<AuthedChannel> {
    ConfigServiceClient::new(app.admin_channel(Domain::Config).await)
}

async fn update(
    c: &mut ConfigServiceClient<AuthedChannel>,
    key: &str,
    value: &str,
) -> Result<pb::Setting, tonic::Status> {
    let r = c.update_setting(pb::UpdateSettingRequest { key: key.into(), value: value.into() }).await?;
    Ok(r.into_inner().setting.expect("setting"))
}

#[tokio::test]
async fn setting_round_trip_get_update_reset() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    let get = |c: &mut ConfigServiceClient<AuthedChannel>, key: &str| {
        let mut c = c.clone();
        let key = key.to_owned();
        async move { c.get_setting(pb::GetSettingRequest { key }).await.map(|r| r.into_inner().setting.expect("s")) }
    };
    // Seeded by the migration.
    let s = get(&mut c, RETENTION).await.unwrap();
    assert_eq!((s.value.as_str(), s.is_set, s.min_value, s.max_value), ("30", true, Some(1), Some(31)));
    // A default that has no row.
    let s = get(&mut c, "session.end_time").await.unwrap();
    assert_eq!((s.value.as_str(), s.is_set), ("18:00", false));

    let s = update(&mut c, "session.end_time", "17:5").await.expect_err("17:5 is not HH:MM");
    assert_invalid(&s, &["value"]);
    let s = update(&mut c, "session.end_time", "7:30").await.unwrap();
    assert_eq!((s.value.as_str(), s.is_set), ("07:30", true));
    assert_eq!(get(&mut c, "session.end_time").await.unwrap().value, "07:30");

    let s = c.reset_setting(pb::ResetSettingRequest { key: "session.end_time".into() }).await.unwrap().into_inner();
    assert_eq!(s.setting.unwrap().value, "18:00");
    assert!(!get(&mut c, "session.end_time").await.unwrap().is_set);
}

#[tokio::test]
async fn retention_days_must_be_1_to_31() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    for bad in ["0", "32", "-1", "thirty", ""] {
        let err = update(&mut c, RETENTION, bad).await.expect_err(bad);
        assert_invalid(&err, &["value"]);
    }
    assert_eq!(update(&mut c, RETENTION, "31").await.unwrap().value, "31");
    assert_eq!(update(&mut c, RETENTION, "1").await.unwrap().value, "1");
}

#[tokio::test]
async fn unknown_key_is_invalid_on_write_and_not_found_on_read() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    let err = update(&mut c, "email.enabled", "true").await.unwrap_err();
    assert_invalid(&err, &["key"]);
    assert!(err.message().contains("email.enabled"), "{}", err.message());
    let err = c.get_setting(pb::GetSettingRequest { key: "email.enabled".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn system_settings_are_locked() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    let err = update(&mut c, "system.time_zone", "UTC").await.unwrap_err();
    assert_precondition(&err, "SETTING_LOCKED");
    let err = c.reset_setting(pb::ResetSettingRequest { key: "system.time_zone".into() }).await.unwrap_err();
    assert_precondition(&err, "SETTING_LOCKED");
    let s = c.get_setting(pb::GetSettingRequest { key: "system.time_zone".into() }).await.unwrap().into_inner();
    assert_eq!(s.setting.unwrap().value, "Europe/Berlin");
}

#[tokio::test]
async fn list_settings_pages_with_keyset_tokens_and_true_total() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    let mut keys = Vec::new();
    let mut token = String::new();
    let mut totals = Vec::new();
    loop {
        let r = c
            .list_settings(pb::ListSettingsRequest { category: String::new(), page_size: 3, page_token: token })
            .await
            .unwrap()
            .into_inner();
        assert!(r.settings.len() <= 3);
        totals.push(r.total_size);
        keys.extend(r.settings.into_iter().map(|s| s.key));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert!(totals.iter().all(|t| *t == keys.len() as i32), "{totals:?} vs {}", keys.len());
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    assert!(keys.contains(&RETENTION.to_owned()));

    let r = c
        .list_settings(pb::ListSettingsRequest { category: "session".into(), page_size: 0, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert!(r.settings.iter().all(|s| s.category == "session") && r.total_size == 2, "{r:?}");

    let err = c
        .list_settings(pb::ListSettingsRequest { category: String::new(), page_size: 501, page_token: String::new() })
        .await
        .unwrap_err();
    assert_invalid(&err, &["page_size"]);
    let err = c
        .list_settings(pb::ListSettingsRequest { category: String::new(), page_size: 1, page_token: "garbage".into() })
        .await
        .unwrap_err();
    assert_invalid(&err, &["page_token"]);
}

#[tokio::test]
async fn import_is_all_or_nothing_and_lists_every_bad_item() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    let item = |k: &str, v: &str| pb::SettingValue { key: k.into(), value: v.into() };
    let err = c
        .import_settings(pb::ImportSettingsRequest {
            settings: vec![
                item("session.end_time", "17:00"),
                item(RETENTION, "99"),
                item("no.such.key", "1"),
                item("system.time_zone", "UTC"),
                item("session.timeout_minutes", "0"),
            ],
        })
        .await
        .unwrap_err();
    assert_invalid(&err, &["settings[1].value", "settings[2].key", "settings[3].key", "settings[4].value"]);
    let bad = tonic_types::StatusExt::get_error_details(&err).bad_request().unwrap().field_violations.len();
    assert_eq!(bad, 4);
    // Nothing applied: the valid first item is not stored either.
    let s = c.get_setting(pb::GetSettingRequest { key: "session.end_time".into() }).await.unwrap().into_inner();
    assert_eq!(s.setting.unwrap().value, "18:00");

    let err = c.import_settings(pb::ImportSettingsRequest { settings: vec![] }).await.unwrap_err();
    assert_invalid(&err, &["settings"]);

    let ok = c
        .import_settings(pb::ImportSettingsRequest {
            settings: vec![item("session.end_time", "17:00"), item(RETENTION, "14")],
        })
        .await
        .unwrap()
        .into_inner();
    let values: Vec<_> = ok.settings.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(values, ["17:00", "14"]);
}

#[tokio::test]
async fn feature_flag_crud_and_validation() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    let flag = |key: &str, enabled: bool| pb::FeatureFlag { key: key.into(), enabled, ..Default::default() };
    let created = c
        .create_feature_flag(pb::CreateFeatureFlagRequest { feature_flag: Some(flag("presence.board_v2", true)) })
        .await
        .unwrap()
        .into_inner()
        .feature_flag
        .unwrap();
    assert!(created.enabled);
    let err = c
        .create_feature_flag(pb::CreateFeatureFlagRequest { feature_flag: Some(flag("presence.board_v2", false)) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = c
        .create_feature_flag(pb::CreateFeatureFlagRequest { feature_flag: Some(flag("Bad Key", false)) })
        .await
        .unwrap_err();
    assert_invalid(&err, &["feature_flag.key"]);

    let updated = c
        .update_feature_flag(pb::UpdateFeatureFlagRequest {
            feature_flag: Some(pb::FeatureFlag { description: "new board".into(), ..flag("presence.board_v2", false) }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["enabled".into()] }),
        })
        .await
        .unwrap()
        .into_inner()
        .feature_flag
        .unwrap();
    assert!(!updated.enabled);
    assert_eq!(updated.description, "", "description not in the mask");
    let err = c
        .update_feature_flag(pb::UpdateFeatureFlagRequest {
            feature_flag: Some(flag("presence.board_v2", false)),
            update_mask: Some(prost_types::FieldMask { paths: vec!["key".into()] }),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, &["update_mask"]);
    let err = c
        .update_feature_flag(pb::UpdateFeatureFlagRequest {
            feature_flag: Some(flag("missing", true)),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    c.create_feature_flag(pb::CreateFeatureFlagRequest { feature_flag: Some(flag("a.first", true)) }).await.unwrap();
    let page = c
        .list_feature_flags(pb::ListFeatureFlagsRequest { page_size: 1, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((page.feature_flags[0].key.as_str(), page.total_size), ("a.first", 2));
    let page2 = c
        .list_feature_flags(pb::ListFeatureFlagsRequest { page_size: 1, page_token: page.next_page_token })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page2.feature_flags[0].key, "presence.board_v2");
    assert!(page2.next_page_token.is_empty());

    c.delete_feature_flag(pb::DeleteFeatureFlagRequest { key: "a.first".into() }).await.unwrap();
    let err = c.delete_feature_flag(pb::DeleteFeatureFlagRequest { key: "a.first".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c.get_feature_flag(pb::GetFeatureFlagRequest { key: "a.first".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

/// Waits until `check` holds on `cache`, re-checking after every reload, for at most 10 s.
async fn eventually(cache: &ConfigCache, check: impl Fn(&ConfigCache) -> bool) {
    let mut rx = cache.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check(cache) {
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .expect("cache not refreshed within 10 s")
            .expect("cache alive");
    }
}

#[tokio::test]
async fn a_change_through_one_instance_reaches_a_second_instances_cache() {
    // Instance A serves the RPCs; instance B is a separate cache on its own pool, as a
    // second replica would hold. Only LISTEN/NOTIFY can tell B (the backstop reload is 60 s).
    let app = TestApp::spawn(&[Domain::Config]).await;
    let cache_b = ConfigCache::start(app.db.pool().await).await;
    assert_eq!(cache_b.get_i64(RETENTION), Some(30));
    assert!(!cache_b.flag_enabled("presence.board_v2"));

    let mut c = client(&app).await;
    update(&mut c, RETENTION, "12").await.unwrap();
    eventually(&cache_b, |cache| cache.get_i64(RETENTION) == Some(12)).await;

    c.create_feature_flag(pb::CreateFeatureFlagRequest {
        feature_flag: Some(pb::FeatureFlag { key: "presence.board_v2".into(), enabled: true, ..Default::default() }),
    })
    .await
    .unwrap();
    eventually(&cache_b, |cache| cache.flag_enabled("presence.board_v2")).await;

    c.delete_feature_flag(pb::DeleteFeatureFlagRequest { key: "presence.board_v2".into() }).await.unwrap();
    eventually(&cache_b, |cache| !cache.flag_enabled("presence.board_v2")).await;
}
