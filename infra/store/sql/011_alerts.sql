-- Alerts the operations centre must look at: hotspots now (N reports of one item in one place).
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    alert_id   String,
    kind       LowCardinality(String),
    item_no    LowCardinality(String),
    place      LowCardinality(String),
    reports    UInt32,
    first_at   DateTime64(3, 'UTC'),
    last_at    DateTime64(3, 'UTC'),
    raised_at  DateTime64(3, 'UTC'),
    stored_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY alert_id
SETTINGS non_replicated_deduplication_window = 1000
