//! Identity fixtures: accounts with roles, logging in over gRPC, attaching tokens.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
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
    insert_account(&mut app.db.conn().await, email, Some(hash), active, role_names).await
}

/// Inserts an account with the named roles; returns its id.
async fn insert_account(
    conn: &mut AsyncPgConnection,
    email: &str,
    password_hash: Option<String>,
    active: bool,
    role_names: &[&str],
) -> i64 {
    let id: i64 = diesel::insert_into(accounts::table)
        .values((accounts::email.eq(email), accounts::password_hash.eq(password_hash), accounts::active.eq(active)))
        .returning(accounts::id)
        .get_result(conn)
        .await
        .expect("insert account");
    for name in role_names {
        let role: i64 =
            roles::table.filter(roles::name.eq(*name)).select(roles::id).first(conn).await.expect("role exists");
        diesel::insert_into(account_roles::table)
            .values((account_roles::account_id.eq(id), account_roles::role_id.eq(role)))
            .execute(conn)
            .await
            .expect("assign role");
    }
    id
}

/// A fresh e-mail address `<prefix>-<uuid>@test.example`.
fn fresh_email(prefix: &str) -> String {
    format!("{prefix}-{}@test.example", uuid::Uuid::new_v4().simple())
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
/// A `service:<client>` subject gets its (active) service-client row, as the token verifier
/// refuses tokens of clients that do not exist.
pub async fn mint_token(app: &TestApp, sub: &str, roles: &[&str], permissions: &[String]) -> String {
    mint_token_with_ttl(app, sub, roles, permissions, std::time::Duration::from_secs(900)).await
}

/// [`mint_token`] with a lifetime of `ttl` (a token that expires during a test).
pub async fn mint_token_with_ttl(
    app: &TestApp,
    sub: &str,
    roles: &[&str],
    permissions: &[String],
    ttl: std::time::Duration,
) -> String {
    let pool = app.db.pool().await;
    if let Some(client) = sub.strip_prefix(phoenix_common::authz::SERVICE_SUBJECT_PREFIX) {
        use diesel_async::RunQueryDsl as _;
        let mut conn = pool.get().await.expect("connection");
        diesel::sql_query(
            "INSERT INTO auth.service_clients (client_id, secret_hash, permissions, active) \
             VALUES ($1, 'minted-by-tests', $2, true) ON CONFLICT (client_id) DO NOTHING",
        )
        .bind::<diesel::sql_types::Text, _>(client)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(permissions)
        .execute(&mut conn)
        .await
        .expect("service client for a minted token");
    }
    sign(&pool, &app.config.secret_key, sub, roles, permissions, ttl).await
}

/// Signs an access token for `sub` with the signing key in `pool`'s database.
async fn sign(
    pool: &phoenix_common::db::DbPool,
    secret: &phoenix_common::config::ServerSecret,
    sub: &str,
    roles: &[&str],
    permissions: &[String],
    ttl: std::time::Duration,
) -> String {
    let signer = phoenix_auth::keys::ensure_signing_key(pool, secret, &Default::default()).await.expect("signing key");
    let subject = phoenix_auth::tokens::Subject {
        sub: sub.to_owned(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        permissions: permissions.to_vec(),
        session_id: None,
    };
    phoenix_auth::tokens::issue_access_token(&signer, subject, ttl).expect("sign").token
}

/// The permissions the seeded role `role` grants.
pub async fn role_permissions(app: &TestApp, role: &str) -> Vec<String> {
    permissions_of_role(&mut app.db.conn().await, role).await
}

async fn permissions_of_role(conn: &mut AsyncPgConnection, role: &str) -> Vec<String> {
    use phoenix_db::schema::auth::{permissions, role_permissions};
    role_permissions::table
        .inner_join(roles::table)
        .inner_join(permissions::table)
        .filter(roles::name.eq(role))
        .select(permissions::name)
        .load(conn)
        .await
        .expect("role permissions")
}

/// A new admin account and an access token for it.
pub async fn admin_token(app: &TestApp) -> (i64, String) {
    let id = create_account(app, &fresh_email("admin"), PASSWORD, &["admin"], true).await;
    let token = mint_token(app, &id.to_string(), &["admin"], &role_permissions(app, "admin").await).await;
    (id, token)
}

/// An account with role `staff` linked to the person of staff member `staff_id`, and an
/// access token for it.
pub async fn staff_token(app: &TestApp, staff_id: i64) -> String {
    let id = staff_account(&app.db.pool().await, staff_id).await;
    mint_token(app, &id.to_string(), &["staff"], &role_permissions(app, "staff").await).await
}

/// Test-only request marker: "make this call as staff member N". [`TestChannel`] strips it
/// on the client side and sends a real token for that staff member's account instead, so a
/// server only ever sees genuine bearer tokens.
pub const AS_STAFF_MARKER: &str = "x-test-as-staff";

/// Mints and caches the tokens a [`TestChannel`] sends.
struct Minter {
    app_db_url: String,
    secret: phoenix_common::config::ServerSecret,
    admin: tokio::sync::OnceCell<String>,
    staff: tokio::sync::Mutex<std::collections::HashMap<i64, String>>,
}

impl Minter {
    async fn pool(&self) -> phoenix_common::db::DbPool {
        phoenix_common::db::connect(
            &self.app_db_url,
            phoenix_common::db::PoolOptions {
                max_size: 2,
                connection_timeout: std::time::Duration::from_secs(10),
                ..Default::default()
            },
        )
        .await
        .expect("pool")
    }

    async fn sign(&self, sub: &str, role: &str) -> String {
        let pool = self.pool().await;
        let permissions = permissions_of_role(&mut pool.get().await.expect("conn"), role).await;
        sign(&pool, &self.secret, sub, &[role], &permissions, std::time::Duration::from_secs(900)).await
    }

    async fn admin(&self) -> String {
        self.admin
            .get_or_init(|| async {
                let pool = self.pool().await;
                let id =
                    insert_account(&mut pool.get().await.expect("conn"), &fresh_email("test"), None, true, &["admin"])
                        .await;
                self.sign(&id.to_string(), "admin").await
            })
            .await
            .clone()
    }

    async fn staff(&self, staff_id: i64) -> String {
        let mut cache = self.staff.lock().await;
        if let Some(t) = cache.get(&staff_id) {
            return t.clone();
        }
        let id = staff_account(&self.pool().await, staff_id).await;
        let token = self.sign(&id.to_string(), "staff").await;
        cache.insert(staff_id, token.clone());
        token
    }
}

/// The account (role `staff`) linked to staff member `staff_id`'s person, created and linked
/// on first use. One account per staff member, however many tokens are asked for: relinking
/// the person to a second account would silently strip the first token of its staff identity.
async fn staff_account(pool: &phoenix_common::db::DbPool, staff_id: i64) -> i64 {
    use phoenix_db::schema::users::{persons, staff};
    let mut conn = pool.get().await.expect("conn");
    let (person, linked): (i64, Option<i64>) = staff::table
        .inner_join(persons::table)
        .filter(staff::id.eq(staff_id))
        .select((persons::id, persons::account_id))
        .first(&mut conn)
        .await
        .expect("staff exists");
    if let Some(id) = linked {
        return id;
    }
    let id = insert_account(&mut conn, &fresh_email("test"), None, true, &["staff"]).await;
    diesel::update(persons::table.find(person))
        .set(persons::account_id.eq(Some(id)))
        .execute(&mut conn)
        .await
        .expect("link account");
    id
}

/// A channel that authenticates every call with a real token: an admin's by default, or the
/// staff member's named by [`AS_STAFF_MARKER`]. A request that already carries an
/// `authorization` header is sent as it is. A channel made by [`TestApp::channel_as`] sends
/// its one token on every call instead.
#[derive(Clone)]
pub struct TestChannel {
    inner: Channel,
    minter: std::sync::Arc<Minter>,
    token: Option<http::HeaderValue>,
}

impl tower::Service<http::Request<tonic::body::Body>> for TestChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        // The ready inner service goes with this call; a fresh clone stays (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let minter = self.minter.clone();
        let fixed = self.token.clone();
        Box::pin(async move {
            let staff = request.headers_mut().remove(AS_STAFF_MARKER);
            if let Some(token) = fixed {
                request.headers_mut().insert("authorization", token);
            } else if !request.headers().contains_key("authorization") {
                let token = match staff.and_then(|v| v.to_str().ok()?.parse::<i64>().ok()) {
                    Some(id) => minter.staff(id).await,
                    None => minter.admin().await,
                };
                request.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
            }
            tower::Service::call(&mut inner, request).await
        })
    }
}

impl TestApp {
    /// A [`TestChannel`] to `domain`: calls are made as an admin unless marked
    /// [`AS_STAFF_MARKER`] (see `phoenix_tests::grpc::request`).
    pub async fn test_channel(&self, domain: Domain) -> TestChannel {
        self.authenticated_channel(domain, None).await
    }

    /// A [`TestChannel`] to `domain` that sends `authorization: Bearer <token>` on every call.
    pub async fn channel_as(&self, domain: Domain, token: &str) -> TestChannel {
        let value = format!("Bearer {token}").parse().expect("ascii token");
        self.authenticated_channel(domain, Some(value)).await
    }

    async fn authenticated_channel(&self, domain: Domain, token: Option<http::HeaderValue>) -> TestChannel {
        let minter = Minter {
            app_db_url: self.db.url().to_owned(),
            secret: self.config.secret_key.clone(),
            admin: Default::default(),
            staff: Default::default(),
        };
        TestChannel { inner: self.channel(domain).await, minter: std::sync::Arc::new(minter), token }
    }
}
