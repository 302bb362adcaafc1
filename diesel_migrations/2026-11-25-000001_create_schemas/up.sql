-- Phoenix data model, migration 1: one schema per domain, plus `meta` for shared trigger
-- functions. Nothing is created in `public` (no diesel_initial_setup).

CREATE SCHEMA auth;
CREATE SCHEMA users;
CREATE SCHEMA education;
CREATE SCHEMA facilities;
CREATE SCHEMA activities;
CREATE SCHEMA active;
CREATE SCHEMA schedule;
CREATE SCHEMA iot;
CREATE SCHEMA feedback;
CREATE SCHEMA config;
CREATE SCHEMA audit;
CREATE SCHEMA meta;

-- BEFORE UPDATE row trigger: keeps `updated_at` current on every table that has it.
CREATE FUNCTION meta.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
