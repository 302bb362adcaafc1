-- Feature flags (issue #6): optional percentage rollout and role list.
--
-- Evaluation (phoenix-config `flags`): off → nobody; on → the subject must hold one of
-- `roles` (when the list is non-empty) AND fall into the first `rollout_percentage` percent
-- of a stable hash of (flag key, subject id) (when set). Roles are matched by name against
-- the caller's token; a name that no longer exists matches nobody (fail closed).
ALTER TABLE config.feature_flags
    ADD COLUMN rollout_percentage integer,
    ADD COLUMN roles text[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT ck_config_feature_flags_rollout_percentage CHECK (rollout_percentage BETWEEN 0 AND 100),
    ADD CONSTRAINT ck_config_feature_flags_roles CHECK (
        cardinality(roles) <= 50 AND array_position(roles, NULL) IS NULL AND array_position(roles, '') IS NULL);
