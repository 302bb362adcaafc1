//! `phoenix.users.v1.UsersService` over real gRPC against a real database: RFID cards — the
//! tag move (and its atomicity), unassigning and deactivating cards.

use diesel_async::RunQueryDsl as _;
use phoenix_proto::users::v1 as pb;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, reason};
use tonic::Code;

use super::helpers::*;

#[tokio::test]
async fn assigning_a_tag_held_by_pupil_a_to_pupil_b_leaves_a_without_a_tag() {
    let (app, mut client) = app().await;
    let a =
        create_student(&mut client, pb::Student { tag_id: Some("04A1B2C3D4".into()), ..new_student("A", "A", "1a") })
            .await;
    let b =
        create_student(&mut client, pb::Student { tag_id: Some("04FFFFFFFF".into()), ..new_student("B", "B", "1a") })
            .await;

    let moved = client
        .assign_rfid_card(pb::AssignRfidCardRequest { person_id: b.person_id, tag_id: "04:a1:b2:c3:d4".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.card.as_ref().map(|c| (c.tag_id.as_str(), c.person_id)), Some(("04A1B2C3D4", Some(b.person_id))));
    assert_eq!(moved.previous_person_id, Some(a.person_id));
    assert_eq!(moved.previous_tag_id.as_deref(), Some("04FFFFFFFF"));

    assert_eq!(get_student(&mut client, As::Admin, a.id).await.tag_id, None, "A lost the tag");
    assert_eq!(get_student(&mut client, As::Admin, b.id).await.tag_id.as_deref(), Some("04A1B2C3D4"));
    let card = client.get_rfid_card(pb::GetRfidCardRequest { tag_id: "04a1b2c3d4".into() }).await.unwrap().into_inner();
    assert_eq!(card.card.unwrap().person_id, Some(b.person_id));
    // B's old card is unassigned, not lost.
    let pool =
        client.list_unassigned_rfid_cards(pb::ListUnassignedRfidCardsRequest::default()).await.unwrap().into_inner();
    assert_eq!(pool.cards.iter().map(|c| c.tag_id.as_str()).collect::<Vec<_>>(), ["04FFFFFFFF"]);

    // Assigning a card to its holder again changes nothing.
    let again = client
        .assign_rfid_card(pb::AssignRfidCardRequest { person_id: b.person_id, tag_id: "04A1B2C3D4".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.previous_person_id, again.previous_tag_id), (None, None));
    app.stop().await;
}

#[tokio::test]
async fn a_failure_midway_through_a_tag_move_leaves_both_pupils_unchanged() {
    let (app, mut client) = app().await;
    let a =
        create_student(&mut client, pb::Student { tag_id: Some("04A1B2C3D4".into()), ..new_student("A", "A", "1a") })
            .await;
    let b =
        create_student(&mut client, pb::Student { tag_id: Some("04FFFFFFFF".into()), ..new_student("B", "B", "1a") })
            .await;
    // Make the last step of the move (linking the card to B) fail inside the database,
    // after A has already been unlinked in the same transaction.
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "CREATE FUNCTION public.fail_link() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.id = {b} AND NEW.tag_id = '04A1B2C3D4' THEN RAISE EXCEPTION 'injected failure'; END IF; \
           RETURN NEW; END $$",
        b = b.person_id
    ))
    .execute(&mut conn)
    .await
    .expect("create function");
    diesel::sql_query(
        "CREATE TRIGGER fail_link BEFORE UPDATE ON users.persons FOR EACH ROW EXECUTE FUNCTION public.fail_link()",
    )
    .execute(&mut conn)
    .await
    .expect("create trigger");

    let err = client
        .assign_rfid_card(pb::AssignRfidCardRequest { person_id: b.person_id, tag_id: "04A1B2C3D4".into() })
        .await
        .expect_err("the injected failure aborts the move");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(!err.message().contains("injected"), "internals are not leaked: {}", err.message());

    assert_eq!(
        get_student(&mut client, As::Admin, a.id).await.tag_id.as_deref(),
        Some("04A1B2C3D4"),
        "A keeps the tag"
    );
    assert_eq!(get_student(&mut client, As::Admin, b.id).await.tag_id.as_deref(), Some("04FFFFFFFF"), "B keeps theirs");
    app.stop().await;
}

#[tokio::test]
async fn card_unassign_deactivate_and_their_rules() {
    let (app, mut client) = app().await;
    let p = create_person(&mut client, "Ida", Some("04AABBCCDD")).await;
    let other = create_person(&mut client, "Ben", None).await;

    let card = client
        .unassign_rfid_card(pb::UnassignRfidCardRequest { person_id: p.id })
        .await
        .unwrap()
        .into_inner()
        .card
        .unwrap();
    assert_eq!((card.tag_id.as_str(), card.person_id, card.active), ("04AABBCCDD", None, true));
    assert_eq!(person(&mut client, p.id).await.tag_id, None);
    let status = assert_code(
        client.unassign_rfid_card(pb::UnassignRfidCardRequest { person_id: p.id }).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status).as_deref(), Some("NO_CARD"));
    let pool =
        client.list_unassigned_rfid_cards(pb::ListUnassignedRfidCardsRequest::default()).await.unwrap().into_inner();
    assert_eq!(pool.total_size, 1);

    let dead = client
        .deactivate_rfid_card(pb::DeactivateRfidCardRequest { tag_id: "04-AA-BB-CC-DD".into() })
        .await
        .unwrap()
        .into_inner()
        .card
        .unwrap();
    assert!(!dead.active);
    let pool =
        client.list_unassigned_rfid_cards(pb::ListUnassignedRfidCardsRequest::default()).await.unwrap().into_inner();
    assert_eq!(pool.total_size, 0, "an inactive card is not available");
    let status = assert_code(
        client.assign_rfid_card(pb::AssignRfidCardRequest { person_id: other.id, tag_id: "04AABBCCDD".into() }).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status).as_deref(), Some("CARD_INACTIVE"));
    assert_code(
        client.deactivate_rfid_card(pb::DeactivateRfidCardRequest { tag_id: "04AABBCCDD".into() }).await,
        Code::FailedPrecondition,
    );

    assert_invalid(
        client.assign_rfid_card(pb::AssignRfidCardRequest { person_id: 0, tag_id: "nope".into() }).await,
        &["person_id", "tag_id"],
    );
    assert_code(
        client.assign_rfid_card(pb::AssignRfidCardRequest { person_id: 999, tag_id: "04000001".into() }).await,
        Code::NotFound,
    );
    assert_code(client.get_rfid_card(pb::GetRfidCardRequest { tag_id: "04000001".into() }).await, Code::NotFound);
    assert_code(client.unassign_rfid_card(pb::UnassignRfidCardRequest { person_id: 999 }).await, Code::NotFound);
    assert_code(
        client.deactivate_rfid_card(pb::DeactivateRfidCardRequest { tag_id: "04000001".into() }).await,
        Code::NotFound,
    );
    assert_invalid(client.get_rfid_card(pb::GetRfidCardRequest { tag_id: "x".into() }).await, &["tag_id"]);

    // Pagination of the pool by tag.
    for i in 0..5 {
        client
            .assign_rfid_card(pb::AssignRfidCardRequest { person_id: other.id, tag_id: format!("0400000{i}") })
            .await
            .expect("assign");
    }
    let mut token = String::new();
    let mut tags = Vec::new();
    loop {
        let page = client
            .list_unassigned_rfid_cards(pb::ListUnassignedRfidCardsRequest { page_size: 2, page_token: token })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total_size, 4, "four earlier cards of Ben are back in the pool");
        tags.extend(page.cards.into_iter().map(|c| c.tag_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(tags, ["04000000", "04000001", "04000002", "04000003"]);
    app.stop().await;
}
