//! Guardian invitations (issue #12): the office invites a `users.guardians` record, the
//! parent looks the invitation up and accepts it with a password; one transaction creates
//! the account (guardian's email, `guardian` role) and links it to the guardian record, and
//! no staff record. Also: only staff invitations create staff records.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use phoenix_common::domain::Domain;
use phoenix_db::schema::auth::{guardian_invitations, outbox};
use phoenix_db::schema::users;
use phoenix_proto::active::v1 as apb;
use phoenix_proto::active::v1::active_service_client::ActiveServiceClient;
use phoenix_proto::auth::v1 as pb;
use phoenix_proto::auth::v1::invitation_service_client::InvitationServiceClient;
use phoenix_proto::users::v1 as upb;
use phoenix_proto::users::v1::family_service_client::FamilyServiceClient;
use phoenix_tests::auth::{
    PASSWORD, admin_token, auth_client, bearer, create_account, login, mint_token, role_permissions, staff_token,
};
use phoenix_tests::grpc::{assert_code, assert_invalid, assert_precondition};
use phoenix_tests::{TestApp, fixtures};
use tonic::Code;
use tonic::transport::Channel;

const PARENT_PASSWORD: &str = "Eltern-Pass7!";

/// The office: an admin token on the invitation service.
struct Office {
    client: InvitationServiceClient<Channel>,
    token: String,
}

impl Office {
    async fn new(app: &TestApp) -> Self {
        let (_, token) = admin_token(app).await;
        Self { client: InvitationServiceClient::new(app.channel(Domain::Auth).await), token }
    }

    async fn invite(&mut self, guardian_id: i64) -> Result<pb::GuardianInvitation, tonic::Status> {
        let req = pb::CreateGuardianInvitationRequest { guardian_id };
        let reply = self.client.create_guardian_invitation(bearer(req, &self.token)).await?.into_inner();
        Ok(reply.invitation.expect("invitation"))
    }
}

async fn public(app: &TestApp) -> InvitationServiceClient<Channel> {
    InvitationServiceClient::new(app.channel(Domain::Auth).await)
}

async fn lookup(app: &TestApp, token: &str) -> Result<pb::LookupGuardianInvitationResponse, tonic::Status> {
    let req = pb::LookupGuardianInvitationRequest { token: token.into() };
    Ok(public(app).await.lookup_guardian_invitation(req).await?.into_inner())
}

async fn accept(
    app: &TestApp,
    token: &str,
    password: &str,
) -> Result<pb::AcceptGuardianInvitationResponse, tonic::Status> {
    let req = pb::AcceptGuardianInvitationRequest { token: token.into(), password: password.into() };
    Ok(public(app).await.accept_guardian_invitation(req).await?.into_inner())
}

/// The token of the newest outbox message of a guardian invitation.
async fn outbox_token(app: &TestApp, guardian_invitation_id: i64) -> String {
    let mut conn = app.db.conn().await;
    let (kind, payload): (String, serde_json::Value) = outbox::table
        .filter(outbox::guardian_invitation_id.eq(guardian_invitation_id))
        .order(outbox::id.desc())
        .select((outbox::kind, outbox::payload))
        .first(&mut conn)
        .await
        .expect("an outbox message");
    assert_eq!(kind, "guardian_invitation");
    payload["token"].as_str().expect("payload.token").to_owned()
}

async fn staff_rows(app: &TestApp) -> i64 {
    users::staff::table.count().get_result(&mut app.db.conn().await).await.expect("count staff")
}

/// A pupil with guardian Petra (`petra@example.org`, no account); returns (student, guardian).
async fn family(app: &TestApp) -> (i64, i64) {
    let mut conn = app.db.conn().await;
    let child = fixtures::student(&mut conn, "Mia", "Muster", &fixtures::tag(1)).await;
    let guardian = fixtures::guardian_of(&mut conn, child, "Petra", "Muster", true).await;
    (child, guardian)
}

#[tokio::test]
async fn a_guardian_is_invited_accepts_once_and_signs_in_as_guardian() {
    let app = TestApp::spawn(&[Domain::Auth, Domain::Users]).await;
    let (child, guardian) = family(&app).await;
    let mut office = Office::new(&app).await;
    let staff_before = staff_rows(&app).await;

    let invitation = office.invite(guardian).await.expect("invite");
    assert_eq!(invitation.guardian_id, guardian);
    let ttl = invitation.expire_time.expect("expiry").seconds - chrono::Utc::now().timestamp();
    assert!((47 * 3600..=48 * 3600).contains(&ttl), "48 h, got {ttl} s");
    let token = outbox_token(&app, invitation.id).await;

    // The look-up shows the first name and the email, nothing else about the family.
    let offer = lookup(&app, &token).await.expect("lookup");
    assert_eq!((offer.first_name.as_str(), offer.email.as_str()), ("Petra", "petra@example.org"));

    assert_invalid(accept(&app, &token, "weak").await, &["password"]);
    let accepted = accept(&app, &token, PARENT_PASSWORD).await.expect("accept");
    assert_eq!(accepted.guardian_id, guardian);

    let tokens = login(&app, "petra@example.org", PARENT_PASSWORD).await.expect("the parent logs in");
    let me = auth_client(&app)
        .await
        .who_am_i(bearer(pb::WhoAmIRequest {}, &tokens.access_token))
        .await
        .expect("who am i")
        .into_inner();
    assert_eq!(me.account.as_ref().map(|a| a.id), Some(accepted.account_id));
    assert_eq!(me.roles, ["guardian"]);
    assert_eq!(me.guardian_id, Some(guardian));
    assert_eq!((me.person_id, me.staff_id), (None, None), "a parent is no person or staff record");

    let mut conn = app.db.conn().await;
    let linked: Option<i64> = users::guardians::table
        .find(guardian)
        .select(users::guardians::account_id)
        .first(&mut conn)
        .await
        .expect("guardian");
    assert_eq!(linked, Some(accepted.account_id));
    let accepted_at: Option<chrono::DateTime<chrono::Utc>> = guardian_invitations::table
        .find(invitation.id)
        .select(guardian_invitations::accepted_at)
        .first(&mut conn)
        .await
        .expect("invitation");
    assert!(accepted_at.is_some());
    assert_eq!(staff_rows(&app).await, staff_before, "no staff record");

    // The new account sees its child through the family service.
    let mut family = FamilyServiceClient::new(app.channel(Domain::Users).await);
    let children = family
        .list_my_children(bearer(upb::ListMyChildrenRequest {}, &tokens.access_token))
        .await
        .expect("my children")
        .into_inner()
        .children;
    assert_eq!(children.iter().map(|c| c.student_id).collect::<Vec<_>>(), [child]);

    // Spent: accepting or looking up again, and inviting a guardian who has an account.
    assert_precondition(&accept(&app, &token, PARENT_PASSWORD).await.expect_err("twice"), "INVITATION_USED");
    assert_precondition(&lookup(&app, &token).await.expect_err("used"), "INVITATION_USED");
    assert_precondition(&office.invite(guardian).await.expect_err("has an account"), "GUARDIAN_HAS_ACCOUNT");
    app.stop().await;
}

#[tokio::test]
async fn expired_guardian_invitations_are_refused_and_a_new_one_replaces_them() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let (_, guardian) = family(&app).await;
    let mut office = Office::new(&app).await;
    let old = office.invite(guardian).await.expect("invite");
    let old_token = outbox_token(&app, old.id).await;
    let mut conn = app.db.conn().await;
    diesel::update(guardian_invitations::table.find(old.id))
        .set((
            guardian_invitations::created_at.eq(chrono::Utc::now() - chrono::Duration::hours(50)),
            guardian_invitations::expires_at.eq(chrono::Utc::now() - chrono::Duration::hours(2)),
        ))
        .execute(&mut conn)
        .await
        .expect("backdate");
    assert_precondition(&lookup(&app, &old_token).await.expect_err("expired"), "INVITATION_EXPIRED");
    assert_precondition(&accept(&app, &old_token, PARENT_PASSWORD).await.expect_err("expired"), "INVITATION_EXPIRED");
    login(&app, "petra@example.org", PARENT_PASSWORD).await.expect_err("no account was created");

    // Inviting again replaces the pending invitation: the old token is gone.
    let new = office.invite(guardian).await.expect("invite again");
    let new_token = outbox_token(&app, new.id).await;
    assert_code(lookup(&app, &old_token).await, Code::NotFound);
    let pending: i64 = guardian_invitations::table
        .filter(guardian_invitations::guardian_id.eq(guardian))
        .count()
        .get_result(&mut conn)
        .await
        .expect("count");
    assert_eq!(pending, 1);
    accept(&app, &new_token, PARENT_PASSWORD).await.expect("accept the new one");
    login(&app, "petra@example.org", PARENT_PASSWORD).await.expect("login");
    app.stop().await;
}

#[tokio::test]
async fn guardian_invitations_need_auth_manage_a_guardian_with_an_email_and_a_free_address() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let (_, guardian) = family(&app).await;
    let mut office = Office::new(&app).await;
    assert_invalid(office.invite(0).await, &["guardian_id"]);
    assert_code(office.invite(999_999).await, Code::NotFound);

    let mut conn = app.db.conn().await;
    let no_email = fixtures::insert_returning_id(
        &mut conn,
        "INSERT INTO users.guardians (first_name, last_name) VALUES ('Olaf', 'Ohne') RETURNING id",
    )
    .await;
    assert_precondition(&office.invite(no_email).await.expect_err("no email"), "GUARDIAN_NO_EMAIL");

    // The guardian's address already signs in to another account (a teacher who is a parent).
    create_account(&app, "petra@example.org", PASSWORD, &["staff"], true).await;
    assert_code(office.invite(guardian).await, Code::AlreadyExists);

    // Staff hold no auth:manage.
    let staff = fixtures::staff(&mut conn, "Tina", "Team").await;
    let token = staff_token(&app, staff).await;
    let req = pb::CreateGuardianInvitationRequest { guardian_id: guardian };
    let denied =
        assert_code(office.client.create_guardian_invitation(bearer(req, &token)).await, Code::PermissionDenied);
    assert!(denied.message().contains("auth:manage"), "{denied:?}");

    assert_code(lookup(&app, "no-such-token").await, Code::NotFound);
    assert_invalid(lookup(&app, "").await, &["token"]);
    // A guardian account comes only from a guardian invitation (it must be linked).
    let req = pb::CreateInvitationRequest {
        email: "parent@example.org".into(),
        role_name: "guardian".into(),
        ..Default::default()
    };
    assert_invalid(office.client.create_invitation(bearer(req, &office.token)).await, &["role_name"]);
    app.stop().await;
}

/// The token of the newest outbox message of a staff-style invitation.
async fn invitation_token(app: &TestApp, invitation_id: i64) -> String {
    let mut conn = app.db.conn().await;
    let payload: serde_json::Value = outbox::table
        .filter(outbox::invitation_id.eq(invitation_id))
        .order(outbox::id.desc())
        .select(outbox::payload)
        .first(&mut conn)
        .await
        .expect("an outbox message");
    payload["token"].as_str().expect("payload.token").to_owned()
}

#[tokio::test]
async fn only_a_staff_invitation_creates_a_staff_record() {
    let app = TestApp::spawn(&[Domain::Auth, Domain::Active]).await;
    let mut office = Office::new(&app).await;
    let invite = |email: &str, role: &str| pb::CreateInvitationRequest {
        email: email.into(),
        role_name: role.into(),
        first_name: "Gina".into(),
        last_name: "Gast".into(),
        position: "Helferin".into(),
    };

    // A guest: the account and its role, no person, no staff record.
    let staff_before = staff_rows(&app).await;
    let guest = office
        .client
        .create_invitation(bearer(invite("gina@school.de", "guest"), &office.token))
        .await
        .expect("invite guest")
        .into_inner()
        .invitation
        .unwrap();
    let token = invitation_token(&app, guest.id).await;
    let req = pb::AcceptInvitationRequest { token, password: PARENT_PASSWORD.into(), ..Default::default() };
    let accepted = public(&app).await.accept_invitation(req).await.expect("accept guest").into_inner();
    assert_eq!((accepted.person_id, accepted.staff_id), (0, 0));
    assert_eq!(staff_rows(&app).await, staff_before, "no users.staff row");
    let mut conn = app.db.conn().await;
    let persons: i64 = users::persons::table
        .filter(users::persons::account_id.eq(accepted.account_id))
        .count()
        .get_result(&mut conn)
        .await
        .expect("count");
    assert_eq!(persons, 0);
    let tokens = login(&app, "gina@school.de", PARENT_PASSWORD).await.expect("the guest logs in");
    let me = auth_client(&app)
        .await
        .who_am_i(bearer(pb::WhoAmIRequest {}, &tokens.access_token))
        .await
        .expect("who am i")
        .into_inner();
    assert_eq!((me.roles.as_slice(), me.staff_id), (&["guest".to_owned()][..], None));

    // Staff-only calls stay closed: by permission with the guest's own token, and by the
    // missing staff record even with the permission granted.
    let join = apb::JoinSessionRequest { session_id: 1, role: apb::SupervisorRole::Supervisor as i32 };
    let mut active = ActiveServiceClient::new(app.channel(Domain::Active).await);
    assert_code(active.join_session(bearer(join, &tokens.access_token)).await, Code::PermissionDenied);
    let mut perms = role_permissions(&app, "guest").await;
    perms.push("groups:update".into());
    let granted = mint_token(&app, &accepted.account_id.to_string(), &["guest"], &perms).await;
    let denied = assert_code(active.join_session(bearer(join, &granted)).await, Code::PermissionDenied);
    assert!(denied.message().contains("no staff record"), "{denied:?}");

    // A staff invitation still creates the person and staff record.
    let staff = office
        .client
        .create_invitation(bearer(invite("sam@school.de", "staff"), &office.token))
        .await
        .expect("invite staff")
        .into_inner()
        .invitation
        .unwrap();
    let token = invitation_token(&app, staff.id).await;
    let req = pb::AcceptInvitationRequest { token, password: PARENT_PASSWORD.into(), ..Default::default() };
    let accepted = public(&app).await.accept_invitation(req).await.expect("accept staff").into_inner();
    assert!(accepted.person_id > 0 && accepted.staff_id > 0);
    assert_eq!(staff_rows(&app).await, staff_before + 1);
    app.stop().await;
}
