//! The demo school is created through the services' own code paths, so the services see it
//! exactly as data entered over gRPC: pupils with cards in groups with teachers and rooms.

use phoenix_common::domain::Domain;
use phoenix_proto::education::v1 as epb;
use phoenix_proto::education::v1::education_service_client::EducationServiceClient;
use phoenix_proto::facilities::v1 as fpb;
use phoenix_proto::facilities::v1::facilities_service_client::FacilitiesServiceClient;
use phoenix_proto::users::v1 as upb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::TestApp;

#[tokio::test]
async fn the_demo_school_is_served_by_the_people_and_places_services() {
    let app = TestApp::spawn(&[Domain::Users, Domain::Education, Domain::Facilities]).await;
    let pool = app.db.pool().await;
    assert!(phoenix::demo::seed_if_empty(&pool).await.expect("seed"), "loads into an empty database");
    assert!(!phoenix::demo::seed_if_empty(&pool).await.expect("seed again"), "and only once");

    let mut users = UsersServiceClient::new(app.test_channel(Domain::Users).await);
    let pupils = users.list_students(upb::ListStudentsRequest::default()).await.expect("students").into_inner();
    assert_eq!(pupils.total_size as usize, phoenix::demo::DEMO_STUDENTS);
    let first = &pupils.students[0];
    assert_eq!(first.tag_id.as_deref(), Some(phoenix::demo::demo_tag(0).as_str()));
    assert!(first.group_id.is_some() && !first.group_supervisors.is_empty());
    let card = users
        .get_rfid_card(upb::GetRfidCardRequest { tag_id: phoenix::demo::demo_tag(0) })
        .await
        .expect("card")
        .into_inner()
        .card
        .expect("card");
    assert_eq!(card.person_id, Some(first.person_id));

    let mut edu = EducationServiceClient::new(app.test_channel(Domain::Education).await);
    let groups = edu.list_groups(epb::ListGroupsRequest::default()).await.expect("groups").into_inner();
    assert_eq!(groups.total_size, 6);
    assert!(groups.groups.iter().all(|g| g.teachers.len() == 1 && g.room_name.is_some() && g.student_count > 0));

    let mut rooms = FacilitiesServiceClient::new(app.test_channel(Domain::Facilities).await);
    let list = rooms.list_rooms(fpb::ListRoomsRequest::default()).await.expect("rooms").into_inner();
    assert_eq!(list.total_size, 12);
    let yard = list.rooms.iter().find(|r| r.name == "Schulhof").expect("schoolyard");
    assert_eq!(yard.capacity, None, "unlimited");
    app.stop().await;
}
