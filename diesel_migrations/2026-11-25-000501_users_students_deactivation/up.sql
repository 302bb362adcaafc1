-- Deactivating a pupil (left the school) instead of deleting them: erasure is a GDPR
-- operation with an audit record, not an everyday action (issue #5). A deactivated student
-- keeps their history, is hidden from lists by default and holds no RFID card.
ALTER TABLE users.students ADD COLUMN deactivated_at timestamptz;
CREATE INDEX idx_users_students_active ON users.students (id) WHERE deactivated_at IS NULL;
