-- Schedules of an activity alone cannot be kept once group_id is required again.
DELETE FROM schedule.class_schedules WHERE group_id IS NULL;
DROP INDEX schedule.idx_schedule_class_schedules_timeframe_id;
DROP INDEX schedule.idx_schedule_class_schedules_room_weekday;
DROP INDEX schedule.idx_schedule_class_schedules_activity_id;
ALTER TABLE schedule.class_schedules
    DROP CONSTRAINT ck_schedule_class_schedules_group_or_activity,
    DROP COLUMN timeframe_id,
    DROP COLUMN room_id,
    DROP COLUMN activity_id,
    ALTER COLUMN group_id SET NOT NULL;
