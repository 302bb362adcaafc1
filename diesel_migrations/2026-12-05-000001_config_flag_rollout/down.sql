ALTER TABLE config.feature_flags
    DROP CONSTRAINT ck_config_feature_flags_roles,
    DROP CONSTRAINT ck_config_feature_flags_rollout_percentage,
    DROP COLUMN roles,
    DROP COLUMN rollout_percentage;
