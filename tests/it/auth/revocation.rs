//! Revocation takes effect at an access token's next call (issue #12), not after its 15
//! minutes: logout, deactivation and a change of roles or permissions, with real logins. And
//! a deny of a wildcard removes everything it covers. The session check is cached for
//! `SESSION_CHECK_TTL` (5 s), so each test waits at most that long (plus a margin).

use std::time::{Duration, Instant};

use phoenix_common::authz::SESSION_CHECK_TTL;
use phoenix_common::domain::Domain;
use phoenix_proto::auth::v1 as pb;
use phoenix_proto::auth::v1::account_service_client::AccountServiceClient;
use phoenix_proto::users::v1 as users_pb;
use phoenix_proto::users::v1::users_service_client::UsersServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, admin_token, auth_client, bearer, create_account, login};
use tonic::Code;

/// A revoked token must fail within this.
fn bound() -> Duration {
    SESSION_CHECK_TTL + Duration::from_secs(2)
}

async fn who_am_i(app: &TestApp, token: &str) -> Result<pb::WhoAmIResponse, tonic::Status> {
    auth_client(app).await.who_am_i(bearer(pb::WhoAmIRequest {}, token)).await.map(|r| r.into_inner())
}

/// Calls WhoAmI with `token` until it is refused; the refusal and how long it took.
async fn refused_within(app: &TestApp, token: &str, within: Duration) -> (tonic::Status, Duration) {
    let started = Instant::now();
    loop {
        match who_am_i(app, token).await {
            Err(status) => return (status, started.elapsed()),
            Ok(_) if started.elapsed() < within => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(_) => panic!("the token still works {:?} after its access ended", started.elapsed()),
        }
    }
}

/// A staff account logged in for real: its id, access and refresh token.
async fn logged_in_staff(app: &TestApp) -> (i64, String, String) {
    let email = format!("staff-{}@test.example", uuid::Uuid::new_v4().simple());
    let id = create_account(app, &email, PASSWORD, &["staff"], true).await;
    let tokens = login(app, &email, PASSWORD).await.expect("login");
    (id, tokens.access_token, tokens.refresh_token)
}

#[tokio::test]
async fn an_access_token_fails_at_its_next_call_after_logout() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let (_, access, refresh) = logged_in_staff(&app).await;
    who_am_i(&app, &access).await.expect("valid before logout");
    auth_client(&app)
        .await
        .logout(bearer(pb::LogoutRequest { refresh_token: refresh }, &access))
        .await
        .expect("logout");
    let (status, took) = refused_within(&app, &access, bound()).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
    assert!(status.message().contains("logged out"), "{}", status.message());
    println!("logout took effect after {took:?}");
}

#[tokio::test]
async fn deactivation_and_a_removed_role_make_outstanding_tokens_fail() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let (_, admin) = admin_token(&app).await;
    let mut accounts = AccountServiceClient::new(app.channel(Domain::Auth).await);

    let (deactivated, access, _) = logged_in_staff(&app).await;
    who_am_i(&app, &access).await.expect("valid");
    accounts
        .deactivate_account(bearer(pb::DeactivateAccountRequest { account_id: deactivated }, &admin))
        .await
        .expect("deactivate");
    let (status, _) = refused_within(&app, &access, bound()).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());

    let (demoted, access, refresh) = logged_in_staff(&app).await;
    who_am_i(&app, &access).await.expect("valid");
    accounts
        .remove_account_role(bearer(
            pb::RemoveAccountRoleRequest { account_id: demoted, role_name: "staff".into() },
            &admin,
        ))
        .await
        .expect("remove role");
    let (status, _) = refused_within(&app, &access, bound()).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
    assert!(status.message().contains("refresh"), "the caller is told what to do: {}", status.message());
    // A refreshed token carries the new (smaller) permissions and works.
    let renewed = auth_client(&app)
        .await
        .refresh(pb::RefreshRequest { refresh_token: refresh })
        .await
        .expect("refresh")
        .into_inner()
        .tokens
        .expect("tokens");
    let me = who_am_i(&app, &renewed.access_token).await.expect("the renewed token works");
    assert!(me.roles.is_empty(), "{:?}", me.roles);
}

#[tokio::test]
async fn a_deny_of_a_wildcard_removes_every_permission_it_covers() {
    let app = TestApp::spawn(&[Domain::Auth, Domain::Users]).await;
    let (_, admin) = admin_token(&app).await;
    let (staff, access, _) = logged_in_staff(&app).await;
    let mut users = UsersServiceClient::new(app.channel(Domain::Users).await);
    users
        .list_students(bearer(users_pb::ListStudentsRequest::default(), &access))
        .await
        .expect("staff list pupils (users:read)");

    let mut accounts = AccountServiceClient::new(app.channel(Domain::Auth).await);
    let after = accounts
        .set_account_permission(bearer(
            pb::SetAccountPermissionRequest {
                account_id: staff,
                permission: "users:*".into(),
                effect: pb::PermissionEffect::Deny.into(),
            },
            &admin,
        ))
        .await
        .expect("deny users:*")
        .into_inner()
        .permissions
        .expect("permissions");
    let left: Vec<&String> = after.effective.iter().filter(|p| p.starts_with("users:")).collect();
    assert!(left.is_empty(), "a deny of users:* leaves no users permission: {left:?}");

    // The old token is revoked by the change; a fresh login carries no users permission.
    let (status, _) = refused_within(&app, &access, bound()).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
    let email = accounts
        .get_account(bearer(pb::GetAccountRequest { account_id: staff }, &admin))
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account")
        .email;
    let fresh = login(&app, &email, PASSWORD).await.expect("login again").access_token;
    let denied = users.list_students(bearer(users_pb::ListStudentsRequest::default(), &fresh)).await;
    assert_eq!(denied.expect_err("users:read is denied").code(), Code::PermissionDenied);
}
