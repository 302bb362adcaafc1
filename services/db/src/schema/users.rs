//! `users` schema: RFID cards, persons, staff, teachers, students, guardians (+ phone numbers and student links), privacy consents.

diesel::table! {
    users.rfid_cards (id) {
        id -> Text,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users.persons (id) {
        id -> Int8,
        first_name -> Text,
        last_name -> Text,
        birthday -> Nullable<Date>,
        tag_id -> Nullable<Text>,
        account_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users.staff (id) {
        id -> Int8,
        person_id -> Int8,
        staff_notes -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users.teachers (id) {
        id -> Int8,
        staff_id -> Int8,
        specialization -> Nullable<Text>,
        role -> Nullable<Text>,
        qualifications -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users.guardians (id) {
        id -> Int8,
        first_name -> Text,
        last_name -> Text,
        email -> Nullable<Text>,
        address_street -> Nullable<Text>,
        address_city -> Nullable<Text>,
        address_postal_code -> Nullable<Text>,
        account_id -> Nullable<Int8>,
        preferred_contact_method -> Text,
        language_preference -> Text,
        occupation -> Nullable<Text>,
        employer -> Nullable<Text>,
        notes -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users.guardian_phone_numbers (id) {
        id -> Int8,
        guardian_id -> Int8,
        phone_number -> Text,
        phone_type -> Text,
        label -> Nullable<Text>,
        is_primary -> Bool,
        priority -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users.students (id) {
        id -> Int8,
        person_id -> Int8,
        school_class -> Text,
        group_id -> Nullable<Int8>,
        extra_info -> Nullable<Text>,
        supervisor_notes -> Nullable<Text>,
        health_info -> Nullable<Text>,
        pickup_status -> Nullable<Text>,
        bus -> Bool,
        sick -> Bool,
        sick_since -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deactivated_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    users.student_guardians (id) {
        id -> Int8,
        student_id -> Int8,
        guardian_id -> Int8,
        relationship_type -> Text,
        is_primary -> Bool,
        is_emergency_contact -> Bool,
        can_pickup -> Bool,
        pickup_notes -> Nullable<Text>,
        emergency_priority -> Int4,
        permissions -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users.privacy_consents (id) {
        id -> Int8,
        student_id -> Int8,
        policy_version -> Text,
        accepted -> Bool,
        accepted_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        duration_days -> Nullable<Int4>,
        renewal_required -> Bool,
        data_retention_days -> Int4,
        details -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(persons -> rfid_cards (tag_id));
diesel::joinable!(staff -> persons (person_id));
diesel::joinable!(teachers -> staff (staff_id));
diesel::joinable!(guardian_phone_numbers -> guardians (guardian_id));
diesel::joinable!(students -> persons (person_id));
diesel::joinable!(student_guardians -> students (student_id));
diesel::joinable!(student_guardians -> guardians (guardian_id));
diesel::joinable!(privacy_consents -> students (student_id));
