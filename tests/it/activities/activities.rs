//! `phoenix.activities.v1`: categories, activities, and enrollments with capacity and
//! `is_open` enforced under a row lock (the original forgot both).

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl;
use pb::activities_service_client::ActivitiesServiceClient;
use phoenix_common::domain::Domain;
use phoenix_proto::activities::v1 as pb;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;

use phoenix_tests::grpc::{assert_precondition, assert_violations_include};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

async fn client(app: &TestApp) -> ActivitiesServiceClient<TestChannel> {
    ActivitiesServiceClient::new(app.test_channel(Domain::Activities).await)
}

async fn staff(app: &TestApp) -> i64 {
    let mut conn = app.db.conn().await;
    sql_query(
        "WITH p AS (INSERT INTO users.persons (first_name, last_name) VALUES ('Frau', 'Lehrer') RETURNING id)
         INSERT INTO users.staff (person_id) SELECT id FROM p RETURNING id",
    )
    .get_result::<Id>(&mut conn)
    .await
    .expect("insert staff")
    .id
}

async fn first_category(c: &mut ActivitiesServiceClient<TestChannel>) -> i64 {
    let r = c.list_categories(pb::ListCategoriesRequest::default()).await.expect("categories").into_inner();
    r.categories[0].id
}

async fn create(
    c: &mut ActivitiesServiceClient<TestChannel>,
    max: i32,
    is_open: bool,
    supervisors: Vec<i64>,
) -> pb::Activity {
    let category_id = first_category(c).await;
    c.create_activity(pb::CreateActivityRequest {
        activity: Some(pb::Activity {
            name: "Fußball".into(),
            max_participants: max,
            is_open,
            category_id,
            ..Default::default()
        }),
        supervisor_staff_ids: supervisors,
    })
    .await
    .expect("create activity")
    .into_inner()
    .activity
    .expect("activity")
}

fn enroll(activity_id: i64, student_id: i64) -> pb::EnrollStudentRequest {
    pb::EnrollStudentRequest { activity_id, student_id }
}

#[tokio::test]
async fn twenty_concurrent_enrollments_into_five_places_admit_exactly_five() {
    let app = TestApp::spawn(&[Domain::Activities]).await;
    let mut c = client(&app).await;
    let a = create(&mut c, 5, true, vec![]).await;
    let kids = fixtures::students(&mut app.db.conn().await, 20).await;
    let tasks: Vec<_> = kids
        .iter()
        .map(|s| {
            let mut c = c.clone();
            let req = enroll(a.id, *s);
            tokio::spawn(async move { c.enroll_student(req).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(status) => assert_precondition(&status, "ACTIVITY_FULL"),
        }
    }
    assert_eq!(ok, 5);
    let got = c.get_activity(pb::GetActivityRequest { id: a.id }).await.unwrap().into_inner().activity.unwrap();
    assert_eq!(got.enrolled_count, 5);
}

#[tokio::test]
async fn enrollment_into_a_closed_activity_is_refused_and_duplicates_already_exist() {
    let app = TestApp::spawn(&[Domain::Activities]).await;
    let mut c = client(&app).await;
    let kids = fixtures::students(&mut app.db.conn().await, 2).await;
    let closed = create(&mut c, 5, false, vec![]).await;
    assert_precondition(&c.enroll_student(enroll(closed.id, kids[0])).await.unwrap_err(), "ACTIVITY_CLOSED");

    let open = create(&mut c, 5, true, vec![]).await;
    assert_eq!(c.enroll_student(enroll(open.id, kids[0])).await.unwrap().into_inner().enrolled_count, 1);
    assert_eq!(c.enroll_student(enroll(open.id, kids[0])).await.unwrap_err().code(), Code::AlreadyExists);
    assert_eq!(c.enroll_student(enroll(999_999, kids[0])).await.unwrap_err().code(), Code::NotFound);
    assert_violations_include(&c.enroll_student(enroll(open.id, 999_999)).await.unwrap_err(), &["student_id"]);
    assert_violations_include(&c.enroll_student(enroll(0, -1)).await.unwrap_err(), &["activity_id", "student_id"]);

    let r = c
        .unenroll_student(pb::UnenrollStudentRequest { activity_id: open.id, student_id: kids[0] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.enrolled_count, 0);
    let err =
        c.unenroll_student(pb::UnenrollStudentRequest { activity_id: open.id, student_id: kids[0] }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn replace_enrollments_is_atomic_and_respects_capacity() {
    let app = TestApp::spawn(&[Domain::Activities]).await;
    let mut c = client(&app).await;
    let kids = fixtures::students(&mut app.db.conn().await, 4).await;
    let a = create(&mut c, 3, true, vec![]).await;
    let replace = |ids: Vec<i64>| pb::ReplaceEnrollmentsRequest { activity_id: a.id, student_ids: ids };
    let r = c.replace_enrollments(replace(vec![kids[2], kids[0]])).await.unwrap().into_inner();
    assert_eq!(r.student_ids, [kids[0], kids[2]]);
    // Too many: nothing changes.
    assert_precondition(&c.replace_enrollments(replace(kids.clone())).await.unwrap_err(), "ACTIVITY_FULL");
    // One unknown student: nothing changes, the index is named.
    let err = c.replace_enrollments(replace(vec![kids[1], 999_999])).await.unwrap_err();
    assert_violations_include(&err, &["student_ids[1]"]);
    let err = c.replace_enrollments(replace(vec![kids[1], kids[1]])).await.unwrap_err();
    assert_violations_include(&err, &["student_ids[1]"]);
    let got = c.get_activity(pb::GetActivityRequest { id: a.id }).await.unwrap().into_inner().activity.unwrap();
    assert_eq!(got.enrolled_count, 2);
    let r = c.replace_enrollments(replace(vec![kids[1], kids[2], kids[3]])).await.unwrap().into_inner();
    assert_eq!(r.student_ids, [kids[1], kids[2], kids[3]]);
}

#[tokio::test]
async fn create_activity_validates_fields_and_references() {
    let app = TestApp::spawn(&[Domain::Activities]).await;
    let mut c = client(&app).await;
    let err = c
        .create_activity(pb::CreateActivityRequest {
            activity: Some(pb::Activity {
                name: " ".into(),
                max_participants: 0,
                category_id: 0,
                ..Default::default()
            }),
            supervisor_staff_ids: vec![3, 3],
        })
        .await
        .unwrap_err();
    assert_violations_include(
        &err,
        &["activity.name", "activity.max_participants", "activity.category_id", "supervisor_staff_ids[1]"],
    );
    let err = c
        .create_activity(pb::CreateActivityRequest {
            activity: Some(pb::Activity {
                name: "Chor".into(),
                max_participants: 10,
                category_id: 999_999,
                planned_room_id: 999_999,
                ..Default::default()
            }),
            supervisor_staff_ids: vec![999_999],
        })
        .await
        .unwrap_err();
    assert_violations_include(&err, &["activity.category_id", "activity.planned_room_id", "supervisor_staff_ids[0]"]);
}

#[tokio::test]
async fn only_creator_supervisors_or_admins_change_enrollments() {
    let app = TestApp::spawn(&[Domain::Activities]).await;
    let mut admin = client(&app).await;
    let (lead, other) = (staff(&app).await, staff(&app).await);
    let kids = fixtures::students(&mut app.db.conn().await, 1).await;
    let a = create(&mut admin, 5, true, vec![lead]).await;
    assert_eq!(a.supervisors, [pb::Supervisor { staff_id: lead, is_primary: true }]);

    // Real staff accounts (role `staff`, which holds activities:enroll) linked to the staff records.
    let as_staff = async |id: i64| {
        let token = phoenix_tests::auth::staff_token(&app, id).await;
        ActivitiesServiceClient::new(app.channel_as(Domain::Activities, &token).await)
    };
    let err = as_staff(other).await.enroll_student(enroll(a.id, kids[0])).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "a staff member who neither created nor supervises it");
    as_staff(lead).await.enroll_student(enroll(a.id, kids[0])).await.unwrap();
}

#[tokio::test]
async fn categories_are_seeded_and_names_unique() {
    let app = TestApp::spawn(&[Domain::Activities]).await;
    let mut c = client(&app).await;
    let r = c.list_categories(pb::ListCategoriesRequest { page_size: 5, page_token: String::new() }).await.unwrap();
    let r = r.into_inner();
    assert_eq!((r.categories.len(), r.total_size), (5, 9));
    assert_eq!(r.categories[0].name, "Sport");
    let new = |name: &str, color: &str| pb::CreateCategoryRequest {
        category: Some(pb::Category { name: name.into(), color: color.into(), ..Default::default() }),
    };
    let made = c.create_category(new("Schach", "7ED321")).await.unwrap().into_inner().category.unwrap();
    assert_eq!(made.color, "#7ED321");
    assert_eq!(c.create_category(new("Sport", "")).await.unwrap_err().code(), Code::AlreadyExists);
    assert_violations_include(
        &c.create_category(new("", "blue")).await.unwrap_err(),
        &["category.name", "category.color"],
    );
}
