DROP TRIGGER set_updated_at ON activities.enrollments;
DROP TABLE activities.enrollments;

DROP TRIGGER set_updated_at ON activities.supervisors;
DROP TABLE activities.supervisors;

DROP TRIGGER set_updated_at ON activities.schedules;
DROP TABLE activities.schedules;

DROP TRIGGER set_updated_at ON activities.activities;
DROP TABLE activities.activities;

DROP TRIGGER set_updated_at ON activities.categories;
DROP TABLE activities.categories;
