DELETE FROM auth.permissions WHERE name IN ('jobs:read', 'jobs:run');
DROP TABLE config.job_runs;
