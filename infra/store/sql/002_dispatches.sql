-- One row per (incident, unit, role): which duty item and list version sent the work where.
CREATE TABLE IF NOT EXISTS {db}.dispatches
(
    dispatch_id          String,
    incident_id          String,
    unit                 LowCardinality(String),
    role                 LowCardinality(String),
    item_no              LowCardinality(String),
    item_title           LowCardinality(String),
    top_class            LowCardinality(String),
    dutylist_version     LowCardinality(String),
    legal_basis          String,
    confidence           Float32,
    reason               String,
    dispatched_at        DateTime64(3, 'UTC'),
    accept_within_hours  Float32,
    finish_within_days   Float32,
    stored_at            DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(dispatched_at)
ORDER BY dispatch_id
SETTINGS non_replicated_deduplication_window = 1000
