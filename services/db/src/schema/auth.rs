//! `auth` schema: accounts, refresh tokens, roles, permissions and grants, password reset, invitations, JWT signing keys, service clients, the message outbox.

diesel::table! {
    auth.accounts (id) {
        id -> Int8,
        email -> Text,
        username -> Nullable<Text>,
        active -> Bool,
        password_hash -> Nullable<Text>,
        #[max_length = 255]
        pin_hash -> Nullable<Varchar>,
        pin_attempts -> Int4,
        pin_locked_until -> Nullable<Timestamptz>,
        failed_login_attempts -> Int4,
        login_locked_until -> Nullable<Timestamptz>,
        last_login -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        access_changed_at -> Timestamptz,
    }
}

diesel::table! {
    auth.tokens (id) {
        id -> Int8,
        account_id -> Int8,
        token_hash -> Bytea,
        family_id -> Uuid,
        generation -> Int4,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
        mobile -> Bool,
        identifier -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    auth.roles (id) {
        id -> Int8,
        name -> Text,
        description -> Nullable<Text>,
        is_system -> Bool,
        metadata -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    auth.permissions (id) {
        id -> Int8,
        name -> Text,
        description -> Nullable<Text>,
        resource -> Text,
        action -> Text,
        is_system -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    auth.role_permissions (role_id, permission_id) {
        role_id -> Int8,
        permission_id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    auth.account_roles (account_id, role_id) {
        account_id -> Int8,
        role_id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    auth.account_permissions (account_id, permission_id) {
        account_id -> Int8,
        permission_id -> Int8,
        granted -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    auth.password_reset_tokens (id) {
        id -> Int8,
        account_id -> Int8,
        token_hash -> Bytea,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        email_sent_at -> Nullable<Timestamptz>,
        email_error -> Nullable<Text>,
        email_retry_count -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    auth.password_reset_rate_limits (email_hash) {
        email_hash -> Bytea,
        attempts -> Int4,
        window_start -> Timestamptz,
    }
}

diesel::table! {
    auth.invitations (id) {
        id -> Int8,
        email -> Text,
        token_hash -> Bytea,
        role_id -> Int8,
        created_by -> Nullable<Int8>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        position -> Nullable<Text>,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        email_sent_at -> Nullable<Timestamptz>,
        email_error -> Nullable<Text>,
        email_retry_count -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    auth.signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        public_key -> Bytea,
        private_key_encrypted -> Nullable<Bytea>,
        not_before -> Timestamptz,
        retire_after -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    auth.service_clients (id) {
        id -> Int8,
        client_id -> Text,
        secret_hash -> Text,
        permissions -> Array<Text>,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    auth.guardian_invitations (id) {
        id -> Int8,
        token_hash -> Bytea,
        guardian_id -> Int8,
        created_by -> Nullable<Int8>,
        expires_at -> Timestamptz,
        accepted_at -> Nullable<Timestamptz>,
        email_sent_at -> Nullable<Timestamptz>,
        email_error -> Nullable<Text>,
        email_retry_count -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    auth.outbox (id) {
        id -> Int8,
        kind -> Text,
        account_id -> Nullable<Int8>,
        invitation_id -> Nullable<Int8>,
        payload -> Jsonb,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        guardian_invitation_id -> Nullable<Int8>,
    }
}

diesel::joinable!(tokens -> accounts (account_id));
diesel::joinable!(role_permissions -> roles (role_id));
diesel::joinable!(role_permissions -> permissions (permission_id));
diesel::joinable!(account_roles -> accounts (account_id));
diesel::joinable!(account_roles -> roles (role_id));
diesel::joinable!(account_permissions -> accounts (account_id));
diesel::joinable!(account_permissions -> permissions (permission_id));
diesel::joinable!(password_reset_tokens -> accounts (account_id));
diesel::joinable!(invitations -> roles (role_id));
diesel::joinable!(invitations -> accounts (created_by));
diesel::joinable!(guardian_invitations -> accounts (created_by));
diesel::joinable!(outbox -> accounts (account_id));
diesel::joinable!(outbox -> invitations (invitation_id));
diesel::joinable!(outbox -> guardian_invitations (guardian_invitation_id));
