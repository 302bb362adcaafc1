ALTER TABLE education.group_substitution
    DROP CONSTRAINT ck_education_group_substitution_transfer,
    DROP COLUMN is_transfer;
