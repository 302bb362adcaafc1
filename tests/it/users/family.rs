//! `phoenix.users.v1.FamilyService`: a guardian (a real account with the seeded guardian
//! role, linked to a `users.guardians` record) sees their own children and nothing else.

use chrono::{Days, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::domain::Domain;
use phoenix_common::time::business_date_in;
use phoenix_proto::active::v1 as apb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::users::v1 as pb;
use phoenix_proto::users::v1::family_service_client::FamilyServiceClient;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::auth::{PASSWORD, TestChannel, create_account, mint_token, role_permissions, staff_token};
use phoenix_tests::grpc::assert_code;
use phoenix_tests::{TestApp, fixtures, school};
use tonic::Code;

type Family = FamilyServiceClient<TestChannel>;

/// A school with a guardian: `child` is theirs, `other` is not.
struct Home {
    app: TestApp,
    family: Family,
    child: i64,
    other: i64,
    room: i64,
    activity: i64,
    staff: i64,
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Links guardian record `guardian` to login `account`.
async fn link_login(conn: &mut AsyncPgConnection, guardian: i64, account: i64) {
    exec(conn, &format!("UPDATE users.guardians SET account_id = {account} WHERE id = {guardian}")).await;
}

/// An access token of a new account holding the seeded guardian role.
async fn guardian_account(app: &TestApp, name: &str) -> (i64, String) {
    let email = format!("{name}-{}@test.example", uuid::Uuid::new_v4().simple());
    let id = create_account(app, &email, PASSWORD, &["guardian"], true).await;
    let token = mint_token(app, &id.to_string(), &["guardian"], &role_permissions(app, "guardian").await).await;
    (id, token)
}

async fn home() -> Home {
    let app = TestApp::spawn(&[Domain::Users, Domain::Active]).await;
    let mut conn = app.db.conn().await;
    let room = fixtures::room(&mut conn, "Mensa", None).await;
    let activity = fixtures::activity(&mut conn, "Basteln", 10).await;
    let staff = fixtures::staff(&mut conn, "Tina", "Team").await;
    let child = fixtures::student(&mut conn, "Mia", "Muster", &fixtures::tag(1)).await;
    let other = fixtures::student(&mut conn, "Ben", "Beispiel", &fixtures::tag(2)).await;
    fixtures::guardian_of(&mut conn, other, "Olaf", "Beispiel", true).await;
    let (account, token) = guardian_account(&app, "petra").await;
    let guardian = fixtures::guardian_of(&mut conn, child, "Petra", "Muster", true).await;
    link_login(&mut conn, guardian, account).await;
    let family = FamilyServiceClient::new(app.channel_as(Domain::Users, &token).await);
    Home { app, family, child, other, room, activity, staff }
}

async fn presence(family: &mut Family, student_id: i64) -> pb::ChildPresence {
    family
        .get_child_presence(pb::GetChildPresenceRequest { student_id })
        .await
        .expect("presence")
        .into_inner()
        .presence
        .expect("presence")
}

#[tokio::test]
async fn a_guardian_lists_exactly_their_own_children() {
    let Home { app, mut family, child, .. } = home().await;
    let children = family.list_my_children(pb::ListMyChildrenRequest {}).await.unwrap().into_inner().children;
    assert_eq!(
        children,
        [pb::Child {
            student_id: child,
            first_name: "Mia".into(),
            last_name: "Muster".into(),
            school_class: "2a".into(),
            group_name: String::new(),
            relationship_type: pb::RelationshipType::Parent as i32,
        }]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_guardian_sees_their_child_in_the_room_after_a_check_in() {
    let Home { app, mut family, child, room, activity, staff, .. } = home().await;
    let before = presence(&mut family, child).await;
    assert_eq!(
        (before.state, before.since, before.today_visits.len()),
        (pb::ChildPresenceState::NotArrived as i32, None, 0)
    );

    let mut active = ActiveServiceClient::new(app.test_channel(Domain::Active).await);
    let session = school::start_session(&mut active, room, activity, staff).await;
    active
        .check_in_student(apb::CheckInStudentRequest { student_id: child, session_id: session, transfer: false })
        .await
        .expect("check in");

    let now = presence(&mut family, child).await;
    assert_eq!(now.state, pb::ChildPresenceState::InRoom as i32);
    assert_eq!(now.room_name, "Mensa");
    assert!(now.since.is_some());
    assert_eq!(now.today_visits.len(), 1);
    let visit = &now.today_visits[0];
    assert_eq!((visit.room_name.as_str(), visit.activity_name.as_str(), visit.exit_time), ("Mensa", "Basteln", None));
    app.stop().await;
}

#[tokio::test]
async fn a_guardian_reads_their_childs_consent_and_pickup_from_today_on() {
    let Home { app, mut family, child, .. } = home().await;
    let consent = family
        .get_child_consent(pb::GetChildConsentRequest { student_id: child })
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    assert_eq!((consent.student_id, consent.accepted, consent.policy_version.as_str()), (child, false, "1.0"));

    let mut users = UsersServiceClient::new(app.test_channel(Domain::Users).await);
    users
        .set_pickup_schedule(pb::SetPickupScheduleRequest {
            student_id: child,
            schedules: vec![pb::PickupScheduleEntry { weekday: 1, pickup_time: "15:30".into(), notes: None }],
        })
        .await
        .expect("schedule");
    let today = business_date_in(Utc::now(), chrono_tz::Europe::Berlin);
    let tomorrow = today.checked_add_days(Days::new(1)).unwrap();
    let yesterday = today.checked_sub_days(Days::new(1)).unwrap();
    for day in [tomorrow, yesterday] {
        let mut conn = app.db.conn().await;
        exec(
            &mut conn,
            &format!(
                "INSERT INTO schedule.student_pickup_exceptions (student_id, exception_date, reason) \
                 VALUES ({child}, '{day}', 'Arzt')"
            ),
        )
        .await;
    }
    let pickup = family
        .get_child_pickup_schedule(pb::GetChildPickupScheduleRequest { student_id: child })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pickup.entries.iter().map(|e| (e.weekday, e.pickup_time.as_str())).collect::<Vec<_>>(), [(1, "15:30")]);
    assert_eq!(
        pickup.exceptions.iter().map(|e| e.exception_date.clone()).collect::<Vec<_>>(),
        [tomorrow.format("%Y-%m-%d").to_string()]
    );
    app.stop().await;
}

#[tokio::test]
async fn another_pupil_and_a_missing_id_are_the_same_not_found() {
    let Home { app, mut family, other, .. } = home().await;
    let missing = other + 10_000;
    for id in [other, missing] {
        let expected = format!("student {id} not found");
        let s = assert_code(
            family.get_child_presence(pb::GetChildPresenceRequest { student_id: id }).await,
            Code::NotFound,
        );
        assert_eq!(s.message(), expected);
        let s =
            assert_code(family.get_child_consent(pb::GetChildConsentRequest { student_id: id }).await, Code::NotFound);
        assert_eq!(s.message(), expected);
        let s = assert_code(
            family.get_child_pickup_schedule(pb::GetChildPickupScheduleRequest { student_id: id }).await,
            Code::NotFound,
        );
        assert_eq!(s.message(), expected);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_guardian_account_without_a_guardian_record_has_no_children() {
    let Home { app, child, .. } = home().await;
    let (_, token) = guardian_account(&app, "nobody").await;
    let mut family = FamilyServiceClient::new(app.channel_as(Domain::Users, &token).await);
    assert!(family.list_my_children(pb::ListMyChildrenRequest {}).await.unwrap().into_inner().children.is_empty());
    assert_code(family.get_child_presence(pb::GetChildPresenceRequest { student_id: child }).await, Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn a_guardian_cannot_use_the_staff_api_and_staff_cannot_use_the_family_api() {
    let Home { app, child, staff, .. } = home().await;
    // A second guardian of the child, with their own login.
    let (account, token) = guardian_account(&app, "paul").await;
    let mut conn = app.db.conn().await;
    let g = fixtures::guardian_of(&mut conn, child, "Paul", "Muster", false).await;
    link_login(&mut conn, g, account).await;
    let mut users = UsersServiceClient::new(app.channel_as(Domain::Users, &token).await);
    assert_code(users.list_students(pb::ListStudentsRequest::default()).await, Code::PermissionDenied);
    assert_code(users.get_student(pb::GetStudentRequest { id: child }).await, Code::PermissionDenied);

    let staff_token = staff_token(&app, staff).await;
    let mut as_staff = FamilyServiceClient::new(app.channel_as(Domain::Users, &staff_token).await);
    assert_code(as_staff.list_my_children(pb::ListMyChildrenRequest {}).await, Code::PermissionDenied);
    assert_code(
        as_staff.get_child_presence(pb::GetChildPresenceRequest { student_id: child }).await,
        Code::PermissionDenied,
    );
    app.stop().await;
}
