//! `active` schema: running room sessions, visits, session supervisors, combined sessions, daily attendance, scheduled check-outs, scan receipts.

diesel::table! {
    active.scan_receipts (id) {
        id -> Int8,
        device_id -> Int8,
        #[max_length = 64]
        scan_id -> Varchar,
        student_id -> Nullable<Int8>,
        scanned_at -> Nullable<Timestamptz>,
        outcome -> Text,
        code -> Text,
        result -> Jsonb,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    active.groups (id) {
        id -> Int8,
        room_id -> Int8,
        activity_id -> Nullable<Int8>,
        education_group_id -> Nullable<Int8>,
        device_id -> Nullable<Int8>,
        start_time -> Timestamptz,
        end_time -> Nullable<Timestamptz>,
        last_activity -> Timestamptz,
        timeout_minutes -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    active.visits (id) {
        id -> Int8,
        student_id -> Int8,
        active_group_id -> Int8,
        entry_time -> Timestamptz,
        exit_time -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// One row per open visit, kept by the trigger `track_open_visits` on `active.visits`;
    /// its primary key is the "one open visit per pupil" guarantee (docs/database.md
    /// "Partitioning"). The database primary key of the partitioned `active.visits` is
    /// `(id, entry_time)`; `table!` keeps `id`, which alone is unique (one sequence).
    active.open_visits (student_id) {
        student_id -> Int8,
        visit_id -> Int8,
        entry_time -> Timestamptz,
    }
}

diesel::table! {
    active.group_supervisors (id) {
        id -> Int8,
        active_group_id -> Int8,
        staff_id -> Int8,
        #[max_length = 50]
        role -> Varchar,
        start_date -> Date,
        end_date -> Nullable<Date>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    active.combined_groups (id) {
        id -> Int8,
        start_time -> Timestamptz,
        end_time -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        #[max_length = 100]
        name -> Varchar,
        room_id -> Int8,
        notes -> Nullable<Text>,
        created_by -> Nullable<Int8>,
    }
}

diesel::table! {
    active.group_mappings (id) {
        id -> Int8,
        combined_group_id -> Int8,
        active_group_id -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    active.attendance (id) {
        id -> Int8,
        student_id -> Int8,
        date -> Date,
        check_in_time -> Timestamptz,
        check_out_time -> Nullable<Timestamptz>,
        checked_in_by -> Nullable<Int8>,
        checked_out_by -> Nullable<Int8>,
        check_in_device_id -> Nullable<Int8>,
        check_out_device_id -> Nullable<Int8>,
        check_out_destination -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        closed_by_system -> Bool,
    }
}

diesel::table! {
    active.scheduled_checkouts (id) {
        id -> Int8,
        student_id -> Int8,
        scheduled_by -> Nullable<Int8>,
        scheduled_for -> Timestamptz,
        #[max_length = 255]
        reason -> Nullable<Varchar>,
        #[max_length = 50]
        status -> Varchar,
        executed_at -> Nullable<Timestamptz>,
        cancelled_at -> Nullable<Timestamptz>,
        cancelled_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    active.presence_events (id) {
        id -> Int8,
        tx_id -> Int8,
        occurred_at -> Timestamptz,
        kind -> Text,
        student_id -> Nullable<Int8>,
        session_id -> Nullable<Int8>,
        room_id -> Nullable<Int8>,
        from_room_id -> Nullable<Int8>,
    }
}

diesel::table! {
    active.reader_clock_evidence (id) {
        id -> Int8,
        device_id -> Int8,
        received_at -> Timestamptz,
        lag_seconds -> Float8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    active.presence_log_purge (id) {
        id -> Int2,
        tx_id -> Int8,
        event_id -> Int8,
        purged_at -> Nullable<Timestamptz>,
        deleted -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(presence_events -> groups (session_id));
diesel::joinable!(visits -> groups (active_group_id));
diesel::joinable!(group_supervisors -> groups (active_group_id));
diesel::joinable!(group_mappings -> combined_groups (combined_group_id));
diesel::joinable!(group_mappings -> groups (active_group_id));
