//! `audit` schema (append-only, no foreign keys): data deletions, auth events, data imports,
//! data exports and data changes (corrections).

diesel::table! {
    audit.data_deletions (id) {
        id -> Int8,
        entity_type -> Text,
        entity_id -> Int8,
        deletion_type -> Text,
        records_deleted -> Int4,
        reason -> Nullable<Text>,
        deleted_by -> Text,
        deleted_at -> Timestamptz,
        metadata -> Jsonb,
    }
}

diesel::table! {
    audit.auth_events (id) {
        id -> Int8,
        account_id -> Nullable<Int8>,
        email_hash -> Nullable<Bytea>,
        #[max_length = 50]
        event_type -> Varchar,
        success -> Bool,
        ip_address -> Nullable<Inet>,
        user_agent -> Nullable<Text>,
        error_message -> Nullable<Text>,
        metadata -> Jsonb,
        created_at -> Timestamptz,
        #[max_length = 64]
        client_id -> Nullable<Varchar>,
    }
}

diesel::table! {
    audit.data_exports (id) {
        id -> Int8,
        subject_type -> Text,
        subject_id -> Int8,
        exported_by -> Text,
        exported_at -> Timestamptz,
        sections -> Jsonb,
    }
}

diesel::table! {
    audit.data_imports (id) {
        id -> Int8,
        entity_type -> Text,
        filename -> Text,
        total_rows -> Int4,
        created_count -> Int4,
        updated_count -> Int4,
        skipped_count -> Int4,
        error_count -> Int4,
        warning_count -> Int4,
        dry_run -> Bool,
        imported_by -> Nullable<Int8>,
        started_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        metadata -> Jsonb,
        created_at -> Timestamptz,
        file_sha256 -> Nullable<Bytea>,
    }
}

diesel::table! {
    audit.data_changes (id) {
        id -> Int8,
        entity_type -> Text,
        entity_id -> Int8,
        student_id -> Int8,
        action -> Text,
        old_values -> Jsonb,
        new_values -> Jsonb,
        reason -> Text,
        changed_by -> Text,
        changed_at -> Timestamptz,
    }
}
