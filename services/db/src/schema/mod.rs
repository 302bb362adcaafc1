//! Hand-written diesel `table!` definitions of every Phoenix table, one module per PostgreSQL schema
//! (`auth.accounts` is `schema::auth::accounts`), in `diesel print-schema` style; a test checks them
//! against the migrated database.

pub mod active;
pub mod activities;
pub mod audit;
pub mod auth;
pub mod config;
pub mod education;
pub mod facilities;
pub mod feedback;
pub mod iot;
pub mod schedule;
pub mod users;

// Cross-schema foreign keys usable as implicit joins (single-column FK to the parent's primary key;
// pairs joined by more than one FK, e.g. attendance.checked_in_by/checked_out_by → staff, are left
// out, as print-schema does: join those with an explicit `.on(…)`).
diesel::joinable!(auth::guardian_invitations -> users::guardians (guardian_id));
diesel::joinable!(users::persons -> auth::accounts (account_id));
diesel::joinable!(users::guardians -> auth::accounts (account_id));
diesel::joinable!(users::students -> education::groups (group_id));
diesel::joinable!(education::groups -> facilities::rooms (room_id));
diesel::joinable!(education::group_teacher -> users::teachers (teacher_id));
diesel::joinable!(schedule::class_schedules -> education::groups (group_id));
diesel::joinable!(schedule::class_schedules -> activities::activities (activity_id));
diesel::joinable!(schedule::class_schedules -> facilities::rooms (room_id));
diesel::joinable!(schedule::student_pickup_schedules -> users::students (student_id));
diesel::joinable!(schedule::student_pickup_schedules -> users::staff (created_by));
diesel::joinable!(schedule::student_pickup_exceptions -> users::students (student_id));
diesel::joinable!(schedule::student_pickup_exceptions -> users::staff (created_by));
diesel::joinable!(schedule::student_pickup_notes -> users::students (student_id));
diesel::joinable!(schedule::student_pickup_notes -> users::staff (created_by));
diesel::joinable!(activities::activities -> facilities::rooms (planned_room_id));
diesel::joinable!(activities::activities -> users::staff (created_by));
diesel::joinable!(activities::schedules -> schedule::timeframes (timeframe_id));
diesel::joinable!(activities::supervisors -> users::staff (staff_id));
diesel::joinable!(activities::enrollments -> users::students (student_id));
diesel::joinable!(iot::devices -> facilities::rooms (room_id));
diesel::joinable!(iot::devices -> users::persons (registered_by_id));
diesel::joinable!(active::scan_receipts -> iot::devices (device_id));
diesel::joinable!(active::reader_clock_evidence -> iot::devices (device_id));
diesel::joinable!(active::scan_receipts -> users::students (student_id));
diesel::joinable!(active::groups -> facilities::rooms (room_id));
diesel::joinable!(active::combined_groups -> facilities::rooms (room_id));
diesel::joinable!(active::groups -> activities::activities (activity_id));
diesel::joinable!(active::groups -> education::groups (education_group_id));
diesel::joinable!(active::groups -> iot::devices (device_id));
diesel::joinable!(active::visits -> users::students (student_id));
diesel::joinable!(active::group_supervisors -> users::staff (staff_id));
diesel::joinable!(active::attendance -> users::students (student_id));
diesel::joinable!(active::scheduled_checkouts -> users::students (student_id));
diesel::joinable!(active::presence_events -> users::students (student_id));
diesel::joinable!(feedback::entries -> users::students (student_id));
diesel::joinable!(feedback::entries -> iot::devices (device_id));
diesel::joinable!(feedback::comments -> auth::accounts (author_account_id));
diesel::joinable!(config::feature_flags -> auth::accounts (updated_by));

// diesel 2.3's `allow_tables_to_appear_in_same_query!` accepts plain identifiers only, not paths such
// as `auth::accounts`, so every table is imported here as `<schema>_<table>` for the one invocation
// below over all tables (no schema module has its own, which would duplicate impls).
use self::active::{
    attendance as active_attendance, combined_groups as active_combined_groups,
    group_mappings as active_group_mappings, group_supervisors as active_group_supervisors, groups as active_groups,
    presence_events as active_presence_events, presence_log_purge as active_presence_log_purge,
    reader_clock_evidence as active_reader_clock_evidence, scan_receipts as active_scan_receipts,
    scheduled_checkouts as active_scheduled_checkouts, visits as active_visits,
};
use self::activities::{
    activities as activities_activities, categories as activities_categories, enrollments as activities_enrollments,
    schedules as activities_schedules, supervisors as activities_supervisors,
};
use self::audit::{
    auth_events as audit_auth_events, data_changes as audit_data_changes, data_deletions as audit_data_deletions,
    data_exports as audit_data_exports, data_imports as audit_data_imports,
};
use self::auth::{
    account_permissions as auth_account_permissions, account_roles as auth_account_roles, accounts as auth_accounts,
    guardian_invitations as auth_guardian_invitations, invitations as auth_invitations, outbox as auth_outbox,
    password_reset_rate_limits as auth_password_reset_rate_limits, password_reset_tokens as auth_password_reset_tokens,
    permissions as auth_permissions, role_permissions as auth_role_permissions, roles as auth_roles,
    service_clients as auth_service_clients, signing_keys as auth_signing_keys, tokens as auth_tokens,
};
use self::config::{feature_flags as config_feature_flags, settings as config_settings};
use self::education::{
    group_substitution as education_group_substitution, group_teacher as education_group_teacher,
    groups as education_groups,
};
use self::facilities::{
    buildings as facilities_buildings, locations as facilities_locations, rooms as facilities_rooms,
};
use self::feedback::{comments as feedback_comments, entries as feedback_entries};
use self::iot::{device_logs as iot_device_logs, devices as iot_devices};
use self::schedule::{
    class_schedules as schedule_class_schedules, dateframes as schedule_dateframes,
    recurrence_patterns as schedule_recurrence_patterns,
    student_pickup_exceptions as schedule_student_pickup_exceptions,
    student_pickup_notes as schedule_student_pickup_notes,
    student_pickup_schedules as schedule_student_pickup_schedules, timeframes as schedule_timeframes,
};
use self::users::{
    guardian_phone_numbers as users_guardian_phone_numbers, guardians as users_guardians, persons as users_persons,
    privacy_consents as users_privacy_consents, rfid_cards as users_rfid_cards, staff as users_staff,
    student_guardians as users_student_guardians, students as users_students, teachers as users_teachers,
};

diesel::allow_tables_to_appear_in_same_query!(
    auth_accounts,
    auth_tokens,
    auth_roles,
    auth_permissions,
    auth_role_permissions,
    auth_account_roles,
    auth_account_permissions,
    auth_password_reset_tokens,
    auth_password_reset_rate_limits,
    auth_invitations,
    auth_outbox,
    auth_signing_keys,
    auth_service_clients,
    auth_guardian_invitations,
    users_rfid_cards,
    users_persons,
    users_staff,
    users_teachers,
    users_guardians,
    users_guardian_phone_numbers,
    users_students,
    users_student_guardians,
    users_privacy_consents,
    education_groups,
    education_group_teacher,
    education_group_substitution,
    facilities_buildings,
    facilities_locations,
    facilities_rooms,
    activities_categories,
    activities_activities,
    activities_schedules,
    activities_supervisors,
    activities_enrollments,
    active_presence_events,
    active_presence_log_purge,
    active_reader_clock_evidence,
    active_scan_receipts,
    active_groups,
    active_visits,
    active_group_supervisors,
    active_combined_groups,
    active_group_mappings,
    active_attendance,
    active_scheduled_checkouts,
    schedule_timeframes,
    schedule_dateframes,
    schedule_recurrence_patterns,
    schedule_class_schedules,
    schedule_student_pickup_schedules,
    schedule_student_pickup_exceptions,
    schedule_student_pickup_notes,
    iot_devices,
    iot_device_logs,
    feedback_entries,
    feedback_comments,
    config_settings,
    config_feature_flags,
    audit_data_deletions,
    audit_data_exports,
    audit_auth_events,
    audit_data_imports,
    audit_data_changes,
);
