//! `phoenix.audit.v1` over real gRPC: the subject-access export (everything about one pupil,
//! nothing about another, recorded), erasure in one transaction with its surviving record,
//! and the audit-trail queries.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::domain::Domain;
use phoenix_db::schema::{active, activities, audit, feedback, schedule, users};
use phoenix_proto::audit::v1 as pb;
use phoenix_proto::audit::v1::audit_service_client::AuditServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, TestChannel, create_account, login};
use phoenix_tests::fixtures::{self, insert_returning_id};
use phoenix_tests::grpc::{As, assert_code, assert_invalid, request};
use phoenix_tests::school::School;
use tonic::Code;

/// What the tests put around two pupils: the subject (`pupils[0]`) and a classmate.
struct World {
    app: TestApp,
    client: AuditServiceClient<TestChannel>,
    school: School,
    subject: i64,
    classmate: i64,
    /// Guardian of the subject only, no account: erased with them.
    only_guardian: i64,
    /// Guardian of both pupils: stays.
    shared_guardian: i64,
    /// Guardian of the subject only, with an account of their own: stays.
    account_guardian: i64,
}

async fn world() -> World {
    let app = TestApp::spawn(&[Domain::Audit, Domain::Auth]).await;
    let client = AuditServiceClient::new(app.test_channel(Domain::Audit).await);
    let mut conn = app.db.conn().await;
    let school = School::create(&mut conn, 2).await;
    let (subject, classmate) = (school.pupils[0].id, school.pupils[1].id);
    let only_guardian = fixtures::guardian_of(&mut conn, subject, "Anna", "Only", true).await;
    let shared_guardian = fixtures::guardian_of(&mut conn, classmate, "Bernd", "Shared", true).await;
    link(&mut conn, subject, shared_guardian).await;
    let account_guardian = fixtures::guardian_of(&mut conn, subject, "Clara", "Account", false).await;
    let account = fixtures::account(&mut conn, "clara@example.org").await;
    diesel::update(users::guardians::table.find(account_guardian))
        .set(users::guardians::account_id.eq(account))
        .execute(&mut conn)
        .await
        .expect("guardian account");

    let session = insert_returning_id(
        &mut conn,
        &format!(
            "INSERT INTO active.groups (room_id, activity_id, start_time) VALUES ({}, {}, now() - interval '2 hours') RETURNING id",
            school.rooms[0], school.activity
        ),
    )
    .await;
    for pupil in [subject, classmate] {
        insert_returning_id(
            &mut conn,
            &format!(
                "INSERT INTO active.visits (student_id, active_group_id, entry_time, exit_time) \
                 VALUES ({pupil}, {session}, now() - interval '1 hour', now() - interval '30 minutes') RETURNING id"
            ),
        )
        .await;
        insert_returning_id(
            &mut conn,
            &format!(
                "INSERT INTO active.attendance (student_id, date, check_in_time) VALUES ({pupil}, CURRENT_DATE, now()) RETURNING id"
            ),
        )
        .await;
    }
    insert_returning_id(
        &mut conn,
        &format!(
            "INSERT INTO users.privacy_consents (student_id, policy_version, accepted, accepted_at, data_retention_days) \
             VALUES ({subject}, '2026-1', true, now(), 14) RETURNING id"
        ),
    )
    .await;
    let entry = insert_returning_id(
        &mut conn,
        &format!(
            "INSERT INTO feedback.entries (student_id, value, day, time) VALUES ({subject}, 'positive', CURRENT_DATE, '12:00') RETURNING id"
        ),
    )
    .await;
    insert_returning_id(
        &mut conn,
        &format!("INSERT INTO feedback.comments (entry_id, body) VALUES ({entry}, 'Gut gemacht') RETURNING id"),
    )
    .await;
    insert_returning_id(
        &mut conn,
        &format!(
            "INSERT INTO activities.enrollments (student_id, activity_id, enrollment_date) VALUES ({subject}, {}, CURRENT_DATE) RETURNING id",
            school.activity
        ),
    )
    .await;
    insert_returning_id(
        &mut conn,
        &format!(
            "INSERT INTO schedule.student_pickup_schedules (student_id, weekday, pickup_time) VALUES ({subject}, 1, '15:30') RETURNING id"
        ),
    )
    .await;
    World { app, client, school, subject, classmate, only_guardian, shared_guardian, account_guardian }
}

async fn link(conn: &mut AsyncPgConnection, student: i64, guardian: i64) {
    insert_returning_id(
        conn,
        &format!(
            "INSERT INTO users.student_guardians (student_id, guardian_id, relationship_type) VALUES ({student}, {guardian}, 'parent') RETURNING id"
        ),
    )
    .await;
}

fn ids(section: &serde_json::Value, key: &str) -> Vec<i64> {
    section.as_array().expect("an array section").iter().map(|row| row[key].as_i64().expect("id")).collect()
}

#[tokio::test]
async fn the_export_holds_everything_about_the_pupil_nothing_about_others_and_is_recorded() {
    let mut w = world().await;
    let reply = w
        .client
        .export_student_data(pb::ExportStudentDataRequest { student_id: w.subject })
        .await
        .expect("export")
        .into_inner();
    let doc: serde_json::Value = serde_json::from_str(&reply.document_json).expect("one JSON document");

    assert_eq!(doc["student"]["id"], w.subject);
    assert_eq!(doc["person"]["first_name"], "Kind0");
    assert_eq!(doc["card"]["id"], w.school.pupils[0].tag, "the pupil's card");
    let guardians: Vec<i64> = doc["guardians"]
        .as_array()
        .expect("guardians")
        .iter()
        .map(|g| g["guardian"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(guardians, [w.only_guardian, w.shared_guardian, w.account_guardian]);
    assert_eq!(doc["guardians"][0]["phone_numbers"].as_array().map(Vec::len), Some(1));
    assert_eq!(doc["privacy_consents"][0]["data_retention_days"], 14);
    for section in ["visits", "attendance", "enrollments", "pickup_schedules", "feedback"] {
        assert_eq!(ids(&doc[section], "student_id"), [w.subject], "{section}: the subject's rows only");
    }
    assert_eq!(doc["feedback"][0]["comments"][0]["body"], "Gut gemacht");
    assert!(!reply.document_json.contains("Kind1"), "nothing about the classmate");

    let record = reply.export.expect("export record");
    assert_eq!(record.student_id, w.subject);
    assert!(record.exported_by.starts_with("account:"), "{}", record.exported_by);
    let sections: serde_json::Value = serde_json::from_str(&record.sections_json).expect("counts");
    assert_eq!((sections["visits"].as_i64(), sections["guardians"].as_i64()), (Some(1), Some(3)));
    let listed = w
        .client
        .list_data_exports(pb::ListDataExportsRequest { student_id: Some(w.subject), ..Default::default() })
        .await
        .expect("list")
        .into_inner();
    assert_eq!((listed.total_size, listed.exports[0].id), (1, record.id));

    assert_code(
        w.client.export_student_data(pb::ExportStudentDataRequest { student_id: 999_999 }).await,
        Code::NotFound,
    );
    assert_invalid(w.client.export_student_data(pb::ExportStudentDataRequest { student_id: 0 }).await, &["student_id"]);
    let staff = w.school.staff;
    let denied = assert_code(
        w.client
            .export_student_data(request(As::Staff(staff), pb::ExportStudentDataRequest { student_id: w.subject }))
            .await,
        Code::PermissionDenied,
    );
    assert!(denied.message().contains("audit:export"), "{}", denied.message());
    let exports: i64 = audit::data_exports::table.count().get_result(&mut w.app.db.conn().await).await.expect("count");
    assert_eq!(exports, 1, "refused exports leave no record");
}

async fn count_for(conn: &mut AsyncPgConnection, student: i64) -> Vec<(&'static str, i64)> {
    vec![
        ("students", users::students::table.find(student).count().get_result(conn).await.expect("students")),
        (
            "visits",
            active::visits::table
                .filter(active::visits::student_id.eq(student))
                .count()
                .get_result(conn)
                .await
                .expect("v"),
        ),
        (
            "attendance",
            active::attendance::table
                .filter(active::attendance::student_id.eq(student))
                .count()
                .get_result(conn)
                .await
                .expect("a"),
        ),
        (
            "feedback",
            feedback::entries::table
                .filter(feedback::entries::student_id.eq(student))
                .count()
                .get_result(conn)
                .await
                .expect("f"),
        ),
        (
            "enrollments",
            activities::enrollments::table
                .filter(activities::enrollments::student_id.eq(student))
                .count()
                .get_result(conn)
                .await
                .expect("e"),
        ),
        (
            "pickups",
            schedule::student_pickup_schedules::table
                .filter(schedule::student_pickup_schedules::student_id.eq(student))
                .count()
                .get_result(conn)
                .await
                .expect("p"),
        ),
        (
            "consents",
            users::privacy_consents::table
                .filter(users::privacy_consents::student_id.eq(student))
                .count()
                .get_result(conn)
                .await
                .expect("c"),
        ),
    ]
}

#[tokio::test]
async fn erasure_removes_the_pupil_and_their_data_in_one_go_and_leaves_a_record() {
    let mut w = world().await;
    let mut conn = w.app.db.conn().await;
    let person: i64 = users::students::table
        .find(w.subject)
        .select(users::students::person_id)
        .first(&mut conn)
        .await
        .expect("person");

    assert_invalid(
        w.client.erase_student(pb::EraseStudentRequest { student_id: w.subject, reason: "  ".into() }).await,
        &["reason"],
    );
    assert_code(
        w.client
            .erase_student(request(
                As::Staff(w.school.staff),
                pb::EraseStudentRequest { student_id: w.subject, reason: "request 17".into() },
            ))
            .await,
        Code::PermissionDenied,
    );
    assert!(count_for(&mut conn, w.subject).await.iter().all(|(_, n)| *n > 0), "refusals erased nothing");

    let deletion = w
        .client
        .erase_student(pb::EraseStudentRequest { student_id: w.subject, reason: "request 2026-17".into() })
        .await
        .expect("erase")
        .into_inner()
        .deletion
        .expect("record");
    assert_eq!(count_for(&mut conn, w.subject).await.iter().map(|(_, n)| *n).sum::<i64>(), 0, "all gone");
    let person_left: i64 = users::persons::table.find(person).count().get_result(&mut conn).await.expect("person");
    assert_eq!(person_left, 0, "the person goes with the student");
    let guardians_left: Vec<i64> = users::guardians::table
        .filter(users::guardians::id.eq_any([w.only_guardian, w.shared_guardian, w.account_guardian]))
        .select(users::guardians::id)
        .order(users::guardians::id)
        .load(&mut conn)
        .await
        .expect("guardians");
    assert_eq!(
        guardians_left,
        [w.shared_guardian, w.account_guardian],
        "only the child's sole, account-less guardian goes"
    );
    assert_eq!(
        count_for(&mut conn, w.classmate).await.iter().find(|(k, _)| *k == "visits").map(|(_, n)| *n),
        Some(1),
        "the classmate keeps their data"
    );
    let card: i64 =
        users::rfid_cards::table.find(&w.school.pupils[0].tag).count().get_result(&mut conn).await.expect("card");
    assert_eq!(card, 1, "the card is school property and stays, unassigned");

    assert_eq!((deletion.entity_type.as_str(), deletion.entity_id), ("student", w.subject));
    assert_eq!(deletion.deletion_type(), pb::DeletionType::GdprRequest);
    assert_eq!(deletion.reason, "request 2026-17");
    let counts: serde_json::Value = serde_json::from_str(&deletion.metadata_json).expect("counts");
    assert_eq!(
        (counts["visits"].as_i64(), counts["guardians"].as_i64(), counts["guardian_links"].as_i64()),
        (Some(1), Some(1), Some(3))
    );
    let sum: i64 = counts.as_object().expect("object").values().filter_map(|v| v.as_i64()).sum();
    assert_eq!(i64::from(deletion.records_deleted), sum);

    let listed = w
        .client
        .list_data_deletions(pb::ListDataDeletionsRequest {
            deletion_type: pb::DeletionType::GdprRequest as i32,
            entity_id: Some(w.subject),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!((listed.total_size, listed.deletions[0].id), (1, deletion.id), "the record outlives the pupil");
    assert_code(
        w.client.erase_student(pb::EraseStudentRequest { student_id: w.subject, reason: "again".into() }).await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn auth_events_are_listed_newest_first_with_filters_and_pages() {
    let app = TestApp::spawn(&[Domain::Audit, Domain::Auth]).await;
    let mut client = AuditServiceClient::new(app.test_channel(Domain::Audit).await);
    let account = create_account(&app, "eva@example.org", PASSWORD, &["staff"], true).await;
    login(&app, "eva@example.org", PASSWORD).await.expect("login");
    login(&app, "eva@example.org", PASSWORD).await.expect("login");
    login(&app, "eva@example.org", "Wrong-pass1!").await.expect_err("wrong password");

    let list = |event_type: &str, failures_only: bool, page_size: i32, page_token: String| pb::ListAuthEventsRequest {
        account_id: Some(account),
        event_type: event_type.into(),
        failures_only,
        page_size,
        page_token,
    };
    let logins = client.list_auth_events(list("login", false, 0, String::new())).await.expect("list").into_inner();
    assert_eq!(logins.total_size, 3);
    assert_eq!(logins.events.iter().map(|e| e.success).collect::<Vec<_>>(), [false, true, true], "newest first");
    let failures = client.list_auth_events(list("login", true, 0, String::new())).await.expect("list").into_inner();
    assert_eq!((failures.total_size, failures.events[0].success), (1, false));

    let first = client.list_auth_events(list("login", false, 2, String::new())).await.expect("page 1").into_inner();
    let second = client
        .list_auth_events(list("login", false, 2, first.next_page_token.clone()))
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!((first.events.len(), second.events.len(), second.next_page_token.as_str()), (2, 1, ""));
    assert!(first.events.iter().all(|a| second.events.iter().all(|b| a.id > b.id)), "pages do not overlap");
    assert_invalid(client.list_auth_events(list("login", true, 2, first.next_page_token)).await, &["page_token"]);
    assert_invalid(client.list_auth_events(list("coffee_break", false, 0, String::new())).await, &["event_type"]);
}

/// The one list of auth event types (`phoenix_db::auth_events`) is exactly what the latest
/// `ck_audit_auth_events_event_type` allows, read back from `pg_catalog` after migrating.
#[tokio::test]
async fn auth_event_types_match_the_check_constraint() {
    #[derive(QueryableByName)]
    struct Definition {
        #[diesel(sql_type = diesel::sql_types::Text)]
        definition: String,
    }
    let db = phoenix_tests::TestDb::new().await;
    let mut conn = db.conn().await;
    let rows: Vec<Definition> = diesel::sql_query(
        "SELECT pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'audit' AND t.relname = 'auth_events' AND c.conname = 'ck_audit_auth_events_event_type'",
    )
    .load(&mut conn)
    .await
    .expect("read the constraint");
    let [Definition { definition }] = rows.as_slice() else {
        panic!("expected one ck_audit_auth_events_event_type, found {}", rows.len())
    };
    assert!(definition.starts_with("CHECK") && definition.contains("event_type"), "{definition}");
    // The quoted literals of `CHECK (((event_type)::text = ANY ((ARRAY['login'::…, …])::text[])))`.
    let mut allowed: Vec<&str> = definition.split('\'').skip(1).step_by(2).collect();
    let mut listed = phoenix_db::auth_events::AUTH_EVENT_TYPES.to_vec();
    allowed.sort_unstable();
    listed.sort_unstable();
    assert_eq!(allowed, listed, "CHECK constraint {definition} vs phoenix_db::auth_events::AUTH_EVENT_TYPES");
}
