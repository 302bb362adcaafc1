//! `phoenix_common::caller::Caller`: derived from the verified token, plus the staff record
//! linked to the account.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_common::authz::{AuthContext, Principal};
use phoenix_common::caller::Caller;
use phoenix_db::schema::users::{persons, staff};
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, create_account, role_permissions};

fn context(principal: Principal, permissions: Vec<String>) -> AuthContext {
    AuthContext {
        principal,
        roles: vec![],
        permissions,
        session_id: None,
        token_id: "t".into(),
        issued_at_ms: 0,
        expires_at: i64::MAX,
    }
}

#[tokio::test]
async fn caller_knows_admin_staff_and_service_principals() {
    let app = TestApp::spawn(&[]).await;
    let pool = app.db.pool().await;
    let mut conn = app.db.conn().await;

    let admin = create_account(&app, "boss@test.example", PASSWORD, &["admin"], true).await;
    let caller =
        Caller::from_context(&context(Principal::Account(admin), role_permissions(&app, "admin").await), &pool)
            .await
            .expect("caller");
    assert_eq!(caller, Caller { account_id: Some(admin), staff_id: None, is_admin: true });

    let account = create_account(&app, "teacher@test.example", PASSWORD, &["staff"], true).await;
    let person: i64 = diesel::insert_into(persons::table)
        .values((persons::first_name.eq("Ada"), persons::last_name.eq("L"), persons::account_id.eq(Some(account))))
        .returning(persons::id)
        .get_result(&mut conn)
        .await
        .expect("person");
    let staff_id: i64 = diesel::insert_into(staff::table)
        .values(staff::person_id.eq(person))
        .returning(staff::id)
        .get_result(&mut conn)
        .await
        .expect("staff");
    let perms = role_permissions(&app, "staff").await;
    let caller = Caller::from_context(&context(Principal::Account(account), perms), &pool).await.expect("caller");
    assert_eq!(caller, Caller { account_id: Some(account), staff_id: Some(staff_id), is_admin: false });

    let service =
        Caller::from_context(&context(Principal::Service("gateway".into()), vec!["scans:process".into()]), &pool)
            .await
            .expect("caller");
    assert_eq!(service, Caller { account_id: None, staff_id: None, is_admin: false });
}
