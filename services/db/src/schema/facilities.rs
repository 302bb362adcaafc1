//! `facilities` schema: buildings, locations (areas inside a building) and rooms.

diesel::table! {
    facilities.buildings (id) {
        id -> Int8,
        name -> Text,
        address -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    facilities.locations (id) {
        id -> Int8,
        building_id -> Nullable<Int8>,
        name -> Text,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    facilities.rooms (id) {
        id -> Int8,
        name -> Text,
        building_id -> Nullable<Int8>,
        location_id -> Nullable<Int8>,
        floor -> Nullable<Int4>,
        capacity -> Nullable<Int4>,
        category -> Nullable<Text>,
        color -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(locations -> buildings (building_id));
diesel::joinable!(rooms -> buildings (building_id));
diesel::joinable!(rooms -> locations (location_id));
