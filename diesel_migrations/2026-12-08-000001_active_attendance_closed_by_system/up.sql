-- active.attendance.closed_by_system: the end-of-day attendance close (phoenix-active's
-- `close_attendance` job, docs/presence.md "Active-domain jobs") checked the pupil out at
-- 23:59:59 local of the row's date because nobody did; the office lists who was never
-- checked out. A re-check-in the same day clears it with the other check-out columns.
ALTER TABLE active.attendance
    ADD COLUMN closed_by_system boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT ck_active_attendance_closed_by_system CHECK (NOT closed_by_system OR check_out_time IS NOT NULL);
