//! Staff invitations over real gRPC: create, list pending, resend, revoke (admin), look up
//! and accept (public; person + account + role + staff record in one transaction).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_common::domain::Domain;
use phoenix_db::schema::audit::auth_events;
use phoenix_db::schema::auth::{invitations, outbox};
use phoenix_db::schema::users;
use phoenix_proto::auth::v1 as pb;
use phoenix_proto::auth::v1::invitation_service_client::InvitationServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::{PASSWORD, auth_client, bearer, create_account, login};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

const INVITEE_PASSWORD: &str = "Invited-Pass5!";

struct Admin {
    client: InvitationServiceClient<Channel>,
    token: String,
}

impl Admin {
    async fn new(app: &TestApp) -> Self {
        create_account(app, "head@school.de", PASSWORD, &["admin"], true).await;
        let token = login(app, "head@school.de", PASSWORD).await.expect("login").access_token;
        Self { client: InvitationServiceClient::new(app.channel(Domain::Auth).await), token }
    }

    async fn create(&mut self, req: pb::CreateInvitationRequest) -> Result<pb::Invitation, tonic::Status> {
        let reply = self.client.create_invitation(bearer(req, &self.token)).await?.into_inner();
        Ok(reply.invitation.expect("invitation"))
    }

    async fn list(&mut self) -> pb::ListInvitationsResponse {
        self.client
            .list_invitations(bearer(pb::ListInvitationsRequest::default(), &self.token))
            .await
            .expect("list")
            .into_inner()
    }

    async fn resend(&mut self, id: i64) -> Result<pb::Invitation, tonic::Status> {
        let req = pb::ResendInvitationRequest { invitation_id: id };
        Ok(self.client.resend_invitation(bearer(req, &self.token)).await?.into_inner().invitation.expect("invitation"))
    }

    async fn revoke(&mut self, id: i64) -> Result<(), tonic::Status> {
        let req = pb::RevokeInvitationRequest { invitation_id: id };
        self.client.revoke_invitation(bearer(req, &self.token)).await.map(|_| ())
    }
}

fn invite(email: &str) -> pb::CreateInvitationRequest {
    pb::CreateInvitationRequest {
        email: email.into(),
        role_name: "staff".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        position: "Betreuerin".into(),
    }
}

/// The token of the newest outbox message of an invitation.
async fn outbox_token(app: &TestApp, invitation_id: i64) -> String {
    let mut conn = app.db.conn().await;
    let (kind, payload): (String, serde_json::Value) = outbox::table
        .filter(outbox::invitation_id.eq(invitation_id))
        .order(outbox::id.desc())
        .select((outbox::kind, outbox::payload))
        .first(&mut conn)
        .await
        .expect("an outbox message");
    assert_eq!(kind, "invitation");
    payload["token"].as_str().expect("payload.token").to_owned()
}

async fn public(app: &TestApp) -> InvitationServiceClient<Channel> {
    InvitationServiceClient::new(app.channel(Domain::Auth).await)
}

async fn lookup(app: &TestApp, token: &str) -> Result<pb::Invitation, tonic::Status> {
    let req = pb::LookupInvitationRequest { token: token.into() };
    Ok(public(app).await.lookup_invitation(req).await?.into_inner().invitation.expect("invitation"))
}

async fn accept(app: &TestApp, token: &str, password: &str) -> Result<pb::AcceptInvitationResponse, tonic::Status> {
    let req = pb::AcceptInvitationRequest { token: token.into(), password: password.into(), ..Default::default() };
    Ok(public(app).await.accept_invitation(req).await?.into_inner())
}

fn reason(status: &tonic::Status) -> Option<String> {
    status.get_error_details().error_info().map(|i| i.reason.clone())
}

fn bad_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .expect("BadRequest")
        .field_violations
        .iter()
        .map(|f| f.field.clone())
        .collect()
}

#[tokio::test]
async fn an_invitation_is_created_listed_looked_up_and_accepted_once() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let mut admin = Admin::new(&app).await;
    let created = admin.create(invite(" Ada@School.de ")).await.expect("create");
    assert_eq!((created.email.as_str(), created.role_name.as_str()), ("ada@school.de", "staff"));
    let ttl = created.expire_time.expect("expiry").seconds - chrono::Utc::now().timestamp();
    assert!((47 * 3600..=48 * 3600).contains(&ttl), "48 h, got {ttl} s");
    let listed = admin.list().await;
    assert_eq!(listed.total_size, 1);
    assert_eq!(listed.invitations, std::slice::from_ref(&created));

    let token = outbox_token(&app, created.id).await;
    let looked_up = lookup(&app, &token).await.expect("lookup");
    assert_eq!(looked_up, created);

    let accepted = accept(&app, &token, INVITEE_PASSWORD).await.expect("accept");
    let tokens = login(&app, "ada@school.de", INVITEE_PASSWORD).await.expect("the new account logs in");
    let me = auth_client(&app)
        .await
        .who_am_i(bearer(pb::WhoAmIRequest {}, &tokens.access_token))
        .await
        .expect("who am i")
        .into_inner();
    assert_eq!(me.account.as_ref().map(|a| a.id), Some(accepted.account_id));
    assert_eq!(me.roles, ["staff"]);
    assert_eq!((me.person_id, me.staff_id), (Some(accepted.person_id), Some(accepted.staff_id)));
    assert!(me.teacher_id.is_some(), "a position makes a teacher record");

    let mut conn = app.db.conn().await;
    let (first, last): (String, String) = users::persons::table
        .find(accepted.person_id)
        .select((users::persons::first_name, users::persons::last_name))
        .first(&mut conn)
        .await
        .expect("person");
    assert_eq!((first.as_str(), last.as_str()), ("Ada", "Lovelace"));
    let position: Option<String> = users::teachers::table
        .filter(users::teachers::staff_id.eq(accepted.staff_id))
        .select(users::teachers::role)
        .first(&mut conn)
        .await
        .expect("teacher");
    assert_eq!(position.as_deref(), Some("Betreuerin"));
    let events: i64 = auth_events::table
        .filter(auth_events::event_type.eq("invitation_accepted"))
        .filter(auth_events::account_id.eq(accepted.account_id))
        .count()
        .get_result(&mut conn)
        .await
        .expect("events");
    assert_eq!(events, 1);

    // Used: accept and look-up are refused, the list is empty.
    let again = accept(&app, &token, INVITEE_PASSWORD).await.expect_err("used");
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(reason(&again).as_deref(), Some("INVITATION_USED"));
    assert_eq!(lookup(&app, &token).await.expect_err("used").code(), Code::FailedPrecondition);
    assert_eq!(admin.list().await.total_size, 0);
    assert_eq!(lookup(&app, "no-such-token").await.expect_err("unknown").code(), Code::NotFound);

    // An email that has an account cannot be invited.
    let taken = admin.create(invite("ada@school.de")).await.expect_err("taken");
    assert_eq!(taken.code(), Code::AlreadyExists);
    app.stop().await;
}

#[tokio::test]
async fn create_validates_fields_and_needs_auth_manage() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let mut admin = Admin::new(&app).await;
    let bad = admin
        .create(pb::CreateInvitationRequest {
            email: "nope".into(),
            role_name: String::new(),
            position: "x".repeat(101),
            ..Default::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(bad_fields(&bad), ["email", "role_name", "position"]);
    let unknown_role = admin
        .create(pb::CreateInvitationRequest { role_name: "janitor".into(), ..invite("x@school.de") })
        .await
        .expect_err("unknown role");
    assert_eq!(bad_fields(&unknown_role), ["role_name"]);

    create_account(&app, "staff@school.de", PASSWORD, &["staff"], true).await;
    let staff = login(&app, "staff@school.de", PASSWORD).await.expect("login").access_token;
    let denied = public(&app).await.create_invitation(bearer(invite("y@school.de"), &staff)).await.expect_err("denied");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("auth:manage"), "{}", denied.message());
    app.stop().await;
}

#[tokio::test]
async fn resend_replaces_the_token_and_revoke_ends_the_invitation() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let mut admin = Admin::new(&app).await;
    let created = admin.create(invite("bob@school.de")).await.expect("create");
    let first = outbox_token(&app, created.id).await;
    let resent = admin.resend(created.id).await.expect("resend");
    assert_eq!(resent.id, created.id);
    let second = outbox_token(&app, created.id).await;
    assert_ne!(first, second);
    assert_eq!(lookup(&app, &first).await.expect_err("old token").code(), Code::NotFound);
    lookup(&app, &second).await.expect("new token");

    // A second invitation of the same email replaces the pending one.
    let replacement = admin.create(invite("bob@school.de")).await.expect("replace");
    assert_eq!(lookup(&app, &second).await.expect_err("replaced").code(), Code::FailedPrecondition);
    let listed = admin.list().await;
    assert_eq!(listed.invitations.iter().map(|i| i.id).collect::<Vec<_>>(), [replacement.id]);

    admin.revoke(replacement.id).await.expect("revoke");
    let token = outbox_token(&app, replacement.id).await;
    let status = accept(&app, &token, INVITEE_PASSWORD).await.expect_err("revoked");
    assert_eq!(reason(&status).as_deref(), Some("INVITATION_USED"));
    assert_eq!(admin.revoke(replacement.id).await.expect_err("twice").code(), Code::FailedPrecondition);
    assert_eq!(admin.resend(replacement.id).await.expect_err("revoked").code(), Code::FailedPrecondition);
    assert_eq!(admin.resend(999_999).await.expect_err("unknown").code(), Code::NotFound);
    assert_eq!(admin.revoke(999_999).await.expect_err("unknown").code(), Code::NotFound);
    assert_eq!(admin.list().await.total_size, 0);
    app.stop().await;
}

#[tokio::test]
async fn expired_invitations_are_refused_until_resent_and_accept_validates() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let mut admin = Admin::new(&app).await;
    let created = admin
        .create(pb::CreateInvitationRequest {
            first_name: String::new(),
            last_name: String::new(),
            position: String::new(),
            ..invite("cleo@school.de")
        })
        .await
        .expect("create");
    let token = outbox_token(&app, created.id).await;
    let mut conn = app.db.conn().await;
    diesel::update(invitations::table.find(created.id))
        .set((
            invitations::created_at.eq(chrono::Utc::now() - chrono::Duration::hours(50)),
            invitations::expires_at.eq(chrono::Utc::now() - chrono::Duration::hours(2)),
        ))
        .execute(&mut conn)
        .await
        .expect("backdate");
    let status = lookup(&app, &token).await.expect_err("expired");
    assert_eq!((status.code(), reason(&status).as_deref()), (Code::FailedPrecondition, Some("INVITATION_EXPIRED")));
    let status = accept(&app, &token, INVITEE_PASSWORD).await.expect_err("expired");
    assert_eq!((status.code(), reason(&status).as_deref()), (Code::FailedPrecondition, Some("INVITATION_EXPIRED")));
    assert_eq!(admin.list().await.total_size, 0, "expired invitations are not pending");

    admin.resend(created.id).await.expect("resend renews it");
    let token = outbox_token(&app, created.id).await;
    assert_eq!(bad_fields(&accept(&app, &token, "weak").await.expect_err("weak")), ["password"]);
    // The invitation has no names, so the request must bring them.
    assert_eq!(
        bad_fields(&accept(&app, &token, INVITEE_PASSWORD).await.expect_err("no names")),
        ["first_name", "last_name"]
    );
    let req = pb::AcceptInvitationRequest {
        token: token.clone(),
        password: INVITEE_PASSWORD.into(),
        first_name: "Cleo".into(),
        last_name: "Meier".into(),
    };
    let accepted = public(&app).await.accept_invitation(req).await.expect("accept").into_inner();
    let teachers: i64 = users::teachers::table
        .filter(users::teachers::staff_id.eq(accepted.staff_id))
        .count()
        .get_result(&mut conn)
        .await
        .expect("count");
    assert_eq!(teachers, 0, "no position, no teacher record");
    login(&app, "cleo@school.de", INVITEE_PASSWORD).await.expect("login");
    app.stop().await;
}
