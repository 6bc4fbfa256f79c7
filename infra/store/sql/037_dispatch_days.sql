-- The dispatches again, ordered by the day they were made (UTC), with what the activity counts
-- need (first dispatches per unit, re-routings). Fed by dispatch_days_mv; one row per dispatch (FINAL).
CREATE TABLE IF NOT EXISTS {db}.dispatch_days
(
    day                   Date,
    dispatch_id           String,
    unit                  LowCardinality(String),
    role                  LowCardinality(String),
    attempt               UInt16,
    dispatched_at         DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, dispatch_id)
