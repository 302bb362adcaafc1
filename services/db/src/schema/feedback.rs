//! `feedback` schema: student feedback entries (from readers or the web) and staff comments on them.

diesel::table! {
    feedback.entries (id) {
        id -> Int8,
        student_id -> Int8,
        value -> Text,
        day -> Date,
        time -> Time,
        is_mensa_feedback -> Bool,
        device_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    feedback.comments (id) {
        id -> Int8,
        entry_id -> Int8,
        author_account_id -> Nullable<Int8>,
        body -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(comments -> entries (entry_id));
