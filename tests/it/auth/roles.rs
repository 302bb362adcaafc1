//! `phoenix.auth.v1.RoleService`: roles and the permission catalogue, with system roles
//! and permissions protected.

use phoenix_common::domain::Domain;
use phoenix_proto::auth::v1 as pb;
use phoenix_proto::auth::v1::role_service_client::RoleServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, auth_client, bearer, create_account, login};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

async fn admin(app: &TestApp) -> (RoleServiceClient<Channel>, String) {
    create_account(app, "root@school.de", PASSWORD, &["admin"], true).await;
    let token = login(app, "root@school.de", PASSWORD).await.expect("admin login").access_token;
    (RoleServiceClient::new(app.channel(Domain::Auth).await), token)
}

fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() })
}

#[tokio::test]
async fn roles_are_managed_and_system_roles_are_protected() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let (mut roles, token) = admin(&app).await;
    let helper = roles
        .create_role(bearer(
            pb::CreateRoleRequest {
                name: "Helper".into(),
                description: "Afternoon helpers".into(),
                permissions: vec!["rooms:read".into()],
            },
            &token,
        ))
        .await
        .expect("create")
        .into_inner()
        .role
        .expect("role");
    assert_eq!((helper.name.as_str(), helper.system), ("helper", false));
    assert_eq!(helper.permissions, ["rooms:read"]);
    let dup =
        roles.create_role(bearer(pb::CreateRoleRequest { name: "helper".into(), ..Default::default() }, &token)).await;
    assert_eq!(dup.unwrap_err().code(), Code::AlreadyExists);
    let bad = roles
        .create_role(bearer(
            pb::CreateRoleRequest { name: "x".into(), permissions: vec!["magic:wand".into()], ..Default::default() },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.get_error_details().bad_request().expect("BadRequest").field_violations[0].field, "permissions[0]");

    let first = roles
        .list_roles(bearer(pb::ListRolesRequest { page_size: 3, page_token: String::new() }, &token))
        .await
        .expect("list")
        .into_inner();
    assert_eq!((first.roles.len(), first.total_size), (3, 5));
    let rest = roles
        .list_roles(bearer(pb::ListRolesRequest { page_size: 3, page_token: first.next_page_token }, &token))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(rest.roles.len(), 2);
    let staff = first.roles.iter().chain(&rest.roles).find(|r| r.name == "staff").expect("staff").clone();
    let admin_role = first.roles.iter().chain(&rest.roles).find(|r| r.name == "admin").expect("admin").clone();
    assert!(staff.system);

    let rename = |role: &pb::Role, name: &str| pb::UpdateRoleRequest {
        role: Some(pb::Role { id: role.id, name: name.into(), ..Default::default() }),
        update_mask: mask(&["name"]),
    };
    let renamed = roles.update_role(bearer(rename(&helper, "aide"), &token)).await.expect("rename").into_inner();
    assert_eq!(renamed.role.expect("role").name, "aide");
    let err = roles.update_role(bearer(rename(&staff, "teachers"), &token)).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "SYSTEM_ROLE"));
    let described = roles
        .update_role(bearer(
            pb::UpdateRoleRequest {
                role: Some(pb::Role { id: staff.id, description: "Betreuer".into(), ..Default::default() }),
                update_mask: mask(&["description"]),
            },
            &token,
        ))
        .await
        .expect("a system role's description may change");
    assert_eq!(described.into_inner().role.expect("role").description, "Betreuer");

    let err = roles.delete_role(bearer(pb::DeleteRoleRequest { role_id: staff.id }, &token)).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "SYSTEM_ROLE"));
    roles.delete_role(bearer(pb::DeleteRoleRequest { role_id: helper.id }, &token)).await.expect("delete");
    let gone = roles.get_role(bearer(pb::GetRoleRequest { role_id: helper.id }, &token)).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    let err = roles
        .remove_role_permission(bearer(
            pb::RemoveRolePermissionRequest { role_id: admin_role.id, permission: "*:*".into() },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "ADMIN_ROLE_FIXED");

    // A role change reaches the role's members at their next token.
    let guest = first.roles.iter().chain(&rest.roles).find(|r| r.name == "guest").expect("guest").clone();
    let updated = roles
        .add_role_permission(bearer(
            pb::AddRolePermissionRequest { role_id: guest.id, permission: "rooms:list".into() },
            &token,
        ))
        .await
        .expect("add")
        .into_inner()
        .role
        .expect("role");
    assert!(updated.permissions.contains(&"rooms:list".to_owned()));
    create_account(&app, "visitor@school.de", PASSWORD, &["guest"], true).await;
    let visitor = login(&app, "visitor@school.de", PASSWORD).await.expect("login").access_token;
    let me = auth_client(&app).await.who_am_i(bearer(pb::WhoAmIRequest {}, &visitor)).await.expect("me").into_inner();
    assert!(me.permissions.contains(&"rooms:list".to_owned()));
    let denied = roles.list_roles(bearer(pb::ListRolesRequest::default(), &visitor)).await.unwrap_err();
    assert_eq!((denied.code(), denied.message()), (Code::PermissionDenied, "missing permission roles:read"));
    app.stop().await;
}

#[tokio::test]
async fn the_permission_catalogue_grows_but_system_permissions_stay() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let (mut roles, token) = admin(&app).await;
    let created = roles
        .create_permission(bearer(
            pb::CreatePermissionRequest {
                resource: "Reports".into(),
                action: "export".into(),
                description: String::new(),
            },
            &token,
        ))
        .await
        .expect("create")
        .into_inner()
        .permission
        .expect("permission");
    assert_eq!((created.name.as_str(), created.system), ("reports:export", false));
    let dup = roles
        .create_permission(bearer(
            pb::CreatePermissionRequest {
                resource: "reports".into(),
                action: "export".into(),
                description: String::new(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    let bad = roles
        .create_permission(bearer(
            pb::CreatePermissionRequest { resource: "re ports".into(), action: "".into(), description: String::new() },
            &token,
        ))
        .await
        .unwrap_err();
    let fields: Vec<_> = bad
        .get_error_details()
        .bad_request()
        .expect("BadRequest")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["resource", "action"]);

    let list = roles
        .list_permissions(bearer(
            pb::ListPermissionsRequest { resource: "reports".into(), ..Default::default() },
            &token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.permissions.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["reports:export"]);
    let all =
        roles.list_permissions(bearer(pb::ListPermissionsRequest::default(), &token)).await.expect("all").into_inner();
    assert!(all.total_size > 80, "the seeded catalogue ({})", all.total_size);
    assert_eq!(all.permissions.len(), 50, "default page size");
    let system = all.permissions.iter().find(|p| p.name == "users:read").expect("seeded").clone();

    let err = roles
        .delete_permission(bearer(pb::DeletePermissionRequest { permission_id: system.id }, &token))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "SYSTEM_PERMISSION");
    roles
        .delete_permission(bearer(pb::DeletePermissionRequest { permission_id: created.id }, &token))
        .await
        .expect("delete");
    let list = roles
        .list_permissions(bearer(
            pb::ListPermissionsRequest { resource: "reports".into(), ..Default::default() },
            &token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert!(list.permissions.is_empty());
    app.stop().await;
}
