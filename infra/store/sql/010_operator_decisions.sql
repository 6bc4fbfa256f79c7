-- Operators' rulings on the manual queue: who sent which incident where, and why.
CREATE TABLE IF NOT EXISTS {db}.operator_decisions
(
    decision_id  String,
    incident_id  String,
    item_no      LowCardinality(String),
    units        Array(String),
    operator     LowCardinality(String),
    note         String,
    decided_at   DateTime64(3, 'UTC'),
    stored_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY decision_id
SETTINGS non_replicated_deduplication_window = 1000
