-- Class schedules say which education group and/or activity meets in which room, on which
-- weekday, in which timeframe (issue #6). The window stays in start_time / end_time (local
-- Berlin wall-clock): it is copied from the timeframe when the schedule is written, so the
-- room-conflict checks compare plain times, and a deleted timeframe leaves the window intact.
ALTER TABLE schedule.class_schedules
    ALTER COLUMN group_id DROP NOT NULL,
    ADD COLUMN activity_id  bigint,
    ADD COLUMN room_id      bigint,
    ADD COLUMN timeframe_id bigint,
    ADD CONSTRAINT fk_schedule_class_schedules_activity_id FOREIGN KEY (activity_id)
        REFERENCES activities.activities (id) ON DELETE CASCADE,
    ADD CONSTRAINT fk_schedule_class_schedules_room_id FOREIGN KEY (room_id)
        REFERENCES facilities.rooms (id) ON DELETE SET NULL,
    ADD CONSTRAINT fk_schedule_class_schedules_timeframe_id FOREIGN KEY (timeframe_id)
        REFERENCES schedule.timeframes (id) ON DELETE SET NULL,
    ADD CONSTRAINT ck_schedule_class_schedules_group_or_activity CHECK (
        group_id IS NOT NULL OR activity_id IS NOT NULL);
CREATE INDEX idx_schedule_class_schedules_activity_id ON schedule.class_schedules (activity_id);
-- Conflict look-ups: one room on one weekday.
CREATE INDEX idx_schedule_class_schedules_room_weekday ON schedule.class_schedules (room_id, weekday);
CREATE INDEX idx_schedule_class_schedules_timeframe_id ON schedule.class_schedules (timeframe_id);
