-- Task events carry who acted and the event's own facts (return reason, extension days, score…).
ALTER TABLE {db}.task_events
    ADD COLUMN IF NOT EXISTS by          LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS reason      Nullable(String),
    ADD COLUMN IF NOT EXISTS days        Nullable(Float32),
    ADD COLUMN IF NOT EXISTS review_on   Nullable(Date),
    ADD COLUMN IF NOT EXISTS score       Nullable(UInt8),
    ADD COLUMN IF NOT EXISTS result      Nullable(String),
    ADD COLUMN IF NOT EXISTS photos      Array(String),
    ADD COLUMN IF NOT EXISTS `limit`     LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS due_at      Nullable(DateTime64(3, 'UTC'))
