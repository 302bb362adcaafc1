//! `activities` schema: categories, activities, weekly activity schedules, planned supervisors, enrollments.

diesel::table! {
    activities.categories (id) {
        id -> Int8,
        name -> Text,
        description -> Nullable<Text>,
        color -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    activities.activities (id) {
        id -> Int8,
        name -> Text,
        max_participants -> Int4,
        is_open -> Bool,
        category_id -> Int8,
        planned_room_id -> Nullable<Int8>,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    activities.schedules (id) {
        id -> Int8,
        activity_id -> Int8,
        weekday -> Int2,
        timeframe_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    activities.supervisors (id) {
        id -> Int8,
        activity_id -> Int8,
        staff_id -> Int8,
        is_primary -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    activities.enrollments (id) {
        id -> Int8,
        student_id -> Int8,
        activity_id -> Int8,
        enrollment_date -> Date,
        attendance_status -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(activities -> categories (category_id));
diesel::joinable!(schedules -> activities (activity_id));
diesel::joinable!(supervisors -> activities (activity_id));
diesel::joinable!(enrollments -> activities (activity_id));
