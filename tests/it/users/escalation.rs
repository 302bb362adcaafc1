//! Privilege escalations through `phoenix.users.v1.UsersService` that are closed: each test
//! tries the attack as a staff member without full access to the pupil concerned.

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::domain::Domain;
use phoenix_proto::users::v1 as pb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::grpc::{As, assert_code, mask, request};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;

type Client = UsersServiceClient<TestChannel>;

/// `teacher` leads the group of `pupil` (tag `04AABBCCDD`, one guardian); `other` leads
/// another group.
struct School {
    app: TestApp,
    client: Client,
    pupil: pb::Student,
    guardian: i64,
    teacher: pb::Staff,
    other: pb::Staff,
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn create_staff(client: &mut Client, first: &str, notes: &str) -> pb::Staff {
    let staff = pb::Staff {
        first_name: first.into(),
        last_name: "Team".into(),
        is_teacher: true,
        staff_notes: Some(notes.into()),
        ..Default::default()
    };
    client
        .create_staff(pb::CreateStaffRequest { staff: Some(staff) })
        .await
        .expect("call")
        .into_inner()
        .staff
        .expect("present")
}

async fn school() -> School {
    let app = TestApp::spawn(&[Domain::Users]).await;
    let mut client = UsersServiceClient::new(app.test_channel(Domain::Users).await);
    let mut conn = app.db.conn().await;
    let foxes = fixtures::group(&mut conn, "Füchse").await;
    let owls = fixtures::group(&mut conn, "Eulen").await;
    let teacher = create_staff(&mut client, "Tina", "Probezeit bis Mai").await;
    let other = create_staff(&mut client, "Olga", "Teilzeit").await;
    fixtures::group_teacher(&mut conn, foxes, teacher.teacher_id.expect("present")).await;
    fixtures::group_teacher(&mut conn, owls, other.teacher_id.expect("present")).await;
    let pupil = pb::Student {
        first_name: "Mia".into(),
        last_name: "Muster".into(),
        school_class: "2a".into(),
        group_id: Some(foxes),
        tag_id: Some("04AABBCCDD".into()),
        ..Default::default()
    };
    let pupil = client
        .create_student(pb::CreateStudentRequest { student: Some(pupil) })
        .await
        .expect("call")
        .into_inner()
        .student;
    let pupil = pupil.expect("present");
    let guardian = fixtures::guardian_of(&mut conn, pupil.id, "Petra", "Muster", true).await;
    School { app, client, pupil, guardian, teacher, other }
}

#[tokio::test]
async fn staff_cannot_move_a_teachers_person_onto_their_own_login() {
    let School { app, mut client, teacher, other, .. } = school().await;
    // Olga controls a second login and tries to make it Tina (and so inherit Tina's group).
    let spare = fixtures::account(&mut app.db.conn().await, "spare@test.example").await;
    let hijack = |caller| {
        let req = pb::UpdatePersonRequest {
            person: Some(pb::Person { id: teacher.person_id, account_id: Some(spare), ..Default::default() }),
            update_mask: mask(&["account_id"]),
        };
        request(caller, req)
    };
    assert_code(client.update_person(hijack(As::Staff(other.id))).await, Code::PermissionDenied);
    // A change of the name alone stays open to staff.
    let rename = pb::UpdatePersonRequest {
        person: Some(pb::Person { id: teacher.person_id, first_name: "Tine".into(), ..Default::default() }),
        update_mask: mask(&["first_name"]),
    };
    client.update_person(request(As::Staff(other.id), rename)).await.expect("rename");
    let moved =
        client.update_person(hijack(As::Admin)).await.expect("an admin may").into_inner().person.expect("present");
    assert_eq!(moved.account_id, Some(spare));
    app.stop().await;
}

#[tokio::test]
async fn only_admins_create_persons_or_staff_with_a_login() {
    let School { app, mut client, other, .. } = school().await;
    let mut conn = app.db.conn().await;
    let login = fixtures::account(&mut conn, "login@test.example").await;
    let person = |first: &str| pb::Person {
        first_name: first.into(),
        last_name: "Neu".into(),
        account_id: Some(login),
        ..Default::default()
    };
    let create = |first: &str| pb::CreatePersonRequest { person: Some(person(first)) };
    assert_code(client.create_person(request(As::Staff(other.id), create("A"))).await, Code::PermissionDenied);

    // A person who already has a login cannot be made staff by staff either.
    let holder = fixtures::person(&mut conn, "Lena", "Login", None).await;
    let second = fixtures::account(&mut conn, "lena@test.example").await;
    exec(&mut conn, &format!("UPDATE users.persons SET account_id = {second} WHERE id = {holder}")).await;
    let make_staff = || pb::CreateStaffRequest { staff: Some(pb::Staff { person_id: holder, ..Default::default() }) };
    assert_code(client.create_staff(request(As::Staff(other.id), make_staff())).await, Code::PermissionDenied);

    client.create_person(request(As::Admin, create("B"))).await.expect("an admin may link a login");
    client.create_staff(request(As::Admin, make_staff())).await.expect("an admin may");
    app.stop().await;
}

#[tokio::test]
async fn pickup_data_and_guardian_links_need_full_access_to_the_pupil() {
    let School { app, mut client, pupil, guardian, teacher, other, .. } = school().await;
    let olga = As::Staff(other.id);
    let schedule = || pb::GetPickupScheduleRequest { student_id: pupil.id };
    assert_code(client.get_pickup_schedule(request(olga, schedule())).await, Code::PermissionDenied);
    client.get_pickup_schedule(request(As::Staff(teacher.id), schedule())).await.expect("the group's teacher");
    assert_code(
        client.get_pickup_schedule(request(olga, pb::GetPickupScheduleRequest { student_id: pupil.id + 1000 })).await,
        Code::NotFound,
    );

    let by_student = || pb::ListStudentGuardiansRequest { student_id: Some(pupil.id), guardian_id: None };
    let by_guardian = || pb::ListStudentGuardiansRequest { student_id: None, guardian_id: Some(guardian) };
    assert_code(client.list_student_guardians(request(olga, by_student())).await, Code::PermissionDenied);
    assert_code(client.list_student_guardians(request(olga, by_guardian())).await, Code::PermissionDenied);
    let guardians_of = || pb::ListGuardiansRequest { student_id: Some(pupil.id), ..Default::default() };
    assert_code(client.list_guardians(request(olga, guardians_of())).await, Code::PermissionDenied);
    let tina = As::Staff(teacher.id);
    let links = client.list_student_guardians(request(tina, by_student())).await.expect("call").into_inner().links;
    assert_eq!(links.iter().map(|l| l.guardian_id).collect::<Vec<_>>(), [guardian]);
    client.list_guardians(request(tina, guardians_of())).await.expect("the group's teacher");

    // The writes were already refused (regression guard).
    let set = pb::SetPickupScheduleRequest {
        student_id: pupil.id,
        schedules: vec![pb::PickupScheduleEntry { weekday: 1, pickup_time: "15:00".into(), notes: None }],
    };
    assert_code(client.set_pickup_schedule(request(olga, set)).await, Code::PermissionDenied);
    assert_code(
        client.unlink_guardian(request(olga, pb::UnlinkGuardianRequest { id: links[0].id })).await,
        Code::PermissionDenied,
    );
    app.stop().await;
}

#[tokio::test]
async fn a_tag_lookup_does_not_reveal_a_pupil_the_caller_may_not_fully_see() {
    let School { app, mut client, pupil, teacher, other, .. } = school().await;
    let lookup = || pb::ListPersonsRequest { tag_id: Some("04aabbccdd".into()), ..Default::default() };
    let as_other = client.list_persons(request(As::Staff(other.id), lookup())).await.expect("call").into_inner();
    assert_eq!((as_other.persons.len(), as_other.total_size), (0, 0));
    let as_teacher = client.list_persons(request(As::Staff(teacher.id), lookup())).await.expect("call").into_inner();
    assert_eq!(as_teacher.persons.iter().map(|p| p.id).collect::<Vec<_>>(), [pupil.person_id]);
    assert_eq!(as_teacher.total_size, 1);
    let card = client
        .get_rfid_card(request(As::Staff(other.id), pb::GetRfidCardRequest { tag_id: "04AABBCCDD".into() }))
        .await
        .expect("present")
        .into_inner()
        .card
        .expect("present");
    assert_eq!(card.person_id, None);
    app.stop().await;
}

#[tokio::test]
async fn staff_notes_are_for_admins_only() {
    let School { app, mut client, teacher, other, .. } = school().await;
    let get = |caller| request(caller, pb::GetStaffRequest { id: teacher.id });
    let seen = client.get_staff(get(As::Staff(other.id))).await.expect("call").into_inner().staff.expect("present");
    assert_eq!(seen.staff_notes, None);
    let listed = client.list_staff(request(As::Staff(other.id), pb::ListStaffRequest::default())).await.expect("call");
    assert!(listed.into_inner().staff.iter().all(|s| s.staff_notes.is_none()));
    let admin = client.get_staff(get(As::Admin)).await.expect("call").into_inner().staff.expect("present");
    assert_eq!(admin.staff_notes.as_deref(), Some("Probezeit bis Mai"));
    let listed =
        client.list_staff(request(As::Admin, pb::ListStaffRequest::default())).await.expect("call").into_inner();
    assert!(listed.staff.iter().all(|s| s.staff_notes.is_some()));
    app.stop().await;
}
