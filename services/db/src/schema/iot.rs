//! `iot` schema: RFID reader devices (no key material) and their event log.

diesel::table! {
    iot.devices (id) {
        id -> Int8,
        device_id -> Text,
        device_type -> Text,
        name -> Nullable<Text>,
        status -> Text,
        room_id -> Nullable<Int8>,
        kind -> Text,
        key_version -> Int4,
        key_rotated_at -> Nullable<Timestamptz>,
        last_seen -> Nullable<Timestamptz>,
        registered_by_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        offline_since -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    iot.device_logs (id) {
        id -> Int8,
        device_id -> Int8,
        event -> Text,
        detail -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(device_logs -> devices (device_id));
