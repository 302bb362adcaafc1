//! Domain values → proto messages.

use chrono::{DateTime, Utc};
use phoenix_common::time::{to_timestamp, to_timestamp_opt};
use phoenix_proto::auth::v1 as pb;

use crate::repo::{
    AccountRow, GuardianInvitationRow, InvitationRow, InvitedGuardian, PermissionRow, RoleRow, SigningKeyRow,
};
use crate::tokens::{AccessToken, base64url};

/// The token pair of a login or refresh.
pub fn token_pair(access: AccessToken, refresh: String, refresh_expires_at: DateTime<Utc>) -> pb::TokenPair {
    pb::TokenPair {
        access_token: access.token,
        access_token_expire_time: Some(to_timestamp(access.expires_at)),
        refresh_token: refresh,
        refresh_token_expire_time: Some(to_timestamp(refresh_expires_at)),
        token_type: "Bearer".into(),
    }
}

/// An account with its role names.
pub fn account(a: &AccountRow, roles: Vec<String>) -> pb::Account {
    pb::Account {
        id: a.id,
        email: a.email.clone(),
        username: a.username.clone().unwrap_or_default(),
        active: a.active,
        last_login_time: to_timestamp_opt(a.last_login),
        create_time: Some(to_timestamp(a.created_at)),
        roles,
        login_locked_until_time: a.login_locked_until.filter(|t| *t > Utc::now()).map(to_timestamp),
    }
}

/// A public signing key.
pub fn signing_key(k: SigningKeyRow) -> pb::SigningKey {
    pb::SigningKey {
        public_key_x: base64url(&k.public_key),
        kid: k.kid,
        algorithm: match k.algorithm.as_str() {
            "EdDSA" => pb::SigningAlgorithm::Eddsa,
            _ => pb::SigningAlgorithm::Unspecified,
        } as i32,
        public_key: k.public_key,
        not_before_time: Some(to_timestamp(k.not_before)),
        retire_time: to_timestamp_opt(k.retire_after),
    }
}

/// A role with its permission names.
pub fn role(r: &RoleRow, permissions: Vec<String>) -> pb::Role {
    pb::Role {
        id: r.id,
        name: r.name.clone(),
        description: r.description.clone().unwrap_or_default(),
        system: r.is_system,
        permissions,
        create_time: Some(to_timestamp(r.created_at)),
    }
}

/// A catalogue permission.
pub fn permission(p: PermissionRow) -> pb::Permission {
    pb::Permission {
        id: p.id,
        name: p.name,
        resource: p.resource,
        action: p.action,
        description: p.description.unwrap_or_default(),
        system: p.is_system,
    }
}

/// An invitation (never its token) with its role's name.
pub fn invitation(i: &InvitationRow, role_name: String) -> pb::Invitation {
    pb::Invitation {
        id: i.id,
        email: i.email.clone(),
        role_name,
        first_name: i.first_name.clone().unwrap_or_default(),
        last_name: i.last_name.clone().unwrap_or_default(),
        position: i.position.clone().unwrap_or_default(),
        expire_time: Some(to_timestamp(i.expires_at)),
        create_time: Some(to_timestamp(i.created_at)),
    }
}

/// A guardian invitation (never its token).
pub fn guardian_invitation(i: &GuardianInvitationRow) -> pb::GuardianInvitation {
    pb::GuardianInvitation {
        id: i.id,
        guardian_id: i.guardian_id,
        expire_time: Some(to_timestamp(i.expires_at)),
        create_time: Some(to_timestamp(i.created_at)),
    }
}

/// What the look-up of a guardian invitation shows: the guardian's first name and email,
/// nothing else about the family.
pub fn guardian_invitation_lookup(
    i: &GuardianInvitationRow,
    g: InvitedGuardian,
) -> pb::LookupGuardianInvitationResponse {
    pb::LookupGuardianInvitationResponse {
        first_name: g.first_name,
        email: g.email.unwrap_or_default(),
        expire_time: Some(to_timestamp(i.expires_at)),
    }
}
