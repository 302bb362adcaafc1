DROP TRIGGER set_updated_at ON config.feature_flags;
DROP TABLE config.feature_flags;

DROP TRIGGER set_updated_at ON config.settings;
DROP TABLE config.settings;
