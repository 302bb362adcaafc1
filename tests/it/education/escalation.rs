//! Choosing a group's leaders is an assignment (`groups:assign`), not an update: leading a
//! group gives full access to its pupils, so a plain seeded-staff token must not make itself
//! a leader of someone else's group through `UpdateGroup` or `CreateGroup` (issue #12).

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phoenix_common::domain::Domain;
use phoenix_proto::education::v1 as pb;
use phoenix_proto::education::v1::education_service_client::EducationServiceClient;
use phoenix_proto::users::v1 as upb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::auth::{PASSWORD, TestChannel, create_account, mint_token, role_permissions};
use phoenix_tests::grpc::{As, assert_code, mask, request};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;

struct School {
    app: TestApp,
    edu: EducationServiceClient<TestChannel>,
    users: UsersServiceClient<TestChannel>,
    /// Tina: seeded staff role, teacher, leads `foxes`.
    tina: i64,
    tina_teacher: i64,
    /// Led by Bert, not by Tina; holds `pupil`.
    owls: i64,
    bert_teacher: i64,
    pupil: i64,
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn school() -> School {
    let app = TestApp::spawn(&[Domain::Education, Domain::Users]).await;
    let mut conn = app.db.conn().await;
    let tina = fixtures::staff(&mut conn, "Tina", "Team").await;
    let tina_teacher = fixtures::teacher(&mut conn, tina).await;
    let bert = fixtures::staff(&mut conn, "Bert", "Team").await;
    let bert_teacher = fixtures::teacher(&mut conn, bert).await;
    let foxes = fixtures::group(&mut conn, "Füchse").await;
    fixtures::group_teacher(&mut conn, foxes, tina_teacher).await;
    let owls = fixtures::group(&mut conn, "Eulen").await;
    fixtures::group_teacher(&mut conn, owls, bert_teacher).await;
    let pupil = fixtures::student(&mut conn, "Mia", "Muster", &fixtures::tag(1)).await;
    exec(&mut conn, &format!("UPDATE users.students SET group_id = {owls}, health_info = 'Asthma' WHERE id = {pupil}"))
        .await;
    let edu = EducationServiceClient::new(app.test_channel(Domain::Education).await);
    let users = UsersServiceClient::new(app.test_channel(Domain::Users).await);
    School { app, edu, users, tina, tina_teacher, owls, bert_teacher, pupil }
}

/// The pupil as staff member `staff` sees it.
async fn pupil_as(users: &mut UsersServiceClient<TestChannel>, staff: i64, id: i64) -> upb::Student {
    users
        .get_student(request(As::Staff(staff), upb::GetStudentRequest { id }))
        .await
        .expect("get student")
        .into_inner()
        .student
        .expect("student")
}

fn set_teachers(id: i64, teacher_ids: Vec<i64>, paths: &[&str]) -> pb::UpdateGroupRequest {
    pb::UpdateGroupRequest {
        group: Some(pb::Group { id, name: "Eulen".into(), teacher_ids, ..Default::default() }),
        update_mask: mask(paths),
    }
}

#[tokio::test]
async fn staff_cannot_make_themselves_leader_of_another_group() {
    let School { app, mut edu, mut users, tina, tina_teacher, owls, bert_teacher, pupil } = school().await;
    let before = pupil_as(&mut users, tina, pupil).await;
    assert!(!before.has_full_access && before.health_info.is_none(), "redacted before: {before:?}");

    // The attack, with the seeded staff role's token: join Bert's group as a leader, by
    // naming the field and by replacing the whole group.
    for paths in [&["teacher_ids"][..], &["name", "teacher_ids"], &["*"]] {
        let attempt =
            edu.update_group(request(As::Staff(tina), set_teachers(owls, vec![bert_teacher, tina_teacher], paths)));
        let denied = assert_code(attempt.await, Code::PermissionDenied);
        assert!(denied.message().contains("groups:assign"), "{paths:?}: {denied:?}");
    }
    // Emptying the leaders is an assignment too.
    let denied = assert_code(
        edu.update_group(request(As::Staff(tina), set_teachers(owls, vec![], &["teacher_ids"]))).await,
        Code::PermissionDenied,
    );
    assert!(denied.message().contains("groups:assign"), "{denied:?}");

    // Nothing changed: Bert still leads alone, and the pupil stays redacted for Tina.
    let group = edu.get_group(pb::GetGroupRequest { id: owls }).await.expect("get group").into_inner().group.unwrap();
    assert_eq!(group.teacher_ids, [bert_teacher]);
    let after = pupil_as(&mut users, tina, pupil).await;
    assert!(!after.has_full_access, "still no full access");
    assert_eq!((after.health_info, after.birthday, after.tag_id), (None, None, None), "still redacted");

    // groups:update still covers the rest of a group.
    edu.update_group(request(As::Staff(tina), set_teachers(owls, vec![], &["name"])))
        .await
        .expect("renaming needs only groups:update");
    // An admin assigns.
    let assigned = edu
        .update_group(request(As::Admin, set_teachers(owls, vec![bert_teacher, tina_teacher], &["teacher_ids"])))
        .await
        .expect("admin assigns")
        .into_inner()
        .group
        .unwrap();
    let mut leaders = assigned.teacher_ids;
    leaders.sort();
    let mut expected = vec![bert_teacher, tina_teacher];
    expected.sort();
    assert_eq!(leaders, expected);
    assert!(pupil_as(&mut users, tina, pupil).await.has_full_access, "a leader the admin chose sees the pupil");
    app.stop().await;
}

#[tokio::test]
async fn creating_a_group_with_leaders_needs_groups_assign() {
    let School { app, tina_teacher, .. } = school().await;
    // Staff plus groups:create (a school may grant it) still cannot pick the leaders.
    let account = create_account(&app, "creator@school.de", PASSWORD, &["staff"], true).await;
    let mut perms = role_permissions(&app, "staff").await;
    perms.push("groups:create".into());
    let token = mint_token(&app, &account.to_string(), &["staff"], &perms).await;
    let mut edu = EducationServiceClient::new(app.channel_as(Domain::Education, &token).await);
    let new = |name: &str, teacher_ids: Vec<i64>| pb::CreateGroupRequest {
        group: Some(pb::Group { name: name.into(), teacher_ids, ..Default::default() }),
    };
    let denied = assert_code(edu.create_group(new("Dachse", vec![tina_teacher])).await, Code::PermissionDenied);
    assert!(denied.message().contains("groups:assign"), "{denied:?}");
    let created = edu.create_group(new("Dachse", vec![])).await.expect("without leaders").into_inner().group.unwrap();
    assert!(created.teacher_ids.is_empty());

    perms.push("groups:assign".into());
    let token = mint_token(&app, &account.to_string(), &["staff"], &perms).await;
    let mut edu = EducationServiceClient::new(app.channel_as(Domain::Education, &token).await);
    let led = edu.create_group(new("Igel", vec![tina_teacher])).await.expect("with groups:assign").into_inner();
    assert_eq!(led.group.unwrap().teacher_ids, [tina_teacher]);
    app.stop().await;
}
