//! `phoenix.config.v1`: settings validated against the registry, locked system settings,
//! all-or-nothing import, feature flags, and the cross-replica cache.

use std::time::Duration;

use pb::config_service_client::ConfigServiceClient;
use phoenix_common::domain::Domain;
use phoenix_config::{ConfigCache, Subject};
use phoenix_proto::config::v1 as pb;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, TestChannel, create_account, mint_token, role_permissions};
use tonic::Code;

use phoenix_tests::grpc::{assert_precondition, assert_violations_include};

const RETENTION: &str = "privacy.default_visit_retention_days";

async fn client(app: &TestApp) -> ConfigServiceClient<TestChannel> {
    ConfigServiceClient::new(app.test_channel(Domain::Config).await)
}

async fn update(
    c: &mut ConfigServiceClient<TestChannel>,
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
    let get = |c: &mut ConfigServiceClient<TestChannel>, key: &str| {
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
    assert_violations_include(&s, &["value"]);
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
        assert_violations_include(&err, &["value"]);
    }
    assert_eq!(update(&mut c, RETENTION, "31").await.unwrap().value, "31");
    assert_eq!(update(&mut c, RETENTION, "1").await.unwrap().value, "1");
}

#[tokio::test]
async fn unknown_key_is_invalid_on_write_and_not_found_on_read() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    let err = update(&mut c, "email.enabled", "true").await.unwrap_err();
    assert_violations_include(&err, &["key"]);
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
    assert_violations_include(&err, &["page_size"]);
    let err = c
        .list_settings(pb::ListSettingsRequest { category: String::new(), page_size: 1, page_token: "garbage".into() })
        .await
        .unwrap_err();
    assert_violations_include(&err, &["page_token"]);
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
    assert_violations_include(&err, &["settings[1].value", "settings[2].key", "settings[3].key", "settings[4].value"]);
    let bad = tonic_types::StatusExt::get_error_details(&err).bad_request().unwrap().field_violations.len();
    assert_eq!(bad, 4);
    // Nothing applied: the valid first item is not stored either.
    let s = c.get_setting(pb::GetSettingRequest { key: "session.end_time".into() }).await.unwrap().into_inner();
    assert_eq!(s.setting.unwrap().value, "18:00");

    let err = c.import_settings(pb::ImportSettingsRequest { settings: vec![] }).await.unwrap_err();
    assert_violations_include(&err, &["settings"]);

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
    assert_violations_include(&err, &["feature_flag.key"]);

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
    assert_violations_include(&err, &["update_mask"]);
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
    assert!(!cache_b.same_as(&app.context.config_cache().await), "B is a separate cache");
    let anyone = Subject::account(1, ["staff"]);
    assert_eq!(cache_b.get_i64(RETENTION), Some(30));
    assert!(!cache_b.is_enabled("presence.board_v2", &anyone));

    let mut c = client(&app).await;
    update(&mut c, RETENTION, "12").await.unwrap();
    eventually(&cache_b, |cache| cache.get_i64(RETENTION) == Some(12)).await;

    c.create_feature_flag(pb::CreateFeatureFlagRequest {
        feature_flag: Some(pb::FeatureFlag { key: "presence.board_v2".into(), enabled: true, ..Default::default() }),
    })
    .await
    .unwrap();
    eventually(&cache_b, |cache| cache.is_enabled("presence.board_v2", &anyone)).await;

    // A rule change (roles) reaches B too.
    c.update_feature_flag(pb::UpdateFeatureFlagRequest {
        feature_flag: Some(flag_with("presence.board_v2", true, None, &["admin"])),
        update_mask: mask(&["roles"]),
    })
    .await
    .unwrap();
    eventually(&cache_b, |cache| !cache.is_enabled("presence.board_v2", &anyone)).await;
    assert!(cache_b.is_enabled("presence.board_v2", &Subject::account(1, ["admin"])));

    c.delete_feature_flag(pb::DeleteFeatureFlagRequest { key: "presence.board_v2".into() }).await.unwrap();
    eventually(&cache_b, |cache| cache.flag_rule("presence.board_v2").is_none()).await;
}

fn flag_with(key: &str, enabled: bool, pct: Option<i32>, roles: &[&str]) -> pb::FeatureFlag {
    pb::FeatureFlag {
        key: key.into(),
        enabled,
        rollout_percentage: pct,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    }
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() })
}

async fn create_flag(c: &mut ConfigServiceClient<TestChannel>, flag: pb::FeatureFlag) -> pb::FeatureFlag {
    c.create_feature_flag(pb::CreateFeatureFlagRequest { feature_flag: Some(flag) })
        .await
        .expect("create flag")
        .into_inner()
        .feature_flag
        .expect("flag")
}

async fn evaluate(
    c: &mut ConfigServiceClient<TestChannel>,
    key: &str,
    subject: Option<i64>,
) -> Result<pb::EvaluateFeatureFlagResponse, tonic::Status> {
    c.evaluate_feature_flag(pb::EvaluateFeatureFlagRequest { key: key.into(), subject_account_id: subject })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn the_config_service_reads_through_the_process_wide_cache() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let shared = app.context.config_cache().await;
    assert!(shared.same_as(&app.context.config_cache().await), "one cache per process");
    let mut c = client(&app).await;
    let someone = Subject::account(5, ["staff"]);
    // The service refreshes the shared cache before it answers a write, so this process
    // reads its own write at once (other replicas get it through NOTIFY).
    create_flag(&mut c, flag_with("board.v3", true, None, &[])).await;
    assert!(shared.is_enabled("board.v3", &someone));
    update(&mut c, RETENTION, "9").await.unwrap();
    assert_eq!(shared.get_i64(RETENTION), Some(9));
    c.update_feature_flag(pb::UpdateFeatureFlagRequest {
        feature_flag: Some(flag_with("board.v3", false, None, &[])),
        update_mask: mask(&["enabled"]),
    })
    .await
    .unwrap();
    assert!(!shared.is_enabled("board.v3", &someone));
}

#[tokio::test]
async fn percentage_rollout_is_stable_and_roughly_proportional() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    let created = create_flag(&mut c, flag_with("rollout.thirty", true, Some(30), &[])).await;
    assert_eq!((created.rollout_percentage, created.roles.len()), (Some(30), 0));
    let cache = app.context.config_cache().await;
    let on: Vec<i64> =
        (1..=1000).filter(|id| cache.is_enabled("rollout.thirty", &Subject::account(*id, ["staff"]))).collect();
    // Deterministic (SHA-256 buckets), so the band is only there to allow any hash: ~300.
    assert!((220..=380).contains(&on.len()), "{} of 1000 subjects in a 30 % rollout", on.len());
    let again: Vec<i64> =
        (1..=1000).filter(|id| cache.is_enabled("rollout.thirty", &Subject::account(*id, ["guest"]))).collect();
    assert_eq!(on, again, "the same subjects every time (roles do not move the bucket)");
    // Another flag at 30 % samples other subjects.
    create_flag(&mut c, flag_with("rollout.other", true, Some(30), &[])).await;
    let other: Vec<i64> =
        (1..=1000).filter(|id| cache.is_enabled("rollout.other", &Subject::account(*id, [""; 0]))).collect();
    assert_ne!(on, other);

    // Widening the rollout keeps everyone who was in (buckets are fixed, the threshold moves).
    c.update_feature_flag(pb::UpdateFeatureFlagRequest {
        feature_flag: Some(flag_with("rollout.thirty", true, Some(60), &[])),
        update_mask: mask(&["rollout_percentage"]),
    })
    .await
    .unwrap();
    let wider: Vec<i64> =
        (1..=1000).filter(|id| cache.is_enabled("rollout.thirty", &Subject::account(*id, [""; 0]))).collect();
    assert!(on.iter().all(|id| wider.contains(id)) && (520..=680).contains(&wider.len()), "{}", wider.len());

    // The RPC answers the same as the cache, with the bucket, for the caller and for others.
    let me = create_account(&app, "rollout@school.de", PASSWORD, &["staff"], true).await;
    let token = mint_token(&app, &me.to_string(), &["staff"], &role_permissions(&app, "staff").await).await;
    let mut as_me = ConfigServiceClient::new(app.channel_as(Domain::Config, &token).await);
    let mine = evaluate(&mut as_me, "rollout.thirty", None).await.unwrap();
    assert_eq!(mine.subject_account_id, Some(me));
    assert_eq!(mine.enabled, cache.is_enabled("rollout.thirty", &Subject::account(me, ["staff"])));
    assert_eq!(mine.enabled, i64::from(mine.bucket) < 6000);
    let reason = if mine.enabled { pb::EvaluationReason::RulesMatched } else { pb::EvaluationReason::OutsideRollout };
    assert_eq!(mine.reason(), reason);
    let for_me = evaluate(&mut c, "rollout.thirty", Some(me)).await.unwrap();
    assert_eq!((for_me.enabled, for_me.bucket), (mine.enabled, mine.bucket));

    // 0 % is nobody, 100 % everybody.
    c.update_feature_flag(pb::UpdateFeatureFlagRequest {
        feature_flag: Some(flag_with("rollout.thirty", true, Some(0), &[])),
        update_mask: mask(&["rollout_percentage"]),
    })
    .await
    .unwrap();
    assert!((1..=1000).all(|id| !cache.is_enabled("rollout.thirty", &Subject::account(id, [""; 0]))));
    c.update_feature_flag(pb::UpdateFeatureFlagRequest {
        feature_flag: Some(flag_with("rollout.thirty", true, Some(100), &[])),
        update_mask: mask(&["rollout_percentage"]),
    })
    .await
    .unwrap();
    assert!((1..=1000).all(|id| cache.is_enabled("rollout.thirty", &Subject::account(id, [""; 0]))));
}

#[tokio::test]
async fn role_rules_and_who_may_evaluate_for_whom() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut admin = client(&app).await;
    let staff = create_account(&app, "staff@school.de", PASSWORD, &["staff"], true).await;
    let guest = create_account(&app, "guest@school.de", PASSWORD, &["guest"], true).await;
    let nobody = create_account(&app, "nobody@school.de", PASSWORD, &[], true).await;
    create_flag(&mut admin, flag_with("staff.only", true, None, &["staff", "admin"])).await;
    create_flag(&mut admin, flag_with("everyone", true, None, &[])).await;
    create_flag(&mut admin, flag_with("switched.off", false, None, &[])).await;
    create_flag(&mut admin, flag_with("staff.none", true, Some(0), &["staff"])).await;

    let r = evaluate(&mut admin, "staff.only", Some(staff)).await.unwrap();
    assert!(r.enabled && r.reason() == pb::EvaluationReason::RulesMatched, "{r:?}");
    let r = evaluate(&mut admin, "staff.only", Some(guest)).await.unwrap();
    assert!(!r.enabled && r.reason() == pb::EvaluationReason::RoleNotMatched, "{r:?}");
    let r = evaluate(&mut admin, "everyone", Some(guest)).await.unwrap();
    assert!(r.enabled && r.reason() == pb::EvaluationReason::OnForEveryone, "{r:?}");
    let r = evaluate(&mut admin, "switched.off", Some(staff)).await.unwrap();
    assert!(!r.enabled && r.reason() == pb::EvaluationReason::FlagOff, "{r:?}");
    // Roles AND percentage: the right role, but 0 % of it.
    let r = evaluate(&mut admin, "staff.none", Some(staff)).await.unwrap();
    assert!(!r.enabled && r.reason() == pb::EvaluationReason::OutsideRollout, "{r:?}");

    // The caller itself is evaluated with the roles of its token.
    let staff_token = mint_token(&app, &staff.to_string(), &["staff"], &role_permissions(&app, "staff").await).await;
    let mut as_staff = ConfigServiceClient::new(app.channel_as(Domain::Config, &staff_token).await);
    let r = evaluate(&mut as_staff, "staff.only", None).await.unwrap();
    assert!(r.enabled && r.subject_account_id == Some(staff), "{r:?}");
    // Staff hold config:read, so they may ask for another account.
    assert!(!evaluate(&mut as_staff, "staff.only", Some(guest)).await.unwrap().enabled);

    // Without config:read: only for oneself.
    let nobody_token = mint_token(&app, &nobody.to_string(), &[], &[]).await;
    let mut as_nobody = ConfigServiceClient::new(app.channel_as(Domain::Config, &nobody_token).await);
    let r = evaluate(&mut as_nobody, "staff.only", None).await.unwrap();
    assert_eq!(r.reason(), pb::EvaluationReason::RoleNotMatched);
    assert!(evaluate(&mut as_nobody, "everyone", Some(nobody)).await.unwrap().enabled, "own id is fine");
    let err = evaluate(&mut as_nobody, "staff.only", Some(staff)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("config:read"), "{}", err.message());

    // Addressed flag missing → NotFound; bad fields → InvalidArgument naming them.
    assert_eq!(evaluate(&mut admin, "no.such.flag", None).await.unwrap_err().code(), Code::NotFound);
    assert_violations_include(
        &evaluate(&mut admin, "Bad Key", Some(0)).await.unwrap_err(),
        &["key", "subject_account_id"],
    );
    assert_violations_include(
        &evaluate(&mut admin, "everyone", Some(999_999)).await.unwrap_err(),
        &["subject_account_id"],
    );
}

#[tokio::test]
async fn flag_rules_are_validated_on_write() {
    let app = TestApp::spawn(&[Domain::Config]).await;
    let mut c = client(&app).await;
    let err = c
        .create_feature_flag(pb::CreateFeatureFlagRequest {
            feature_flag: Some(flag_with("bad.rules", true, Some(101), &["wizard", " ", "staff", "staff"])),
        })
        .await
        .unwrap_err();
    assert_violations_include(
        &err,
        &["feature_flag.rollout_percentage", "feature_flag.roles[0]", "feature_flag.roles[1]", "feature_flag.roles[3]"],
    );
    assert!(err.message().contains("wizard"), "{}", err.message());
    let err = c
        .create_feature_flag(pb::CreateFeatureFlagRequest {
            feature_flag: Some(flag_with("bad.rules", true, Some(-1), &[])),
        })
        .await
        .unwrap_err();
    assert_violations_include(&err, &["feature_flag.rollout_percentage"]);
    let err = c
        .create_feature_flag(pb::CreateFeatureFlagRequest {
            feature_flag: Some(flag_with("Bad Key", true, None, &["nope"])),
        })
        .await
        .unwrap_err();
    assert_violations_include(&err, &["feature_flag.key", "feature_flag.roles[0]"]);
    let many: Vec<String> = (0..51).map(|i| format!("r{i}")).collect();
    let err = c
        .create_feature_flag(pb::CreateFeatureFlagRequest {
            feature_flag: Some(pb::FeatureFlag { roles: many, ..flag_with("too.many", true, None, &[]) }),
        })
        .await
        .unwrap_err();
    assert_violations_include(&err, &["feature_flag.roles"]);
    // Nothing was created.
    let list = c.list_feature_flags(pb::ListFeatureFlagsRequest { page_size: 0, page_token: String::new() }).await;
    assert_eq!(list.unwrap().into_inner().total_size, 0);

    // Roles are trimmed; the update mask changes only what it names; unset percentage clears it.
    let f = create_flag(&mut c, flag_with("good.rules", true, Some(25), &[" staff ", "guest"])).await;
    assert_eq!((f.rollout_percentage, f.roles.clone()), (Some(25), vec!["staff".to_owned(), "guest".to_owned()]));
    let err = c
        .update_feature_flag(pb::UpdateFeatureFlagRequest {
            feature_flag: Some(flag_with("good.rules", true, Some(200), &["ghost"])),
            update_mask: mask(&["rollout_percentage", "roles"]),
        })
        .await
        .unwrap_err();
    assert_violations_include(&err, &["feature_flag.rollout_percentage", "feature_flag.roles[0]"]);
    let f = c
        .update_feature_flag(pb::UpdateFeatureFlagRequest {
            feature_flag: Some(flag_with("good.rules", false, None, &["admin"])),
            update_mask: mask(&["rollout_percentage"]),
        })
        .await
        .unwrap()
        .into_inner()
        .feature_flag
        .unwrap();
    assert_eq!((f.enabled, f.rollout_percentage, f.roles.len()), (true, None, 2), "only the percentage changed");
    let f = c
        .update_feature_flag(pb::UpdateFeatureFlagRequest {
            feature_flag: Some(flag_with("good.rules", true, Some(5), &[])),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .feature_flag
        .unwrap();
    assert_eq!((f.rollout_percentage, f.roles.len()), (Some(5), 0), "an empty mask replaces every field");
}
