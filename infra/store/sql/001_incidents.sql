-- One row per incident. Deterministic incident_id + ReplacingMergeTree: a replayed incident
-- collapses into one row; read with FINAL (or count(DISTINCT incident_id)) for exact figures.
CREATE TABLE IF NOT EXISTS {db}.incidents
(
    incident_id     String,
    source          LowCardinality(String),
    source_id       String,
    reported_at     DateTime64(3, 'UTC'),
    normalized_at   DateTime64(3, 'UTC'),
    stored_at       DateTime64(3, 'UTC') DEFAULT now64(3),
    title           String,
    text            String,               -- phone and ID numbers masked by the normaliser
    address         Nullable(String),
    lat             Nullable(Float64),
    lon             Nullable(Float64),
    district        LowCardinality(Nullable(String)),
    street          LowCardinality(Nullable(String)),
    grid_code       LowCardinality(Nullable(String)),
    category_hint   LowCardinality(Nullable(String)),
    reporter_hash   Nullable(String),     -- salted SHA-256 of the caller phone; never the number
    sensor_kind     LowCardinality(Nullable(String)),
    sensor_value    Nullable(Float64)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(reported_at)
ORDER BY incident_id
SETTINGS non_replicated_deduplication_window = 1000
