//! Who is enrolled in an activity, and what a pupil is enrolled in, over real gRPC with real
//! tokens: display names only, the activity's owners see every pupil, other staff the pupils
//! of their groups; a pupil's activities in full for their group's staff, else only the
//! caller's own; guests and guardians are refused without learning whether an id exists.

use diesel_async::RunQueryDsl;
use phoenix_common::convert::format_date;
use phoenix_common::domain::Domain;
use phoenix_proto::activities::v1 as pb;
use phoenix_proto::activities::v1::activities_service_client::ActivitiesServiceClient;
use phoenix_tests::auth::{PASSWORD, create_account, mint_token, role_permissions};
use phoenix_tests::fixtures;
use phoenix_tests::grpc::{As, assert_code, assert_invalid, request};
use tonic::Code;

use super::helpers::env;

fn of_activity(activity_id: i64) -> pb::ListActivityEnrollmentsRequest {
    pb::ListActivityEnrollmentsRequest { activity_id, ..Default::default() }
}

fn of_student(student_id: i64) -> pb::ListStudentEnrollmentsRequest {
    pb::ListStudentEnrollmentsRequest { student_id }
}

/// `(student id, display name)` of a page, and its total.
fn pupils(r: pb::ListActivityEnrollmentsResponse) -> (Vec<(i64, String)>, i32) {
    (r.enrollments.into_iter().map(|e| (e.student_id, e.display_name)).collect(), r.total_size)
}

fn activities(r: pb::ListStudentEnrollmentsResponse) -> Vec<(i64, String)> {
    r.enrollments.into_iter().map(|e| (e.activity_id, e.activity_name)).collect()
}

#[tokio::test]
async fn enrollment_lists_show_each_caller_the_pupils_they_may_see() {
    let mut env = env().await;
    let owner = env.staff("Eigner").await;
    let teacher = env.staff("Lehrer").await;
    let other = env.staff("Andere").await;
    let s = env.students(3).await;
    let mut conn = env.app.db.conn().await;
    let group = fixtures::group(&mut conn, "Eulen").await;
    let teacher_row = fixtures::teacher(&mut conn, teacher).await;
    fixtures::group_teacher(&mut conn, group, teacher_row).await;
    diesel::sql_query(format!("UPDATE users.students SET group_id = {group} WHERE id IN ({}, {})", s[0], s[1]))
        .execute(&mut conn)
        .await
        .expect("group the first two pupils");
    let chess = env.create(As::Staff(owner), "Schach", vec![]).await.id;
    let choir = env.create(As::Admin, "Chor", vec![]).await.id;
    for (activity, student) in [(chess, s[0]), (chess, s[1]), (chess, s[2]), (choir, s[0])] {
        env.c
            .enroll_student(pb::EnrollStudentRequest { activity_id: activity, student_id: student })
            .await
            .expect("enroll");
    }
    let names: Vec<(i64, String)> = (0..3).map(|i| (s[i], format!("Kind{i} T."))).collect();
    let c = &mut env.c;

    // The pupils of an activity: all for admins and the owner, the own group's for a teacher.
    let all = c.list_activity_enrollments(of_activity(chess)).await.expect("admin").into_inner();
    let today = format_date(phoenix_common::time::business_today());
    assert!(all.enrollments.iter().all(|e| e.enrollment_date == today), "{:?}", all.enrollments);
    assert_eq!(pupils(all), (names.clone(), 3));
    let by_owner = c.list_activity_enrollments(request(As::Staff(owner), of_activity(chess))).await;
    assert_eq!(pupils(by_owner.expect("owner").into_inner()), (names.clone(), 3));
    let by_teacher = c.list_activity_enrollments(request(As::Staff(teacher), of_activity(chess))).await;
    assert_eq!(pupils(by_teacher.expect("teacher").into_inner()), (names[..2].to_vec(), 2));
    let by_other = c.list_activity_enrollments(request(As::Staff(other), of_activity(chess))).await;
    assert_eq!(pupils(by_other.expect("other staff").into_inner()), (vec![], 0));

    // Pages by student id.
    let first = pb::ListActivityEnrollmentsRequest { activity_id: chess, page_size: 2, page_token: String::new() };
    let first = c.list_activity_enrollments(first).await.expect("page 1").into_inner();
    assert!(!first.next_page_token.is_empty());
    let token = first.next_page_token.clone();
    assert_eq!(pupils(first), (names[..2].to_vec(), 3));
    let second = pb::ListActivityEnrollmentsRequest { activity_id: chess, page_size: 2, page_token: token };
    let second = c.list_activity_enrollments(second).await.expect("page 2").into_inner();
    assert!(second.next_page_token.is_empty());
    assert_eq!(pupils(second), (names[2..].to_vec(), 3));

    // A pupil's activities: all for the group's teacher, only the own ones for others.
    let want_all = vec![(chess, "Schach".to_owned()), (choir, "Chor".to_owned())];
    assert_eq!(activities(c.list_student_enrollments(of_student(s[0])).await.expect("admin").into_inner()), want_all);
    let teacher_view = c.list_student_enrollments(request(As::Staff(teacher), of_student(s[0]))).await;
    assert_eq!(activities(teacher_view.expect("teacher").into_inner()), want_all);
    let owner_view = c.list_student_enrollments(request(As::Staff(owner), of_student(s[0]))).await;
    assert_eq!(activities(owner_view.expect("owner").into_inner()), vec![(chess, "Schach".to_owned())]);
    let other_view = c.list_student_enrollments(request(As::Staff(other), of_student(s[0]))).await;
    assert_eq!(activities(other_view.expect("other").into_inner()), vec![]);
    let ungrouped = c.list_student_enrollments(request(As::Staff(teacher), of_student(s[2]))).await;
    assert_eq!(activities(ungrouped.expect("not the teacher's pupil").into_inner()), vec![]);
    let dates = c.list_student_enrollments(of_student(s[0])).await.expect("admin").into_inner();
    assert!(dates.enrollments.iter().all(|e| e.enrollment_date == today));

    // Bad ids and tokens; unknown ids.
    assert_invalid(c.list_activity_enrollments(of_activity(0)).await, &["activity_id"]);
    let bad_token = pb::ListActivityEnrollmentsRequest { activity_id: chess, page_size: 0, page_token: "x".into() };
    assert_invalid(c.list_activity_enrollments(bad_token).await, &["page_token"]);
    assert_invalid(c.list_student_enrollments(of_student(-1)).await, &["student_id"]);
    assert_code(c.list_activity_enrollments(of_activity(choir + 10_000)).await, Code::NotFound);
    assert_code(c.list_student_enrollments(of_student(s[2] + 10_000)).await, Code::NotFound);
}

#[tokio::test]
async fn guests_and_guardians_see_no_enrollments_and_learn_no_ids() {
    let mut env = env().await;
    let s = env.students(1).await;
    let chess = env.create(As::Admin, "Schach", vec![]).await.id;
    env.c.enroll_student(pb::EnrollStudentRequest { activity_id: chess, student_id: s[0] }).await.expect("enroll");
    for role in ["guest", "guardian"] {
        let email = format!("{role}-{}@test.example", uuid::Uuid::new_v4().simple());
        let account = create_account(&env.app, &email, PASSWORD, &[role], true).await;
        let token = mint_token(&env.app, &account.to_string(), &[role], &role_permissions(&env.app, role).await).await;
        let mut c = ActivitiesServiceClient::new(env.app.channel_as(Domain::Activities, &token).await);
        let denied = assert_code(c.list_activity_enrollments(of_activity(chess)).await, Code::PermissionDenied);
        if role == "guest" {
            assert!(denied.message().contains("no staff record"), "{role}: {}", denied.message());
        }
        assert_code(c.list_student_enrollments(of_student(s[0])).await, Code::PermissionDenied);
        // The same answer for an id that does not exist.
        assert_code(c.list_student_enrollments(of_student(s[0] + 10_000)).await, Code::PermissionDenied);
    }
}
