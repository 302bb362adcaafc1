DROP TRIGGER set_updated_at ON feedback.comments;
DROP TABLE feedback.comments;

DROP TRIGGER set_updated_at ON feedback.entries;
DROP TABLE feedback.entries;
