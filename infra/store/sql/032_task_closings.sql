-- The closed tasks again, ordered by the day they were closed (UTC): a day's closings are read
-- without scanning every task. Fed by task_closings_mv from every insert into tasks of a closed
-- task; a task closes once (closed only follows verified, and only evaluated follows closed), so its
-- close day never changes; its highest `version` wins (read with FINAL).
CREATE TABLE IF NOT EXISTS {db}.task_closings
(
    day                   Date,
    task_id               String,
    version               UInt32,
    closed_at             DateTime64(3, 'UTC'),
    completed_at          Nullable(DateTime64(3, 'UTC')),
    finish_by             Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, task_id)
