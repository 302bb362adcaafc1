//! Shared helpers of the `UsersService` tests (persons, students, cards, redaction): the app,
//! its client and creating persons, staff and students.

use phoenix_common::domain::Domain;
use phoenix_proto::users::v1 as pb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::grpc::{As, request};

pub(super) type Client = UsersServiceClient<TestChannel>;

pub(super) async fn app() -> (TestApp, Client) {
    let app = TestApp::spawn(&[Domain::Users]).await;
    let client = UsersServiceClient::new(app.test_channel(Domain::Users).await);
    (app, client)
}

pub(super) fn new_student(first: &str, last: &str, class: &str) -> pb::Student {
    pb::Student { first_name: first.into(), last_name: last.into(), school_class: class.into(), ..Default::default() }
}

pub(super) async fn create_student(client: &mut Client, s: pb::Student) -> pb::Student {
    client
        .create_student(pb::CreateStudentRequest { student: Some(s) })
        .await
        .expect("create student")
        .into_inner()
        .student
        .expect("student in response")
}

pub(super) async fn get_student(client: &mut Client, caller: As, id: i64) -> pb::Student {
    client
        .get_student(request(caller, pb::GetStudentRequest { id }))
        .await
        .expect("get student")
        .into_inner()
        .student
        .expect("student in response")
}

pub(super) async fn create_person(client: &mut Client, first: &str, tag: Option<&str>) -> pb::Person {
    client
        .create_person(pb::CreatePersonRequest {
            person: Some(pb::Person {
                first_name: first.into(),
                last_name: "Muster".into(),
                tag_id: tag.map(Into::into),
                ..Default::default()
            }),
        })
        .await
        .expect("create person")
        .into_inner()
        .person
        .expect("person in response")
}

pub(super) async fn create_teacher(client: &mut Client, first: &str) -> pb::Staff {
    client
        .create_staff(pb::CreateStaffRequest {
            staff: Some(pb::Staff {
                first_name: first.into(),
                last_name: "Lehrer".into(),
                is_teacher: true,
                ..Default::default()
            }),
        })
        .await
        .expect("create staff")
        .into_inner()
        .staff
        .expect("staff in response")
}

pub(super) async fn person(client: &mut Client, id: i64) -> pb::Person {
    client.get_person(pb::GetPersonRequest { id }).await.expect("get person").into_inner().person.expect("person")
}
