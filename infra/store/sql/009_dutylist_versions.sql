-- Every duty-list version ever published, exactly as published: the audit trail behind each
-- dispatch's dutylist_version (who published what, when).
CREATE TABLE IF NOT EXISTS {db}.dutylist_versions
(
    version       String,
    published_at  DateTime64(3, 'UTC'),
    published_by  LowCardinality(String),
    yaml_sha256   FixedString(64),
    yaml          String,
    stored_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version
SETTINGS non_replicated_deduplication_window = 1000
