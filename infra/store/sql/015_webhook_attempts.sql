-- Every try at delivering an alert to a unit's webhook, failed ones included.
CREATE TABLE IF NOT EXISTS {db}.webhook_attempts
(
    attempt_id  String,
    alert_id    String,
    to_unit     LowCardinality(String),
    url         String,
    attempt     UInt8,
    at          DateTime64(3, 'UTC'),
    status      Nullable(UInt16),
    error       String,
    delivered   Bool,
    seconds     Float32,
    stored_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (alert_id, attempt_id)
SETTINGS non_replicated_deduplication_window = 1000
