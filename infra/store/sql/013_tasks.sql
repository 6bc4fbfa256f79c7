-- One row per task as it last stood (the highest `version` wins; read with FINAL): every timestamp,
-- the working-time deadlines and durations, counts. The source of the SLA figures (infra.store.sla).
CREATE TABLE IF NOT EXISTS {db}.tasks
(
    task_id               String,
    incident_id           String,
    unit                  LowCardinality(String),
    role                  LowCardinality(String),
    item_no               LowCardinality(String),
    top_class             LowCardinality(String),
    dutylist_version      LowCardinality(String),
    attempt               UInt16,
    source                LowCardinality(String),
    district              LowCardinality(Nullable(String)),
    street                LowCardinality(Nullable(String)),
    community             LowCardinality(Nullable(String)),
    grid_code             LowCardinality(Nullable(String)),
    status                LowCardinality(String),
    accept_within_hours   Float32,
    finish_within_days    Float32,
    dispatched_at         DateTime64(3, 'UTC'),
    accepted_at           Nullable(DateTime64(3, 'UTC')),
    completed_at          Nullable(DateTime64(3, 'UTC')),
    verified_at           Nullable(DateTime64(3, 'UTC')),
    closed_at             Nullable(DateTime64(3, 'UTC')),
    evaluated_at          Nullable(DateTime64(3, 'UTC')),
    returned_at           Nullable(DateTime64(3, 'UTC')),
    return_reason         LowCardinality(Nullable(String)),
    rework                UInt16,
    extensions_requested  UInt16,
    extension_days        Float32,
    supervised            UInt16,
    escalated_at          Nullable(DateTime64(3, 'UTC')),
    parked_at             Nullable(DateTime64(3, 'UTC')),
    parked_reason         Nullable(String),
    review_on             Nullable(Date),
    paused_since          Nullable(DateTime64(3, 'UTC')),
    paused_seconds        Float64,
    score                 Nullable(UInt8),
    reports               UInt32,
    accept_by             Nullable(DateTime64(3, 'UTC')),
    accept_warn_at        Nullable(DateTime64(3, 'UTC')),
    finish_by             Nullable(DateTime64(3, 'UTC')),
    finish_warn_at        Nullable(DateTime64(3, 'UTC')),
    escalate_at           Nullable(DateTime64(3, 'UTC')),
    accept_working_hours  Nullable(Float64),   -- dispatch → accept, office hours only
    finish_working_hours  Nullable(Float64),   -- dispatch → completion, office hours, pauses excluded
    alerts_raised         Array(String),
    last_event_at         DateTime64(3, 'UTC'),
    version               UInt32,
    stored_at             DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(dispatched_at)
ORDER BY task_id
SETTINGS non_replicated_deduplication_window = 1000
