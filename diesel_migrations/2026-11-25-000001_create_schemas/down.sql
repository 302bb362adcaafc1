DROP FUNCTION meta.set_updated_at();

DROP SCHEMA meta;
DROP SCHEMA audit;
DROP SCHEMA config;
DROP SCHEMA feedback;
DROP SCHEMA iot;
DROP SCHEMA schedule;
DROP SCHEMA active;
DROP SCHEMA activities;
DROP SCHEMA facilities;
DROP SCHEMA education;
DROP SCHEMA users;
DROP SCHEMA auth;
