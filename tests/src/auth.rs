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

/// Signs an access token with this app's real signing key (created in its database if the
/// auth service has not started yet), as the auth service would for `sub`.
pub async fn mint_token(app: &TestApp, sub: &str, roles: &[&str], permissions: &[String]) -> String {
    let pool = app.db.pool().await;
    let signer = phoenix_auth::keys::ensure_signing_key(&pool, &app.config.secret_key, &Default::default())
        .await
        .expect("signing key");
    let subject = phoenix_auth::tokens::Subject {
        sub: sub.to_owned(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        permissions: permissions.to_vec(),
        session_id: None,
    };
    phoenix_auth::tokens::issue_access_token(&signer, subject, std::time::Duration::from_secs(900)).expect("sign").token
}

/// The permissions the seeded role `role` grants.
pub async fn role_permissions(app: &TestApp, role: &str) -> Vec<String> {
    use phoenix_db::schema::auth::{permissions, role_permissions};
    let mut conn = app.db.conn().await;
    role_permissions::table
        .inner_join(roles::table)
        .inner_join(permissions::table)
        .filter(roles::name.eq(role))
        .select(permissions::name)
        .load(&mut conn)
        .await
        .expect("role permissions")
}

/// A new admin account and an access token for it.
pub async fn admin_token(app: &TestApp) -> (i64, String) {
    let email = format!("admin-{}@test.example", uuid::Uuid::new_v4().simple());
    let id = create_account(app, &email, PASSWORD, &["admin"], true).await;
    let token = mint_token(app, &id.to_string(), &["admin"], &role_permissions(app, "admin").await).await;
    (id, token)
}

/// An account with role `staff` linked to the person of staff member `staff_id`, and an
/// access token for it.
pub async fn staff_token(app: &TestApp, staff_id: i64) -> String {
    use phoenix_db::schema::users::{persons, staff};
    let email = format!("staff-{}@test.example", uuid::Uuid::new_v4().simple());
    let id = create_account(app, &email, PASSWORD, &["staff"], true).await;
    let mut conn = app.db.conn().await;
    let person: i64 =
        staff::table.find(staff_id).select(staff::person_id).first(&mut conn).await.expect("staff exists");
    diesel::update(persons::table.find(person))
        .set(persons::account_id.eq(Some(id)))
        .execute(&mut conn)
        .await
        .expect("link");
    mint_token(app, &id.to_string(), &["staff"], &role_permissions(app, "staff").await).await
}

/// Adds `authorization: Bearer <token>` to every call on a channel.
#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel whose every call carries a bearer token.
pub type AuthedChannel = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

impl TestApp {
    /// A channel to `domain` authenticated with `token`.
    pub async fn channel_as(&self, domain: Domain, token: &str) -> AuthedChannel {
        let value = format!("Bearer {token}").parse().expect("ascii token");
        tonic::service::interceptor::InterceptedService::new(self.channel(domain).await, Bearer(value))
    }

    /// A channel to `domain` authenticated as a fresh admin account.
    pub async fn admin_channel(&self, domain: Domain) -> AuthedChannel {
        let (_, token) = admin_token(self).await;
        self.channel_as(domain, &token).await
    }
}
