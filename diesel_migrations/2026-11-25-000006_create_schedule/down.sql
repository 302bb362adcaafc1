DROP TRIGGER set_updated_at ON schedule.student_pickup_notes;
DROP TABLE schedule.student_pickup_notes;

DROP TRIGGER set_updated_at ON schedule.student_pickup_exceptions;
DROP TABLE schedule.student_pickup_exceptions;

DROP TRIGGER set_updated_at ON schedule.student_pickup_schedules;
DROP TABLE schedule.student_pickup_schedules;

DROP TRIGGER set_updated_at ON schedule.class_schedules;
DROP TABLE schedule.class_schedules;

DROP TRIGGER set_updated_at ON schedule.recurrence_patterns;
DROP TABLE schedule.recurrence_patterns;

DROP TRIGGER set_updated_at ON schedule.dateframes;
DROP TABLE schedule.dateframes;

DROP TRIGGER set_updated_at ON schedule.timeframes;
DROP TABLE schedule.timeframes;
