-- The operator queue: incidents no duty item could take with confidence, and why.
CREATE TABLE IF NOT EXISTS {db}.manual_reviews
(
    incident_id  String,
    reason       String,
    candidates   Array(String),
    queued_at    DateTime64(3, 'UTC'),
    stored_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY incident_id
SETTINGS non_replicated_deduplication_window = 1000
