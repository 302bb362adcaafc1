ALTER TABLE users.students DROP CONSTRAINT fk_users_students_group_id;

DROP TRIGGER set_updated_at ON education.group_substitution;
DROP TABLE education.group_substitution;

DROP TRIGGER set_updated_at ON education.group_teacher;
DROP TABLE education.group_teacher;

DROP TRIGGER set_updated_at ON education.groups;
DROP TABLE education.groups;
