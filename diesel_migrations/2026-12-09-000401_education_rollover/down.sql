DELETE FROM auth.permissions WHERE name = 'groups:rollover';

-- The append-only rows of the rollover cannot be deleted; the old checks come back NOT VALID.
ALTER TABLE audit.data_changes DROP CONSTRAINT ck_audit_data_changes_action;
ALTER TABLE audit.data_changes ADD CONSTRAINT ck_audit_data_changes_action
    CHECK (action IN ('visit_corrected', 'checked_in_at')) NOT VALID;
ALTER TABLE audit.data_changes DROP CONSTRAINT ck_audit_data_changes_entity_type;
ALTER TABLE audit.data_changes ADD CONSTRAINT ck_audit_data_changes_entity_type
    CHECK (entity_type IN ('visit')) NOT VALID;
