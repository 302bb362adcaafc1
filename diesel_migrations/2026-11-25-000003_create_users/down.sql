ALTER TABLE auth.guardian_invitations DROP CONSTRAINT fk_auth_guardian_invitations_guardian_id;

DROP TRIGGER set_updated_at ON users.privacy_consents;
DROP TABLE users.privacy_consents;

DROP TRIGGER set_updated_at ON users.student_guardians;
DROP TABLE users.student_guardians;

DROP TRIGGER set_updated_at ON users.students;
DROP TABLE users.students;

DROP TRIGGER set_updated_at ON users.guardian_phone_numbers;
DROP TABLE users.guardian_phone_numbers;

DROP TRIGGER set_updated_at ON users.guardians;
DROP TABLE users.guardians;

DROP TRIGGER set_updated_at ON users.teachers;
DROP TABLE users.teachers;

DROP TRIGGER set_updated_at ON users.staff;
DROP TABLE users.staff;

DROP TRIGGER set_updated_at ON users.persons;
DROP TABLE users.persons;

DROP TRIGGER set_updated_at ON users.rfid_cards;
DROP TABLE users.rfid_cards;
