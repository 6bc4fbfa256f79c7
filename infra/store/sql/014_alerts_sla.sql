-- Alerts now include the SLA clock's: pre-warnings, overdue limits, escalations of a task.
ALTER TABLE {db}.alerts
    MODIFY COLUMN place     LowCardinality(Nullable(String)),
    MODIFY COLUMN reports   Nullable(UInt32),
    MODIFY COLUMN first_at  Nullable(DateTime64(3, 'UTC')),
    MODIFY COLUMN last_at   Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS to_unit      LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS task_id      Nullable(String),
    ADD COLUMN IF NOT EXISTS incident_id  Nullable(String),
    ADD COLUMN IF NOT EXISTS unit         LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS `limit`      LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS due_at       Nullable(DateTime64(3, 'UTC'))
