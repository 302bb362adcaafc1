//! Identity fixtures: accounts with roles, logging in over gRPC, attaching tokens.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_common::domain::Domain;
use phoenix_db::schema::auth::{account_roles, accounts, roles};
use phoenix_proto::auth::v1 as pb;
use phoenix_proto::auth::v1::auth_service_client::AuthServiceClient;
use tonic::transport::Channel;

use crate::TestApp;

/// A password that meets the strength rules.
pub const PASSWORD: &str = "Correct-Horse-9";

/// Creates an account (argon2id hash of `password`) with the named roles; returns its id.
pub async fn create_account(app: &TestApp, email: &str, password: &str, role_names: &[&str], active: bool) -> i64 {
    let hash = phoenix_common::password::hash(password).expect("hash");
    let mut conn = app.db.conn().await;
    let id: i64 = diesel::insert_into(accounts::table)
        .values((accounts::email.eq(email), accounts::password_hash.eq(Some(hash)), accounts::active.eq(active)))
        .returning(accounts::id)
        .get_result(&mut conn)
        .await
        .expect("insert account");
    for name in role_names {
        let role: i64 =
            roles::table.filter(roles::name.eq(*name)).select(roles::id).first(&mut conn).await.expect("role exists");
        diesel::insert_into(account_roles::table)
            .values((account_roles::account_id.eq(id), account_roles::role_id.eq(role)))
            .execute(&mut conn)
            .await
            .expect("assign role");
    }
    id
}

/// An auth client on the app's auth server.
pub async fn auth_client(app: &TestApp) -> AuthServiceClient<Channel> {
    AuthServiceClient::new(app.channel(Domain::Auth).await)
}

/// `Login`, returning the token pair or the status.
pub async fn login(app: &TestApp, email: &str, password: &str) -> Result<pb::TokenPair, tonic::Status> {
    let reply = auth_client(app)
        .await
        .login(pb::LoginRequest { email: email.into(), password: password.into() })
        .await?
        .into_inner();
    Ok(reply.tokens.expect("login returns tokens"))
}

/// `message` with `authorization: Bearer <token>`.
pub fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii token"));
    request
}
