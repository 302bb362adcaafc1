-- The school-year rollover (phoenix.education.v1.RolloverService, docs/reports.md): every
-- pupil of an old education group moves to the new one, leavers are deactivated. Each pupil
-- changed is one audit.data_changes row (entity `student`, action `student_moved` or
-- `student_archived`), written in the rollover's transaction.
--
-- `groups:rollover` is held by nobody but admins (`*:*`).

ALTER TABLE audit.data_changes DROP CONSTRAINT ck_audit_data_changes_entity_type;
ALTER TABLE audit.data_changes ADD CONSTRAINT ck_audit_data_changes_entity_type
    CHECK (entity_type IN ('visit', 'student'));
ALTER TABLE audit.data_changes DROP CONSTRAINT ck_audit_data_changes_action;
ALTER TABLE audit.data_changes ADD CONSTRAINT ck_audit_data_changes_action
    CHECK (action IN ('visit_corrected', 'checked_in_at', 'student_moved', 'student_archived'));

INSERT INTO auth.permissions (name, resource, action, description, is_system)
VALUES ('groups:rollover', 'groups', 'rollover', 'Run the school-year rollover: move every group''s pupils, archive leavers', true)
ON CONFLICT DO NOTHING;
