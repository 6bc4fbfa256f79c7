-- Every step of every task, with its timestamp: the source of all SLA figures.
CREATE TABLE IF NOT EXISTS {db}.task_events
(
    event_id     String,
    task_id      String,
    incident_id  String,
    unit         LowCardinality(String),
    kind         LowCardinality(String),
    at           DateTime64(3, 'UTC'),
    note         String,
    stored_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (task_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000
