//! Domain values → proto messages.

use chrono::{DateTime, Utc};
use phoenix_proto::auth::v1 as pb;

use crate::repo::{AccountRow, InvitationRow, PermissionRow, RoleRow, SigningKeyRow};
use crate::tokens::{AccessToken, base64url};

/// A `google.protobuf.Timestamp`.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// The token pair of a login or refresh.
pub fn token_pair(access: AccessToken, refresh: String, refresh_expires_at: DateTime<Utc>) -> pb::TokenPair {
    pb::TokenPair {
        access_token: access.token,
        access_token_expire_time: Some(timestamp(access.expires_at)),
        refresh_token: refresh,
        refresh_token_expire_time: Some(timestamp(refresh_expires_at)),
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
        last_login_time: a.last_login.map(timestamp),
        create_time: Some(timestamp(a.created_at)),
        roles,
        login_locked_until_time: a.login_locked_until.filter(|t| *t > Utc::now()).map(timestamp),
    }
}

impl From<SigningKeyRow> for pb::SigningKey {
    fn from(k: SigningKeyRow) -> Self {
        pb::SigningKey {
            public_key_x: base64url(&k.public_key),
            kid: k.kid,
            algorithm: match k.algorithm.as_str() {
                "EdDSA" => pb::SigningAlgorithm::Eddsa,
                _ => pb::SigningAlgorithm::Unspecified,
            } as i32,
            public_key: k.public_key,
            not_before_time: Some(timestamp(k.not_before)),
            retire_time: k.retire_after.map(timestamp),
        }
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
        create_time: Some(timestamp(r.created_at)),
    }
}

impl From<PermissionRow> for pb::Permission {
    fn from(p: PermissionRow) -> Self {
        pb::Permission {
            id: p.id,
            name: p.name,
            resource: p.resource,
            action: p.action,
            description: p.description.unwrap_or_default(),
            system: p.is_system,
        }
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
        expire_time: Some(timestamp(i.expires_at)),
        create_time: Some(timestamp(i.created_at)),
    }
}
