//! `config` schema: typed key/value settings and feature flags.

diesel::table! {
    config.settings (id) {
        id -> Int8,
        key -> Text,
        value -> Text,
        category -> Text,
        description -> Nullable<Text>,
        requires_restart -> Bool,
        requires_db_reset -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    config.feature_flags (key) {
        key -> Text,
        enabled -> Bool,
        description -> Nullable<Text>,
        updated_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        rollout_percentage -> Nullable<Int4>,
        roles -> Array<Text>,
    }
}

diesel::table! {
    config.job_runs (id) {
        id -> Int8,
        job -> Text,
        trigger -> Text,
        dry_run -> Bool,
        outcome -> Text,
        started_at -> Timestamptz,
        finished_at -> Timestamptz,
        acted_for -> Timestamptz,
        counts -> Jsonb,
        error -> Nullable<Text>,
    }
}
