-- The tasks again, ordered by the day they were dispatched (UTC): what the SLA rollup recomputes a
-- day from, and the board of a window of days is read from, without scanning every task. Fed by task_days_mv from every insert into tasks; the
-- highest `version` of a task wins, as in tasks (read with FINAL).
CREATE TABLE IF NOT EXISTS {db}.task_days
(
    day                   Date,
    task_id               String,
    version               UInt32,
    dispatched_at         DateTime64(3, 'UTC'),
    unit                  LowCardinality(String),
    role                  LowCardinality(String),
    item_no               LowCardinality(String),
    top_class             LowCardinality(String),
    source                LowCardinality(String),
    district              LowCardinality(Nullable(String)),
    street                LowCardinality(Nullable(String)),
    community             LowCardinality(Nullable(String)),
    grid_code             LowCardinality(Nullable(String)),
    status                LowCardinality(String),
    accepted_at           Nullable(DateTime64(3, 'UTC')),
    completed_at          Nullable(DateTime64(3, 'UTC')),
    closed_at             Nullable(DateTime64(3, 'UTC')),
    rework                UInt16,
    supervised            UInt16,
    escalated_at          Nullable(DateTime64(3, 'UTC')),
    score                 Nullable(UInt8),
    accept_by             Nullable(DateTime64(3, 'UTC')),
    finish_by             Nullable(DateTime64(3, 'UTC')),
    accept_working_hours  Nullable(Float64),
    finish_working_hours  Nullable(Float64)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, task_id)
