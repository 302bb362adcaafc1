//! `education` schema: education (OGS) groups, their teachers, substitutions and same-day transfers.

diesel::table! {
    education.groups (id) {
        id -> Int8,
        name -> Text,
        room_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    education.group_teacher (id) {
        id -> Int8,
        group_id -> Int8,
        teacher_id -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    education.group_substitution (id) {
        id -> Int8,
        group_id -> Int8,
        regular_staff_id -> Nullable<Int8>,
        substitute_staff_id -> Int8,
        start_date -> Date,
        end_date -> Date,
        reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        is_transfer -> Bool,
    }
}

diesel::joinable!(group_teacher -> groups (group_id));
diesel::joinable!(group_substitution -> groups (group_id));
