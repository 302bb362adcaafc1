DROP INDEX users.idx_users_students_active;
ALTER TABLE users.students DROP COLUMN deactivated_at;
