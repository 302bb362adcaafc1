//! `schedule` schema: timeframes, dateframes, recurrence patterns, class schedules, student pickup schedules, exceptions and notes.

diesel::table! {
    schedule.timeframes (id) {
        id -> Int8,
        start_time -> Timestamptz,
        end_time -> Nullable<Timestamptz>,
        is_active -> Bool,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    schedule.dateframes (id) {
        id -> Int8,
        start_date -> Timestamptz,
        end_date -> Timestamptz,
        name -> Nullable<Text>,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    schedule.recurrence_patterns (id) {
        id -> Int8,
        frequency -> Text,
        interval_count -> Int4,
        weekdays -> Nullable<Array<Text>>,
        month_days -> Nullable<Array<Int4>>,
        end_date -> Nullable<Timestamptz>,
        count -> Nullable<Int4>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    schedule.class_schedules (id) {
        id -> Int8,
        group_id -> Nullable<Int8>,
        weekday -> Int2,
        start_time -> Time,
        end_time -> Time,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        activity_id -> Nullable<Int8>,
        room_id -> Nullable<Int8>,
        timeframe_id -> Nullable<Int8>,
    }
}

diesel::table! {
    schedule.student_pickup_schedules (id) {
        id -> Int8,
        student_id -> Int8,
        weekday -> Int2,
        pickup_time -> Time,
        #[max_length = 500]
        notes -> Nullable<Varchar>,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    schedule.student_pickup_exceptions (id) {
        id -> Int8,
        student_id -> Int8,
        exception_date -> Date,
        pickup_time -> Nullable<Time>,
        #[max_length = 255]
        reason -> Nullable<Varchar>,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    schedule.student_pickup_notes (id) {
        id -> Int8,
        student_id -> Int8,
        note_date -> Date,
        #[max_length = 500]
        content -> Varchar,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(class_schedules -> timeframes (timeframe_id));
