//! `phoenix.feedback.v1`: entries (single and all-or-nothing batch), list filters and
//! pagination, comments authored by the caller, and the seeded `staff` role's limits.

use chrono::Utc;
use diesel::sql_types::BigInt;
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl;
use pb::feedback_service_client::FeedbackServiceClient;
use phoenix_common::domain::Domain;
use phoenix_proto::feedback::v1 as pb;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;

use phoenix_tests::grpc::assert_violations_include;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

type Client = FeedbackServiceClient<TestChannel>;

async fn client(app: &TestApp) -> Client {
    FeedbackServiceClient::new(app.test_channel(Domain::Feedback).await)
}

/// A staff member and the account a `staff` token for it is minted for.
async fn staff_member(app: &TestApp) -> (String, i64) {
    let mut conn = app.db.conn().await;
    let staff = sql_query(
        "WITH p AS (INSERT INTO users.persons (first_name, last_name) VALUES ('Frau', 'Lehrer') RETURNING id)
         INSERT INTO users.staff (person_id) SELECT id FROM p RETURNING id",
    )
    .get_result::<Id>(&mut conn)
    .await
    .expect("insert staff")
    .id;
    let token = phoenix_tests::auth::staff_token(app, staff).await;
    let account = sql_query(
        "SELECT p.account_id AS id FROM users.staff s JOIN users.persons p ON p.id = s.person_id WHERE s.id = $1",
    )
    .bind::<BigInt, _>(staff)
    .get_result::<Id>(&mut conn)
    .await
    .expect("linked account")
    .id;
    (token, account)
}

/// The seeded virtual device `WEB-MANUAL-001`.
async fn web_device(app: &TestApp) -> i64 {
    let mut conn = app.db.conn().await;
    sql_query("SELECT id FROM iot.devices WHERE device_id = 'WEB-MANUAL-001'")
        .get_result::<Id>(&mut conn)
        .await
        .expect("seeded device")
        .id
}

fn entry(student_id: i64, value: pb::FeedbackValue, day: &str, time: &str) -> pb::FeedbackEntry {
    pb::FeedbackEntry { student_id, value: value as i32, day: day.into(), time: time.into(), ..Default::default() }
}

fn create(e: pb::FeedbackEntry) -> pb::CreateFeedbackEntryRequest {
    pb::CreateFeedbackEntryRequest { entry: Some(e) }
}

fn berlin_today() -> String {
    Utc::now().with_timezone(&chrono_tz::Europe::Berlin).date_naive().format("%Y-%m-%d").to_string()
}

async fn list(c: &mut Client, req: pb::ListFeedbackEntriesRequest) -> pb::ListFeedbackEntriesResponse {
    c.list_feedback_entries(req).await.expect("list").into_inner()
}

async fn list_err(c: &mut Client, req: pb::ListFeedbackEntriesRequest) -> tonic::Status {
    c.list_feedback_entries(req).await.expect_err("the list request is invalid")
}

/// One time zone for every domain: the feedback domain's "today" is the configured zone's (here
/// UTC+14, a day ahead of UTC for ten hours of every day and never behind Berlin).
#[tokio::test]
async fn the_default_day_is_today_in_the_configured_school_zone() {
    let zone = chrono_tz::Pacific::Kiritimati;
    let app = TestApp::spawn_with(&[Domain::Feedback], |c| c.timezone = zone).await;
    let mut c = client(&app).await;
    let kid = fixtures::students(&mut app.db.conn().await, 1).await[0];
    let today = || Utc::now().with_timezone(&zone).date_naive().format("%Y-%m-%d").to_string();
    let before = today();
    let made = c
        .create_feedback_entry(create(entry(kid, pb::FeedbackValue::Positive, "", "09:00:00")))
        .await
        .expect("create")
        .into_inner()
        .entry
        .expect("entry");
    assert!(made.day == before || made.day == today(), "{} is today in {zone}", made.day);
}

#[tokio::test]
async fn an_entry_round_trips_and_its_day_defaults_to_today_in_berlin() {
    let app = TestApp::spawn(&[Domain::Feedback]).await;
    let mut c = client(&app).await;
    let kid = fixtures::students(&mut app.db.conn().await, 1).await[0];
    let device = web_device(&app).await;

    let before = berlin_today();
    let mut e = entry(kid, pb::FeedbackValue::Negative, "", "12:05:30");
    e.is_mensa_feedback = true;
    e.device_id = device;
    let made = c.create_feedback_entry(create(e)).await.expect("create").into_inner().entry.expect("entry");
    let after = berlin_today();
    assert!(made.id > 0);
    assert!(made.day == before || made.day == after, "{} is today in Berlin", made.day);
    assert_eq!(
        (made.student_id, made.value, made.time.as_str(), made.is_mensa_feedback, made.device_id),
        (kid, pb::FeedbackValue::Negative as i32, "12:05:30", true, device)
    );
    assert!(made.create_time.is_some());

    let got = c.get_feedback_entry(pb::GetFeedbackEntryRequest { id: made.id }).await.expect("get").into_inner();
    assert_eq!(got.entry.as_ref(), Some(&made));

    let day = entry(kid, pb::FeedbackValue::Positive, "2024-02-29", "07:00:00");
    let leap = c.create_feedback_entry(create(day)).await.expect("create").into_inner().entry.expect("entry");
    assert_eq!((leap.day.as_str(), leap.device_id, leap.is_mensa_feedback), ("2024-02-29", 0, false));

    c.delete_feedback_entry(pb::DeleteFeedbackEntryRequest { id: made.id }).await.expect("delete");
    let err = c.get_feedback_entry(pb::GetFeedbackEntryRequest { id: made.id }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c.delete_feedback_entry(pb::DeleteFeedbackEntryRequest { id: made.id }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let all = list(&mut c, pb::ListFeedbackEntriesRequest::default()).await;
    assert_eq!((all.total_size, all.entries), (1, vec![leap]));
}

#[tokio::test]
async fn create_checks_every_field_and_every_reference() {
    let app = TestApp::spawn(&[Domain::Feedback]).await;
    let mut c = client(&app).await;
    let kid = fixtures::students(&mut app.db.conn().await, 1).await[0];
    let ok = || entry(kid, pb::FeedbackValue::Neutral, "2026-03-02", "10:00:00");

    let err = c.create_feedback_entry(pb::CreateFeedbackEntryRequest { entry: None }).await.unwrap_err();
    assert_violations_include(&err, &["entry"]);

    // Every broken field at once, each named.
    let bad = pb::FeedbackEntry {
        student_id: 0,
        value: pb::FeedbackValue::Unspecified as i32,
        day: "2026-02-30".into(),
        time: "25:00:00".into(),
        device_id: -1,
        ..Default::default()
    };
    let err = c.create_feedback_entry(create(bad)).await.unwrap_err();
    assert_violations_include(&err, &["entry.student_id", "entry.value", "entry.day", "entry.time", "entry.device_id"]);

    // One rule at a time.
    let cases: Vec<(pb::FeedbackEntry, &str)> = vec![
        (pb::FeedbackEntry { student_id: -5, ..ok() }, "entry.student_id"),
        (pb::FeedbackEntry { value: 0, ..ok() }, "entry.value"),
        (pb::FeedbackEntry { value: 42, ..ok() }, "entry.value"),
        (pb::FeedbackEntry { day: "02.03.2026".into(), ..ok() }, "entry.day"),
        (pb::FeedbackEntry { day: "2026-3-2".into(), ..ok() }, "entry.day"),
        (pb::FeedbackEntry { time: String::new(), ..ok() }, "entry.time"),
        (pb::FeedbackEntry { time: "10:00".into(), ..ok() }, "entry.time"),
        (pb::FeedbackEntry { device_id: -1, ..ok() }, "entry.device_id"),
        // References: a missing student or device is a bad request field, not NotFound.
        (pb::FeedbackEntry { student_id: 999_999, ..ok() }, "entry.student_id"),
        (pb::FeedbackEntry { device_id: 999_999, ..ok() }, "entry.device_id"),
    ];
    for (e, field) in cases {
        let err = c.create_feedback_entry(create(e.clone())).await.expect_err(field);
        assert_violations_include(&err, &[field]);
        let got = tonic_types::StatusExt::get_error_details(&err);
        let fields: Vec<_> =
            got.bad_request().expect("BadRequest").field_violations.iter().map(|v| v.field.clone()).collect();
        assert_eq!(fields, [field], "only {field} is wrong in {e:?}");
    }

    assert_violations_include(&c.get_feedback_entry(pb::GetFeedbackEntryRequest { id: 0 }).await.unwrap_err(), &["id"]);
    assert_violations_include(
        &c.delete_feedback_entry(pb::DeleteFeedbackEntryRequest { id: -1 }).await.unwrap_err(),
        &["id"],
    );
    let err = c.get_feedback_entry(pb::GetFeedbackEntryRequest { id: 999_999 }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Nothing of the above was written.
    assert_eq!(list(&mut c, pb::ListFeedbackEntriesRequest::default()).await.total_size, 0);
}

#[tokio::test]
async fn a_batch_is_all_or_nothing_and_names_each_bad_index() {
    let app = TestApp::spawn(&[Domain::Feedback]).await;
    let mut c = client(&app).await;
    let kids = fixtures::students(&mut app.db.conn().await, 3).await;
    let batch = |entries: Vec<pb::FeedbackEntry>| pb::BatchCreateFeedbackEntriesRequest { entries };
    let good: Vec<_> = kids
        .iter()
        .chain(&kids[..1])
        .map(|k| entry(*k, pb::FeedbackValue::Positive, "2026-03-02", "12:00:00"))
        .collect();

    // One unknown student (found only in the database): nothing is written, index 3 named.
    let mut items = good.clone();
    items[3].student_id = 999_999;
    let err = c.batch_create_feedback_entries(batch(items)).await.unwrap_err();
    assert_violations_include(&err, &["entries[3].student_id"]);
    assert_eq!(list(&mut c, pb::ListFeedbackEntriesRequest::default()).await.total_size, 0);

    // Several bad items: every one listed with its index and field.
    let mut items = good.clone();
    items[1].value = 0;
    items[2].time = "noon".into();
    items[3].day = "2026-13-01".into();
    let err = c.batch_create_feedback_entries(batch(items)).await.unwrap_err();
    assert_violations_include(&err, &["entries[1].value", "entries[2].time", "entries[3].day"]);

    assert_violations_include(&c.batch_create_feedback_entries(batch(vec![])).await.unwrap_err(), &["entries"]);
    let too_many = vec![good[0].clone(); 501];
    assert_violations_include(&c.batch_create_feedback_entries(batch(too_many)).await.unwrap_err(), &["entries"]);
    assert_eq!(list(&mut c, pb::ListFeedbackEntriesRequest::default()).await.total_size, 0);

    // All good: every entry stored, in request order.
    let made = c.batch_create_feedback_entries(batch(good.clone())).await.expect("batch").into_inner().entries;
    assert_eq!(made.len(), 4);
    let students: Vec<i64> = made.iter().map(|e| e.student_id).collect();
    assert_eq!(students, [kids[0], kids[1], kids[2], kids[0]]);
    assert!(made.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(list(&mut c, pb::ListFeedbackEntriesRequest::default()).await.total_size, 4);
}

#[tokio::test]
async fn lists_filter_by_student_day_range_and_mensa_and_page_with_true_totals() {
    let app = TestApp::spawn(&[Domain::Feedback]).await;
    let mut c = client(&app).await;
    let kids = fixtures::students(&mut app.db.conn().await, 2).await;
    let (a, b) = (kids[0], kids[1]);
    // a: 1st, 2nd, 2nd (mensa), 3rd, 5th of March; b: 2nd and 4th.
    let mut items = vec![
        entry(a, pb::FeedbackValue::Positive, "2026-03-01", "08:00:00"),
        entry(a, pb::FeedbackValue::Neutral, "2026-03-02", "08:00:00"),
        entry(a, pb::FeedbackValue::Negative, "2026-03-02", "12:30:00"),
        entry(a, pb::FeedbackValue::Positive, "2026-03-03", "08:00:00"),
        entry(a, pb::FeedbackValue::Positive, "2026-03-05", "08:00:00"),
        entry(b, pb::FeedbackValue::Positive, "2026-03-02", "09:00:00"),
        entry(b, pb::FeedbackValue::Negative, "2026-03-04", "09:00:00"),
    ];
    items[2].is_mensa_feedback = true;
    let made = c
        .batch_create_feedback_entries(pb::BatchCreateFeedbackEntriesRequest { entries: items })
        .await
        .expect("batch")
        .into_inner()
        .entries;
    let ids = |r: &pb::ListFeedbackEntriesResponse| r.entries.iter().map(|e| e.id).collect::<Vec<_>>();
    let req = |student_id: i64, day: &str, start: &str, end: &str| pb::ListFeedbackEntriesRequest {
        student_id,
        day: day.into(),
        start_day: start.into(),
        end_day: end.into(),
        ..Default::default()
    };

    let r = list(&mut c, req(a, "", "", "")).await;
    assert_eq!((ids(&r), r.total_size), (made[..5].iter().map(|e| e.id).collect(), 5));
    let r = list(&mut c, req(0, "2026-03-02", "", "")).await;
    assert_eq!((ids(&r), r.total_size), (vec![made[1].id, made[2].id, made[5].id], 3));
    let r = list(&mut c, req(b, "2026-03-02", "", "")).await;
    assert_eq!((ids(&r), r.total_size), (vec![made[5].id], 1));
    // The range is inclusive at both ends; open ends are allowed.
    let r = list(&mut c, req(0, "", "2026-03-02", "2026-03-04")).await;
    assert_eq!(r.total_size, 5);
    let r = list(&mut c, req(a, "", "2026-03-03", "")).await;
    assert_eq!((ids(&r), r.total_size), (vec![made[3].id, made[4].id], 2));
    let r = list(&mut c, req(0, "", "", "2026-03-01")).await;
    assert_eq!((ids(&r), r.total_size), (vec![made[0].id], 1));
    let r = list(&mut c, req(0, "", "2026-03-02", "2026-03-02")).await;
    assert_eq!(r.total_size, 3, "a one-day range");
    let mensa = pb::ListFeedbackEntriesRequest { is_mensa_feedback: Some(true), ..Default::default() };
    assert_eq!(ids(&list(&mut c, mensa).await), [made[2].id]);
    let other = pb::ListFeedbackEntriesRequest { is_mensa_feedback: Some(false), ..Default::default() };
    assert_eq!(list(&mut c, other).await.total_size, 6);
    assert_eq!(list(&mut c, req(999_999, "", "", "")).await.total_size, 0);

    // Bad filters, each named.
    assert_violations_include(&list_err(&mut c, req(0, "", "2026-03-04", "2026-03-02")).await, &["end_day"]);
    assert_violations_include(&list_err(&mut c, req(0, "2026-03-02", "2026-03-01", "")).await, &["day"]);
    assert_violations_include(&list_err(&mut c, req(0, "03/02/2026", "", "")).await, &["day"]);
    assert_violations_include(&list_err(&mut c, req(0, "", "2026-02-30", "x")).await, &["start_day", "end_day"]);
    assert_violations_include(&list_err(&mut c, req(-1, "", "", "")).await, &["student_id"]);
    assert_violations_include(
        &list_err(&mut c, pb::ListFeedbackEntriesRequest { page_size: 501, ..Default::default() }).await,
        &["page_size"],
    );

    // Pages of 2 over the 5 entries from the 2nd to the 4th: 2 + 2 + 1, total 5 on each page.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut sizes = Vec::new();
    loop {
        let page = pb::ListFeedbackEntriesRequest {
            page_size: 2,
            page_token: token,
            ..req(0, "", "2026-03-02", "2026-03-04")
        };
        let r = list(&mut c, page).await;
        assert_eq!(r.total_size, 5, "the true total on every page");
        sizes.push(r.entries.len());
        seen.extend(ids(&r));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(sizes, [2, 2, 1]);
    let expected: Vec<i64> = [1, 2, 3, 5, 6].iter().map(|i| made[*i].id).collect();
    assert_eq!(seen, expected, "every match once, ascending");

    // A token is bound to its filters.
    let first = list(&mut c, pb::ListFeedbackEntriesRequest { page_size: 2, ..req(a, "", "", "") }).await;
    assert!(!first.next_page_token.is_empty());
    let replay =
        pb::ListFeedbackEntriesRequest { page_size: 2, page_token: first.next_page_token, ..req(b, "", "", "") };
    assert_violations_include(&list_err(&mut c, replay).await, &["page_token"]);
    // Exactly a full last page ends without a token.
    let r = list(&mut c, pb::ListFeedbackEntriesRequest { page_size: 2, ..req(b, "", "", "") }).await;
    assert_eq!((r.entries.len(), r.next_page_token.as_str(), r.total_size), (2, "", 2));
}

#[tokio::test]
async fn comments_are_authored_by_the_caller_validated_and_paged() {
    let app = TestApp::spawn(&[Domain::Feedback]).await;
    let mut admin = client(&app).await;
    let kid = fixtures::students(&mut app.db.conn().await, 1).await[0];
    let e = admin
        .create_feedback_entry(create(entry(kid, pb::FeedbackValue::Negative, "2026-03-02", "12:00:00")))
        .await
        .expect("create")
        .into_inner()
        .entry
        .expect("entry");
    let (token, account) = staff_member(&app).await;
    let mut staff = FeedbackServiceClient::new(app.channel_as(Domain::Feedback, &token).await);
    let comment = |entry_id: i64, body: &str| pb::CreateFeedbackCommentRequest {
        entry_id,
        comment: Some(pb::FeedbackComment { body: body.into(), author_account_id: 424_242, ..Default::default() }),
    };

    // The author is the calling account, whatever the request claims.
    let made = staff.create_feedback_comment(comment(e.id, "  Hat nichts gegessen.  ")).await.expect("comment");
    let made = made.into_inner().comment.expect("comment");
    assert_eq!((made.entry_id, made.author_account_id, made.body.as_str()), (e.id, account, "Hat nichts gegessen."));
    assert!(made.create_time.is_some());

    assert_violations_include(
        &staff.create_feedback_comment(comment(e.id, "   ")).await.unwrap_err(),
        &["comment.body"],
    );
    let long = "ü".repeat(2001);
    assert_violations_include(
        &staff.create_feedback_comment(comment(e.id, &long)).await.unwrap_err(),
        &["comment.body"],
    );
    staff.create_feedback_comment(comment(e.id, &"ü".repeat(2000))).await.expect("2000 characters are fine");
    let none = pb::CreateFeedbackCommentRequest { entry_id: e.id, comment: None };
    assert_violations_include(&staff.create_feedback_comment(none).await.unwrap_err(), &["comment"]);
    assert_violations_include(&staff.create_feedback_comment(comment(0, "x")).await.unwrap_err(), &["entry_id"]);
    let err = staff.create_feedback_comment(comment(999_999, "x")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    for i in 0..3 {
        admin.create_feedback_comment(comment(e.id, &format!("Notiz {i}"))).await.expect("comment");
    }
    let page = |page_token: String| pb::ListFeedbackCommentsRequest { entry_id: e.id, page_size: 3, page_token };
    let first = staff.list_feedback_comments(page(String::new())).await.expect("list").into_inner();
    assert_eq!((first.comments.len(), first.total_size), (3, 5));
    assert_eq!(first.comments[0].id, made.id);
    let second = staff.list_feedback_comments(page(first.next_page_token)).await.expect("list").into_inner();
    assert_eq!((second.comments.len(), second.total_size, second.next_page_token.as_str()), (2, 5, ""));
    assert_ne!(second.comments[0].author_account_id, account, "written by the admin account");
    let err = staff
        .list_feedback_comments(pb::ListFeedbackCommentsRequest { entry_id: 999_999, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Deleting the entry removes its comments with it.
    admin.delete_feedback_entry(pb::DeleteFeedbackEntryRequest { id: e.id }).await.expect("delete");
    let err = admin.list_feedback_comments(page(String::new())).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn the_staff_role_reads_lists_and_creates_but_cannot_delete() {
    let app = TestApp::spawn(&[Domain::Feedback]).await;
    let kid = fixtures::students(&mut app.db.conn().await, 1).await[0];
    let (token, _) = staff_member(&app).await;
    let mut staff = FeedbackServiceClient::new(app.channel_as(Domain::Feedback, &token).await);

    let e = staff
        .create_feedback_entry(create(entry(kid, pb::FeedbackValue::Positive, "", "13:00:00")))
        .await
        .expect("staff hold feedback:create")
        .into_inner()
        .entry
        .expect("entry");
    staff.get_feedback_entry(pb::GetFeedbackEntryRequest { id: e.id }).await.expect("staff hold feedback:read");
    let r = staff.list_feedback_entries(pb::ListFeedbackEntriesRequest::default()).await.expect("feedback:list");
    assert_eq!(r.into_inner().total_size, 1);

    let err = staff.delete_feedback_entry(pb::DeleteFeedbackEntryRequest { id: e.id }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("feedback:delete"), "{}", err.message());
    let still = staff.get_feedback_entry(pb::GetFeedbackEntryRequest { id: e.id }).await.expect("not deleted");
    assert_eq!(still.into_inner().entry, Some(e));
}
