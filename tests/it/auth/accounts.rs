//! `phoenix.auth.v1.AccountService`: account administration by an admin over real gRPC.

use phoenix_common::domain::Domain;
use phoenix_proto::auth::v1 as pb;
use phoenix_proto::auth::v1::account_service_client::AccountServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, auth_client, bearer, create_account, login};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

async fn admin(app: &TestApp) -> (AccountServiceClient<Channel>, String) {
    create_account(app, "root@school.de", PASSWORD, &["admin"], true).await;
    let token = login(app, "root@school.de", PASSWORD).await.expect("admin login").access_token;
    (AccountServiceClient::new(app.channel(Domain::Auth).await), token)
}

fn violation_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_admin_creates_reads_updates_and_pages_through_accounts() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let (mut accounts, token) = admin(&app).await;
    let created = accounts
        .create_account(bearer(
            pb::CreateAccountRequest {
                email: " New.Teacher@School.de".into(),
                username: "nteacher".into(),
                password: "Fresh-Start-1".into(),
                role_names: vec!["staff".into()],
            },
            &token,
        ))
        .await
        .expect("create")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(
        (created.email.as_str(), created.roles.as_slice()),
        ("new.teacher@school.de", ["staff".to_owned()].as_slice())
    );
    assert!(created.active);
    login(&app, "new.teacher@school.de", "Fresh-Start-1").await.expect("the new account logs in");

    let dup = accounts
        .create_account(bearer(
            pb::CreateAccountRequest { email: "new.teacher@school.de".into(), ..Default::default() },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    let bad_role = accounts
        .create_account(bearer(
            pb::CreateAccountRequest {
                email: "x@school.de".into(),
                role_names: vec!["wizard".into()],
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_role.code(), Code::InvalidArgument);
    assert_eq!(violation_fields(&bad_role), ["role_names[0]"]);

    let updated = accounts
        .update_account(bearer(
            pb::UpdateAccountRequest {
                account: Some(pb::Account { id: created.id, email: "renamed@school.de".into(), ..Default::default() }),
                update_mask: Some(prost_types::FieldMask { paths: vec!["email".into(), "username".into()] }),
            },
            &token,
        ))
        .await
        .expect("update")
        .into_inner()
        .account
        .expect("account");
    assert_eq!((updated.email.as_str(), updated.username.as_str()), ("renamed@school.de", ""));
    let missing =
        accounts.get_account(bearer(pb::GetAccountRequest { account_id: 999_999 }, &token)).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    for i in 0..3 {
        create_account(&app, &format!("pupil-helper{i}@school.de"), PASSWORD, &["guest"], true).await;
    }
    let page = |page_token: String| pb::ListAccountsRequest {
        page_size: 2,
        page_token,
        email_contains: "HELPER".into(),
        active: Some(true),
        role_name: "guest".into(),
    };
    let first = accounts.list_accounts(bearer(page(String::new()), &token)).await.expect("list").into_inner();
    assert_eq!((first.accounts.len(), first.total_size), (2, 3));
    assert!(!first.next_page_token.is_empty());
    let second =
        accounts.list_accounts(bearer(page(first.next_page_token.clone()), &token)).await.expect("list").into_inner();
    assert_eq!(second.accounts.len(), 1);
    assert!(second.next_page_token.is_empty(), "the last page has no next token");
    assert!(second.accounts[0].id > first.accounts[1].id);
    let mut other_filter = page(first.next_page_token);
    other_filter.active = Some(false);
    let err = accounts.list_accounts(bearer(other_filter, &token)).await.unwrap_err();
    assert_eq!(violation_fields(&err), ["page_token"]);
    app.stop().await;
}

#[tokio::test]
async fn deactivating_an_account_ends_its_sessions_and_blocks_login() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let (mut accounts, token) = admin(&app).await;
    let id = create_account(&app, "leaving@school.de", PASSWORD, &["staff"], true).await;
    let session = login(&app, "leaving@school.de", PASSWORD).await.expect("login");

    let reply = accounts
        .deactivate_account(bearer(pb::DeactivateAccountRequest { account_id: id }, &token))
        .await
        .expect("deactivate")
        .into_inner();
    assert_eq!(reply.revoked_session_count, 1);
    assert!(!reply.account.expect("account").active);
    let refresh =
        auth_client(&app).await.refresh(pb::RefreshRequest { refresh_token: session.refresh_token }).await.unwrap_err();
    assert_eq!(refresh.code(), Code::Unauthenticated, "deactivation revokes the refresh tokens");
    let login_err = login(&app, "leaving@school.de", PASSWORD).await.unwrap_err();
    assert!(login_err.message().contains("inactive"), "{}", login_err.message());

    accounts.activate_account(bearer(pb::ActivateAccountRequest { account_id: id }, &token)).await.expect("activate");
    login(&app, "leaving@school.de", PASSWORD).await.expect("active again");

    let me = auth_client(&app).await.who_am_i(bearer(pb::WhoAmIRequest {}, &token)).await.expect("me").into_inner();
    let own = me.account.expect("account").id;
    let err = accounts
        .deactivate_account(bearer(pb::DeactivateAccountRequest { account_id: own }, &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.get_error_details().error_info().expect("ErrorInfo").reason, "SELF_DEACTIVATION");
    app.stop().await;
}

#[tokio::test]
async fn roles_and_direct_denies_shape_the_next_token() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let (mut accounts, token) = admin(&app).await;
    let id = create_account(&app, "helper@school.de", PASSWORD, &["staff"], true).await;

    let staff_token = login(&app, "helper@school.de", PASSWORD).await.expect("login").access_token;
    let denied =
        accounts.get_account(bearer(pb::GetAccountRequest { account_id: id }, &staff_token)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(denied.message(), "missing permission auth:manage");

    let set = |permission: &str, effect: pb::PermissionEffect| pb::SetAccountPermissionRequest {
        account_id: id,
        permission: permission.into(),
        effect: effect as i32,
    };
    let perms = accounts
        .set_account_permission(bearer(set("users:read", pb::PermissionEffect::Deny), &token))
        .await
        .expect("deny")
        .into_inner()
        .permissions
        .expect("permissions");
    assert_eq!(perms.denied, ["users:read"]);
    assert!(!perms.effective.contains(&"users:read".to_owned()), "a deny beats the staff role's grant");
    accounts
        .set_account_permission(bearer(set("auth:manage", pb::PermissionEffect::Grant), &token))
        .await
        .expect("grant");
    let unknown = accounts
        .set_account_permission(bearer(set("magic:wand", pb::PermissionEffect::Grant), &token))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&unknown), ["permission"]);

    let new_token = login(&app, "helper@school.de", PASSWORD).await.expect("login").access_token;
    let me = auth_client(&app).await.who_am_i(bearer(pb::WhoAmIRequest {}, &new_token)).await.expect("me").into_inner();
    assert!(me.permissions.contains(&"auth:manage".to_owned()));
    assert!(!me.permissions.contains(&"users:read".to_owned()));
    accounts.get_account(bearer(pb::GetAccountRequest { account_id: id }, &new_token)).await.expect("granted directly");

    accounts
        .remove_account_permission(bearer(
            pb::RemoveAccountPermissionRequest { account_id: id, permission: "users:read".into() },
            &token,
        ))
        .await
        .expect("remove deny");
    let account = accounts
        .add_account_role(bearer(pb::AddAccountRoleRequest { account_id: id, role_name: "Guest".into() }, &token))
        .await
        .expect("add role")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(account.roles, ["guest", "staff"]);
    let account = accounts
        .remove_account_role(bearer(pb::RemoveAccountRoleRequest { account_id: id, role_name: "staff".into() }, &token))
        .await
        .expect("remove role")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(account.roles, ["guest"]);
    let perms = accounts
        .get_account_permissions(bearer(pb::GetAccountPermissionsRequest { account_id: id }, &token))
        .await
        .expect("permissions")
        .into_inner()
        .permissions
        .expect("permissions");
    assert_eq!(perms.effective, ["activities:read", "auth:manage", "rooms:read", "users:list", "users:read"]);
    assert!(perms.denied.is_empty());
    app.stop().await;
}
