//! `phoenix.facilities.v1.FacilitiesService` over real gRPC against a real database: rooms,
//! buildings, locations; round trips, every validation rule, pagination, occupancy.

use diesel_async::RunQueryDsl as _;
use phoenix_common::domain::Domain;
use phoenix_proto::facilities::v1 as pb;
use phoenix_proto::facilities::v1::facilities_service_client::FacilitiesServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::grpc::{assert_code, assert_invalid, mask, reason};
use tonic::Code;

type Client = FacilitiesServiceClient<TestChannel>;

async fn app() -> (TestApp, Client) {
    let app = TestApp::spawn(&[Domain::Facilities]).await;
    let client = FacilitiesServiceClient::new(app.test_channel(Domain::Facilities).await);
    (app, client)
}

fn room(name: &str) -> pb::Room {
    pb::Room { name: name.into(), ..Default::default() }
}

async fn create_room(client: &mut Client, room: pb::Room) -> pb::Room {
    client
        .create_room(pb::CreateRoomRequest { room: Some(room) })
        .await
        .expect("create room")
        .into_inner()
        .room
        .expect("room in response")
}

async fn create_building(client: &mut Client, name: &str) -> pb::Building {
    client
        .create_building(pb::CreateBuildingRequest {
            building: Some(pb::Building { name: name.into(), ..Default::default() }),
        })
        .await
        .expect("create building")
        .into_inner()
        .building
        .expect("building in response")
}

async fn create_location(client: &mut Client, building_id: Option<i64>, name: &str) -> pb::Location {
    client
        .create_location(pb::CreateLocationRequest {
            location: Some(pb::Location { building_id, name: name.into(), ..Default::default() }),
        })
        .await
        .expect("create location")
        .into_inner()
        .location
        .expect("location in response")
}

#[tokio::test]
async fn room_create_get_list_update_delete_round_trip() {
    let (app, mut client) = app().await;
    let building = create_building(&mut client, "Hauptgebäude").await;
    let floor1 = create_location(&mut client, Some(building.id), "1. OG").await;

    let created = create_room(
        &mut client,
        pb::Room {
            name: "  Raum 101 ".into(),
            location_id: Some(floor1.id),
            floor: Some(1),
            capacity: Some(25),
            category: Some("Gruppenraum".into()),
            color: Some("4f86c6".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(created.id > 0);
    assert_eq!(created.name, "Raum 101", "name is trimmed");
    assert_eq!(created.building_id, Some(building.id), "the location's building is taken over");
    assert_eq!(created.color.as_deref(), Some("#4F86C6"), "colour gets its # and is upper-cased");
    assert_eq!(created.occupancy, Some(pb::RoomOccupancy { occupied: false, student_count: 0 }));
    assert!(created.create_time.is_some() && created.update_time.is_some());

    let got = client.get_room(pb::GetRoomRequest { id: created.id }).await.unwrap().into_inner().room.unwrap();
    assert_eq!(got, created);

    let listed = client.list_rooms(pb::ListRoomsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_size, 1);
    assert_eq!(listed.rooms, vec![created.clone()]);
    assert!(listed.next_page_token.is_empty());

    // Only the masked fields change: capacity cleared to unlimited, name changed; the
    // category sent along is not in the mask and stays.
    let updated = client
        .update_room(pb::UpdateRoomRequest {
            room: Some(pb::Room {
                id: created.id,
                name: "Raum 101a".into(),
                capacity: None,
                category: Some("ignored".into()),
                ..Default::default()
            }),
            update_mask: mask(&["name", "capacity"]),
        })
        .await
        .unwrap()
        .into_inner()
        .room
        .unwrap();
    assert_eq!(updated.name, "Raum 101a");
    assert_eq!(updated.capacity, None, "unset capacity = unlimited");
    assert_eq!(updated.category.as_deref(), Some("Gruppenraum"));
    assert_eq!(updated.floor, Some(1));

    client.delete_room(pb::DeleteRoomRequest { id: created.id }).await.expect("delete");
    assert_code(client.get_room(pb::GetRoomRequest { id: created.id }).await, Code::NotFound);
    assert_code(client.delete_room(pb::DeleteRoomRequest { id: created.id }).await, Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn room_validation_names_each_bad_field() {
    let (app, mut client) = app().await;
    assert_invalid(client.create_room(pb::CreateRoomRequest { room: None }).await, &["room"]);
    assert_invalid(client.create_room(pb::CreateRoomRequest { room: Some(room("  ")) }).await, &["room.name"]);
    assert_invalid(
        client.create_room(pb::CreateRoomRequest { room: Some(pb::Room { capacity: Some(-1), ..room("A") }) }).await,
        &["room.capacity"],
    );
    for bad in ["red", "#12", "#1234", "#GGG"] {
        assert_invalid(
            client
                .create_room(pb::CreateRoomRequest { room: Some(pb::Room { color: Some(bad.into()), ..room("A") }) })
                .await,
            &["room.color"],
        );
    }
    // All problems at once.
    assert_invalid(
        client
            .create_room(pb::CreateRoomRequest {
                room: Some(pb::Room { capacity: Some(-5), color: Some("x".into()), ..room("") }),
            })
            .await,
        &["room.name", "room.capacity", "room.color"],
    );
    // Referenced rows that do not exist are the request's fault, not NotFound.
    assert_invalid(
        client
            .create_room(pb::CreateRoomRequest { room: Some(pb::Room { building_id: Some(999), ..room("A") }) })
            .await,
        &["room.building_id"],
    );
    assert_invalid(
        client
            .create_room(pb::CreateRoomRequest { room: Some(pb::Room { location_id: Some(999), ..room("A") }) })
            .await,
        &["room.location_id"],
    );
    let b1 = create_building(&mut client, "B1").await;
    let b2 = create_building(&mut client, "B2").await;
    let in_b2 = create_location(&mut client, Some(b2.id), "Keller").await;
    assert_invalid(
        client
            .create_room(pb::CreateRoomRequest {
                room: Some(pb::Room { building_id: Some(b1.id), location_id: Some(in_b2.id), ..room("A") }),
            })
            .await,
        &["room.location_id"],
    );
    // Capacity 0 is allowed (nobody may check in), and so is no capacity (unlimited).
    let zero = create_room(&mut client, pb::Room { capacity: Some(0), ..room("Abstellraum") }).await;
    assert_eq!(zero.capacity, Some(0));
    let unlimited = create_room(&mut client, room("Schulhof")).await;
    assert_eq!(unlimited.capacity, None);

    // Update: id, mask and the masked fields are validated; a missing room is NotFound.
    assert_invalid(
        client.update_room(pb::UpdateRoomRequest { room: Some(room("X")), update_mask: mask(&["name"]) }).await,
        &["room.id"],
    );
    assert_invalid(
        client
            .update_room(pb::UpdateRoomRequest { room: Some(pb::Room { id: zero.id, ..room("X") }), update_mask: None })
            .await,
        &["update_mask"],
    );
    assert_invalid(
        client
            .update_room(pb::UpdateRoomRequest {
                room: Some(pb::Room { id: zero.id, ..room("X") }),
                update_mask: mask(&["create_time"]),
            })
            .await,
        &["update_mask"],
    );
    assert_invalid(
        client
            .update_room(pb::UpdateRoomRequest {
                room: Some(pb::Room { id: zero.id, capacity: Some(-2), ..room("X") }),
                update_mask: mask(&["capacity"]),
            })
            .await,
        &["room.capacity"],
    );
    assert_code(
        client
            .update_room(pb::UpdateRoomRequest {
                room: Some(pb::Room { id: 9999, ..room("X") }),
                update_mask: mask(&["name"]),
            })
            .await,
        Code::NotFound,
    );
    assert_invalid(client.get_room(pb::GetRoomRequest { id: 0 }).await, &["id"]);
    app.stop().await;
}

#[tokio::test]
async fn duplicate_room_names_are_already_exists_on_create_and_rename() {
    let (app, mut client) = app().await;
    create_room(&mut client, room("Turnhalle")).await;
    let other = create_room(&mut client, room("Mensa")).await;
    assert_code(
        client.create_room(pb::CreateRoomRequest { room: Some(room(" Turnhalle ")) }).await,
        Code::AlreadyExists,
    );
    assert_code(
        client
            .update_room(pb::UpdateRoomRequest {
                room: Some(pb::Room { id: other.id, ..room("Turnhalle") }),
                update_mask: mask(&["name"]),
            })
            .await,
        Code::AlreadyExists,
    );
    app.stop().await;
}

#[tokio::test]
async fn room_lists_filter_and_paginate_with_true_totals() {
    let (app, mut client) = app().await;
    let b = create_building(&mut client, "Haus A").await;
    for i in 0..7 {
        create_room(
            &mut client,
            pb::Room {
                building_id: (i % 2 == 0).then_some(b.id),
                capacity: if i == 6 { None } else { Some(i * 5) },
                category: Some(if i < 3 { "Sport" } else { "Lernen" }.into()),
                ..room(&format!("Raum {i}"))
            },
        )
        .await;
    }
    // All rooms, three per page: 3 + 3 + 1, the total true on every page.
    let mut token = String::new();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_rooms(pb::ListRoomsRequest { page_size: 3, page_token: token.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total_size, 7);
        pages += 1;
        seen.extend(page.rooms.into_iter().map(|r| r.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("Raum {i}")).collect::<Vec<_>>());

    // Filters: building, category (case-insensitive), name part, capacity (unlimited matches).
    let in_b = client
        .list_rooms(pb::ListRoomsRequest { building_id: Some(b.id), page_size: 2, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((in_b.total_size, in_b.rooms.len()), (4, 2));
    let sport = client
        .list_rooms(pb::ListRoomsRequest { category: Some("sport".into()), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sport.total_size, 3);
    let big = client
        .list_rooms(pb::ListRoomsRequest { min_capacity: Some(20), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = big.rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Raum 4", "Raum 5", "Raum 6"]);
    let named = client
        .list_rooms(pb::ListRoomsRequest { name_contains: Some("M 5".into()), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(named.total_size, 1);

    // A token only continues its own listing; page sizes are bounded.
    assert_invalid(
        client
            .list_rooms(pb::ListRoomsRequest {
                page_token: in_b.next_page_token.clone(),
                category: Some("Sport".into()),
                ..Default::default()
            })
            .await,
        &["page_token"],
    );
    assert_invalid(
        client.list_rooms(pb::ListRoomsRequest { page_token: "garbage".into(), ..Default::default() }).await,
        &["page_token"],
    );
    assert_invalid(
        client.list_rooms(pb::ListRoomsRequest { page_size: 501, ..Default::default() }).await,
        &["page_size"],
    );
    assert_invalid(
        client.list_rooms(pb::ListRoomsRequest { page_size: -1, ..Default::default() }).await,
        &["page_size"],
    );
    assert_invalid(
        client.list_rooms(pb::ListRoomsRequest { min_capacity: Some(-1), ..Default::default() }).await,
        &["min_capacity"],
    );

    let cats = client.list_room_categories(pb::ListRoomCategoriesRequest {}).await.unwrap().into_inner();
    assert_eq!(cats.categories, ["Lernen", "Sport"]);
    app.stop().await;
}

#[tokio::test]
async fn occupancy_counts_pupils_in_running_sessions_and_blocks_deleting_a_used_room() {
    let (app, mut client) = app().await;
    let r = create_room(&mut client, room("Raum 7")).await;
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "WITH g AS (INSERT INTO education.groups (name) VALUES ('Füchse') RETURNING id), \
              s AS (INSERT INTO active.groups (room_id, education_group_id, start_time) \
                    SELECT {room}, g.id, now() FROM g RETURNING id), \
              p AS (INSERT INTO users.persons (first_name, last_name) VALUES ('A', 'A'), ('B', 'B') RETURNING id), \
              st AS (INSERT INTO users.students (person_id, school_class) SELECT id, '1a' FROM p RETURNING id) \
         INSERT INTO active.visits (student_id, active_group_id) SELECT st.id, s.id FROM st, s",
        room = r.id
    ))
    .execute(&mut conn)
    .await
    .expect("running session with two pupils");

    let got = client.get_room(pb::GetRoomRequest { id: r.id }).await.unwrap().into_inner().room.unwrap();
    assert_eq!(got.occupancy, Some(pb::RoomOccupancy { occupied: true, student_count: 2 }));
    let listed = client.list_rooms(pb::ListRoomsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.rooms[0].occupancy, got.occupancy);

    // The session history references the room: deleting it is refused, not a 500.
    let status = assert_code(client.delete_room(pb::DeleteRoomRequest { id: r.id }).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("ROOM_IN_USE"));
    assert!(client.get_room(pb::GetRoomRequest { id: r.id }).await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn buildings_round_trip_and_rules() {
    let (app, mut client) = app().await;
    let b = create_building(&mut client, " Haus A ").await;
    assert_eq!(b.name, "Haus A");
    assert_code(
        client
            .create_building(pb::CreateBuildingRequest {
                building: Some(pb::Building { name: "Haus A".into(), ..Default::default() }),
            })
            .await,
        Code::AlreadyExists,
    );
    assert_invalid(
        client.create_building(pb::CreateBuildingRequest { building: Some(pb::Building::default()) }).await,
        &["building.name"],
    );
    let got = client.get_building(pb::GetBuildingRequest { id: b.id }).await.unwrap().into_inner().building.unwrap();
    assert_eq!(got, b);
    let updated = client
        .update_building(pb::UpdateBuildingRequest {
            building: Some(pb::Building { id: b.id, address: Some("Schulstraße 1".into()), ..Default::default() }),
            update_mask: mask(&["address"]),
        })
        .await
        .unwrap()
        .into_inner()
        .building
        .unwrap();
    assert_eq!((updated.name.as_str(), updated.address.as_deref()), ("Haus A", Some("Schulstraße 1")));
    create_building(&mut client, "Haus B").await;
    let page = client
        .list_buildings(pb::ListBuildingsRequest { page_size: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((page.buildings.len(), page.total_size), (1, 2));
    assert!(!page.next_page_token.is_empty());

    // A building with locations cannot go; its rooms survive a delete without a building.
    let loc = create_location(&mut client, Some(b.id), "EG").await;
    let r = create_room(&mut client, pb::Room { building_id: Some(b.id), ..room("R") }).await;
    let status =
        assert_code(client.delete_building(pb::DeleteBuildingRequest { id: b.id }).await, Code::FailedPrecondition);
    assert_eq!(reason(&status).as_deref(), Some("BUILDING_HAS_LOCATIONS"));
    client.delete_location(pb::DeleteLocationRequest { id: loc.id }).await.expect("delete location");
    client.delete_building(pb::DeleteBuildingRequest { id: b.id }).await.expect("delete building");
    let r = client.get_room(pb::GetRoomRequest { id: r.id }).await.unwrap().into_inner().room.unwrap();
    assert_eq!(r.building_id, None);
    assert_code(client.get_building(pb::GetBuildingRequest { id: b.id }).await, Code::NotFound);
    assert_code(client.delete_building(pb::DeleteBuildingRequest { id: b.id }).await, Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn locations_round_trip_unique_per_building_and_rooms_follow_a_moved_location() {
    let (app, mut client) = app().await;
    let a = create_building(&mut client, "A").await;
    let b = create_building(&mut client, "B").await;
    let eg_a = create_location(&mut client, Some(a.id), "EG").await;
    create_location(&mut client, Some(b.id), "EG").await; // same name, other building: fine
    create_location(&mut client, None, "Schulhof").await;
    assert_code(
        client
            .create_location(pb::CreateLocationRequest {
                location: Some(pb::Location { building_id: Some(a.id), name: "EG".into(), ..Default::default() }),
            })
            .await,
        Code::AlreadyExists,
    );
    assert_code(
        client
            .create_location(pb::CreateLocationRequest {
                location: Some(pb::Location { name: "Schulhof".into(), ..Default::default() }),
            })
            .await,
        Code::AlreadyExists,
    );
    assert_invalid(
        client
            .create_location(pb::CreateLocationRequest {
                location: Some(pb::Location { building_id: Some(999), name: "X".into(), ..Default::default() }),
            })
            .await,
        &["location.building_id"],
    );
    assert_invalid(
        client.create_location(pb::CreateLocationRequest { location: Some(pb::Location::default()) }).await,
        &["location.name"],
    );
    let of_a = client
        .list_locations(pb::ListLocationsRequest { building_id: Some(a.id), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((of_a.total_size, of_a.locations[0].id), (1, eg_a.id));
    let all = client.list_locations(pb::ListLocationsRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.total_size, 3);

    let r = create_room(&mut client, pb::Room { location_id: Some(eg_a.id), ..room("R1") }).await;
    assert_eq!(r.building_id, Some(a.id));
    let moved = client
        .update_location(pb::UpdateLocationRequest {
            location: Some(pb::Location {
                id: eg_a.id,
                building_id: Some(b.id),
                name: "EG Nord".into(),
                ..Default::default()
            }),
            update_mask: mask(&["building_id", "name"]),
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!((moved.building_id, moved.name.as_str()), (Some(b.id), "EG Nord"));
    let r = client.get_room(pb::GetRoomRequest { id: r.id }).await.unwrap().into_inner().room.unwrap();
    assert_eq!(r.building_id, Some(b.id), "the room moved with its location");

    client.delete_location(pb::DeleteLocationRequest { id: eg_a.id }).await.expect("delete");
    let r = client.get_room(pb::GetRoomRequest { id: r.id }).await.unwrap().into_inner().room.unwrap();
    assert_eq!(r.location_id, None);
    assert_code(client.get_location(pb::GetLocationRequest { id: eg_a.id }).await, Code::NotFound);
    app.stop().await;
}
