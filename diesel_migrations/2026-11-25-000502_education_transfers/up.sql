-- Same-day transfers (a group's leader hands the group over for the rest of the day) and
-- substitutions share education.group_substitution. The original told them apart only by
-- `regular_staff_id IS NULL`, which also describes a general cover planned by the
-- administration; an explicit flag keeps a leader from cancelling an admin's cover.
ALTER TABLE education.group_substitution
    ADD COLUMN is_transfer boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT ck_education_group_substitution_transfer CHECK (
        NOT is_transfer OR (regular_staff_id IS NULL AND start_date = end_date));
