-- Failed messages: where they came from and why. The payload itself may hold PII, so only its
-- hash is kept here; the dead-letter topic keeps the bytes for reprocessing.
CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    dead_letter_id  String,
    topic           LowCardinality(String),
    partition       UInt32,
    offset          UInt64,
    stage           LowCardinality(String),
    reason          String,
    payload_sha256  FixedString(64),
    failed_at       DateTime64(3, 'UTC'),
    stored_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY dead_letter_id
SETTINGS non_replicated_deduplication_window = 1000
