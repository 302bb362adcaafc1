-- One PostgreSQL role per domain service (issue 15; docs/database.md has the matrix).
--
-- Roles are cluster-wide, grants are per database: the roles are created when missing
-- (idempotent; a concurrent migration of another database may race us, so a duplicate is
-- ignored), the grants are (re)applied every time. They are NOLOGIN: a process reaches them
-- by `SET ROLE` from a login that is a member, or an operator gives a role LOGIN and a
-- password (docs/database.md, "Production"). The migration role (the one running
-- `phoenix migrate`) owns every object and keeps all rights; it needs CREATEROLE.
--
-- Rules: a domain role has USAGE + DML on its own schema, SELECT on the schemas it reads
-- through joins, column-level SELECT on the few `auth` columns token verification reads,
-- INSERT only on the `audit` tables it writes, and exactly the documented cross-schema
-- writes. Row locks (FOR UPDATE / NO KEY UPDATE / KEY SHARE) need UPDATE on one column:
-- those are granted on `updated_at` only and marked "lock". Every id column is an identity
-- column, so inserting into another schema needs no sequence grant.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['phoenix_service', 'phoenix_auth', 'phoenix_users', 'phoenix_education',
        'phoenix_facilities', 'phoenix_activities', 'phoenix_active', 'phoenix_schedule', 'phoenix_iot',
        'phoenix_feedback', 'phoenix_config', 'phoenix_audit', 'phoenix_gateway']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$$;

-- What every domain process runs through phoenix_common: token verification (auth.accounts,
-- auth.tokens, auth.service_clients, auth.signing_keys: only the columns it reads), the
-- settings/flags cache, the job ledger, and the caller/access rules (users, education).
GRANT USAGE ON SCHEMA auth, users, education, config, meta TO phoenix_service;
GRANT SELECT (id, active, access_changed_at) ON auth.accounts TO phoenix_service;
GRANT SELECT (account_id, family_id, revoked_at) ON auth.tokens TO phoenix_service;
GRANT SELECT (client_id, active) ON auth.service_clients TO phoenix_service;
GRANT SELECT (kid, algorithm, public_key, not_before, retire_after) ON auth.signing_keys TO phoenix_service;
GRANT SELECT ON config.settings, config.feature_flags TO phoenix_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON config.job_runs TO phoenix_service;
GRANT SELECT ON users.persons, users.staff, users.teachers, users.students, users.guardians,
    users.student_guardians TO phoenix_service;
GRANT SELECT ON education.groups, education.group_teacher, education.group_substitution TO phoenix_service;

DO $$
DECLARE
    d text;
BEGIN
    FOREACH d IN ARRAY ARRAY['auth', 'users', 'education', 'facilities', 'activities', 'active',
        'schedule', 'iot', 'feedback', 'config', 'audit']
    LOOP
        EXECUTE format('GRANT phoenix_service TO %I', 'phoenix_' || d);
        -- Its own schema: everything but DDL.
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', d, 'phoenix_' || d);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', d, 'phoenix_' || d);
        EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I', d, 'phoenix_' || d);
        -- Tables and sequences later migrations create follow (objects of the migration role).
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I',
            d, 'phoenix_' || d);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I',
            d, 'phoenix_' || d);
    END LOOP;
END
$$;

-- Whole schemas a domain reads through joins (never auth or audit: those are per table).
DO $$
DECLARE
    pair text[];
BEGIN
    FOREACH pair SLICE 1 IN ARRAY ARRAY[
        ['users', 'education'], ['users', 'schedule'], ['users', 'active'], ['users', 'activities'],
        ['users', 'facilities'],
        ['education', 'users'], ['education', 'active'], ['education', 'facilities'],
        ['facilities', 'active'],
        ['activities', 'active'], ['activities', 'schedule'], ['activities', 'users'], ['activities', 'facilities'],
        ['active', 'activities'], ['active', 'education'], ['active', 'facilities'], ['active', 'iot'],
        ['active', 'users'], ['active', 'schedule'],
        ['schedule', 'activities'], ['schedule', 'education'], ['schedule', 'facilities'],
        ['iot', 'facilities'],
        ['audit', 'users'], ['audit', 'active'], ['audit', 'activities'], ['audit', 'feedback'], ['audit', 'schedule']]
    LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', pair[2], 'phoenix_' || pair[1]);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', pair[2], 'phoenix_' || pair[1]);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO %I', pair[2], 'phoenix_' || pair[1]);
    END LOOP;
END
$$;

-- auth: accepting a staff invitation creates the person, staff and teacher rows; accepting a
-- guardian invitation sets users.guardians.account_id (FOR UPDATE: the same column).
GRANT INSERT ON users.persons, users.staff, users.teachers TO phoenix_auth;
GRANT UPDATE (account_id) ON users.guardians TO phoenix_auth;
GRANT USAGE ON SCHEMA audit TO phoenix_auth;
GRANT INSERT ON audit.auth_events TO phoenix_auth;

-- active: corrections write audit.data_changes; a scan locks the pupil (lock).
GRANT USAGE ON SCHEMA audit TO phoenix_active;
GRANT INSERT ON audit.data_changes TO phoenix_active;
GRANT UPDATE (updated_at) ON users.students TO phoenix_active;

-- feedback: locks the referenced pupils and readers against deletion (lock).
GRANT USAGE ON SCHEMA iot TO phoenix_feedback;
GRANT SELECT ON iot.devices TO phoenix_feedback;
GRANT UPDATE (updated_at) ON users.students, iot.devices TO phoenix_feedback;

-- config: role names for flag rules; the retention purge deletes expired active rows and
-- writes their audit.data_deletions records in the same statement (RETURNING entity_id).
GRANT SELECT ON auth.roles, auth.account_roles TO phoenix_config;
GRANT USAGE ON SCHEMA active, audit TO phoenix_config;
GRANT SELECT ON users.privacy_consents TO phoenix_config;
GRANT SELECT, DELETE ON active.visits, active.scan_receipts, active.presence_events TO phoenix_config;
GRANT SELECT, UPDATE ON active.presence_log_purge TO phoenix_config;
GRANT INSERT, SELECT (entity_id) ON audit.data_deletions TO phoenix_config;

-- audit: GDPR erasure locks the pupil (lock), deletes the person (cascading as the owner)
-- and the guardians left without a child.
GRANT UPDATE (updated_at) ON users.students TO phoenix_audit;
GRANT DELETE ON users.persons, users.guardians TO phoenix_audit;

-- gateway: the MQTT bridge and broker login look readers up and record them seen/offline;
-- its rate limit verifies tokens (the same auth columns as every service, nothing else).
GRANT USAGE ON SCHEMA auth, iot TO phoenix_gateway;
GRANT SELECT (id, active, access_changed_at) ON auth.accounts TO phoenix_gateway;
GRANT SELECT (account_id, family_id, revoked_at) ON auth.tokens TO phoenix_gateway;
GRANT SELECT (client_id, active) ON auth.service_clients TO phoenix_gateway;
GRANT SELECT (kid, algorithm, public_key, not_before, retire_after) ON auth.signing_keys TO phoenix_gateway;
GRANT SELECT ON iot.devices TO phoenix_gateway;
GRANT UPDATE (last_seen, offline_since) ON iot.devices TO phoenix_gateway;
GRANT INSERT ON iot.device_logs TO phoenix_gateway;
