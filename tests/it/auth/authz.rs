//! The shared authorization layer: every RPC of every service declares its requirement,
//! and every RPC that exists rejects callers without a token (`Unauthenticated`) or without
//! its permission (`PermissionDenied` naming it). The methods come from the proto
//! descriptors, so a new RPC is covered, or fails here, automatically.

use std::collections::BTreeMap;
use std::sync::Arc;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_common::authz::{Authorized, MethodTable, Requirement, TokenVerifier};
use phoenix_common::domain::Domain;
use phoenix_db::schema::auth::{account_permissions, permissions};
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, bearer, create_account, login};
use prost::Message as _;
use tonic::Code;
use tonic::codegen::http;

/// `(domain, "/package.Service/Method")` of every method in `phoenix.*` protos.
fn proto_methods() -> Vec<(Domain, String)> {
    let set = prost_types::FileDescriptorSet::decode(phoenix_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let mut out = Vec::new();
    for file in set.file {
        let package = file.package().to_owned();
        let Some(domain) = package.strip_prefix("phoenix.").and_then(|p| p.strip_suffix(".v1")) else { continue };
        let domain: Domain = domain.parse().expect("package names a domain");
        for service in &file.service {
            for method in &service.method {
                out.push((domain, format!("/{package}.{}/{}", service.name(), method.name())));
            }
        }
    }
    out
}

fn declarations() -> BTreeMap<&'static str, Requirement> {
    let tables: Vec<MethodTable> = phoenix::services::method_tables();
    let mut all = BTreeMap::new();
    for table in tables {
        for (method, requirement) in table.iter() {
            assert!(all.insert(*method, *requirement).is_none(), "{method} is declared twice");
        }
    }
    all
}

#[tokio::test]
async fn every_proto_method_declares_exactly_one_known_requirement() {
    let methods = proto_methods();
    let declared = declarations();
    let missing: Vec<_> = methods.iter().filter(|(_, m)| !declared.contains_key(m.as_str())).map(|(_, m)| m).collect();
    assert!(missing.is_empty(), "methods without a permission declaration: {missing:?}");
    let stale: Vec<_> = declared.keys().filter(|d| !methods.iter().any(|(_, m)| m == *d)).collect();
    assert!(stale.is_empty(), "declarations of methods that do not exist: {stale:?}");

    // Every required permission is a concrete entry of the seeded catalogue.
    let db = phoenix_tests::TestDb::new().await;
    let mut conn = db.conn().await;
    let catalogue: Vec<String> = permissions::table.select(permissions::name).load(&mut conn).await.expect("catalogue");
    for (method, requirement) in &declared {
        if let Requirement::Permission(p) = requirement {
            assert!(!p.contains('*'), "{method} requires a wildcard {p}");
            assert!(catalogue.contains(&p.to_string()), "{method} requires {p}, which is not in auth.permissions");
        }
    }
    assert!(methods.len() >= 7, "the auth methods at least ({} found)", methods.len());
}

/// One unary call with an empty request message; only the status matters.
async fn call(channel: tonic::transport::Channel, path: &str, token: Option<&str>) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let request = match token {
        Some(t) => bearer((), t),
        None => tonic::Request::new(()),
    };
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    grpc.unary::<(), (), _>(request, path, tonic_prost::ProstCodec::default()).await.map(|_| ())
}

#[tokio::test]
async fn every_rpc_rejects_a_missing_token_and_a_missing_permission() {
    let app = TestApp::spawn(&Domain::ALL).await;
    // An account with no roles and no grants: a valid token with no permissions.
    create_account(&app, "nobody@school.de", PASSWORD, &[], true).await;
    let token = login(&app, "nobody@school.de", PASSWORD).await.expect("login").access_token;
    let declared = declarations();
    let mut checked = 0;
    for (domain, method) in proto_methods() {
        let requirement = declared[method.as_str()];
        let channel = app.channel(domain).await;
        let anonymous = call(channel.clone(), &method, None).await;
        let with_token = call(channel, &method, Some(&token)).await;
        match requirement {
            Requirement::Public => {
                let code = anonymous.err().map(|s| s.code());
                assert!(
                    !matches!(code, Some(Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented)),
                    "{method} is public but answered {code:?} without a token"
                );
            }
            Requirement::Authenticated | Requirement::Permission(_) => {
                let status = anonymous.expect_err("needs a token");
                assert_eq!(status.code(), Code::Unauthenticated, "{method} without a token: {status:?}");
            }
        }
        match requirement {
            Requirement::Permission(p) => {
                let status = with_token.expect_err("needs a permission");
                assert_eq!(status.code(), Code::PermissionDenied, "{method} without {p}: {status:?}");
                assert!(status.message().contains(p), "{method}: the message names {p}: {}", status.message());
            }
            Requirement::Public | Requirement::Authenticated => {
                let code = with_token.err().map(|s| s.code());
                assert!(
                    !matches!(code, Some(Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented)),
                    "{method} answered {code:?} to a valid token"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 7, "checked {checked} methods");
    app.stop().await;
}

/// A health server behind the layer, with `Check` requiring `users:delete` and `Watch`
/// left undeclared: exercises permission checks with real tokens from the auth service.
#[tokio::test]
async fn the_layer_checks_the_declared_permission_and_a_deny_beats_a_role_grant() {
    const TABLE: MethodTable = &[("/grpc.health.v1.Health/Check", Requirement::Permission("users:delete"))];
    let app = TestApp::spawn(&[Domain::Auth]).await;
    create_account(&app, "staff@school.de", PASSWORD, &["staff"], true).await;
    let admin = create_account(&app, "admin@school.de", PASSWORD, &["admin"], true).await;
    let denied_admin = create_account(&app, "limited@school.de", PASSWORD, &["admin"], true).await;
    let mut conn = app.db.conn().await;
    let users_delete: i64 = permissions::table
        .filter(permissions::name.eq("users:delete"))
        .select(permissions::id)
        .first(&mut conn)
        .await
        .expect("permission");
    diesel::insert_into(account_permissions::table)
        .values((
            account_permissions::account_id.eq(denied_admin),
            account_permissions::permission_id.eq(users_delete),
            account_permissions::granted.eq(false),
        ))
        .execute(&mut conn)
        .await
        .expect("deny");

    let (_reporter, health) = tonic_health::server::health_reporter();
    let verifier = Arc::new(TokenVerifier::new(app.db.pool().await));
    let protected = Authorized::new(health, TABLE, verifier).expect("table matches the service");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(protected)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = phoenix_tests::app::connect(addr).await;
    let check = "/grpc.health.v1.Health/Check";

    let staff = login(&app, "staff@school.de", PASSWORD).await.expect("login").access_token;
    let status = call(channel.clone(), check, Some(&staff)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "missing permission users:delete");

    let admin_token = login(&app, "admin@school.de", PASSWORD).await.expect("login").access_token;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let ok = health
        .check(bearer(tonic_health::pb::HealthCheckRequest { service: String::new() }, &admin_token))
        .await
        .expect("admin (*:*) passes");
    assert_eq!(ok.into_inner().status, tonic_health::ServingStatus::Serving as i32);
    assert!(admin > 0);

    let limited = login(&app, "limited@school.de", PASSWORD).await.expect("login").access_token;
    let status = call(channel.clone(), check, Some(&limited)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "a direct deny beats the admin role's *:*");

    let anonymous = call(channel.clone(), check, None).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    // A method the table does not declare is refused even for an admin.
    let watch = call(channel, "/grpc.health.v1.Health/Watch", Some(&admin_token)).await.unwrap_err();
    assert_eq!(watch.code(), Code::PermissionDenied);
    assert!(watch.message().contains("declares no permission"), "{}", watch.message());
    server.abort();
    app.stop().await;
}

#[test]
fn a_table_naming_another_services_method_is_rejected_at_start() {
    const WRONG: MethodTable = &[("/phoenix.users.v1.UsersService/GetStudent", Requirement::Public)];
    let (_reporter, health) = tonic_health::server::health_reporter();
    let verifier = Arc::new(TokenVerifier::with_keys(vec![]));
    assert!(Authorized::new(health, WRONG, verifier).is_err());
}
