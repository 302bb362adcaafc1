-- active.combined_groups gets what the combined-groups API needs: a name, the room the
-- combination is supervised in, notes, and who created it.
--
-- Nothing wrote this table before this migration (no API existed), so a row can only be
-- hand-made: it gets a generated name and the room of its first session; a row without
-- any session has no room to give and is removed.
ALTER TABLE active.combined_groups
    ADD COLUMN name       varchar(100),
    ADD COLUMN room_id    bigint,
    ADD COLUMN notes      text,
    ADD COLUMN created_by bigint;

UPDATE active.combined_groups c
SET name = 'Kombination ' || c.id,
    room_id = (SELECT g.room_id
               FROM active.group_mappings m
               JOIN active.groups g ON g.id = m.active_group_id
               WHERE m.combined_group_id = c.id
               ORDER BY m.id
               LIMIT 1);
DELETE FROM active.combined_groups WHERE room_id IS NULL;

ALTER TABLE active.combined_groups
    ALTER COLUMN name SET NOT NULL,
    ALTER COLUMN room_id SET NOT NULL,
    ADD CONSTRAINT fk_active_combined_groups_room_id FOREIGN KEY (room_id)
        REFERENCES facilities.rooms (id) ON DELETE RESTRICT,
    ADD CONSTRAINT fk_active_combined_groups_created_by FOREIGN KEY (created_by)
        REFERENCES users.staff (id) ON DELETE SET NULL,
    ADD CONSTRAINT ck_active_combined_groups_name CHECK (
        char_length(btrim(name)) BETWEEN 1 AND 100 AND name = btrim(name)),
    ADD CONSTRAINT ck_active_combined_groups_notes CHECK (char_length(notes) <= 1000);

CREATE INDEX idx_active_combined_groups_room_id ON active.combined_groups (room_id);
CREATE INDEX idx_active_combined_groups_created_by ON active.combined_groups (created_by);
