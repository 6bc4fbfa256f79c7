-- Values (dimension, key) with a sealed day changed since their sla_sealed row was merged: until the
-- sink merges them again (Store.seal_pending, at most every 30 s), the board reads all their days
-- from the rollup instead of that row, so its figures are exact meanwhile. The newest mark wins.
CREATE TABLE IF NOT EXISTS {db}.sla_unsealed
(
    dimension  LowCardinality(String),
    key        String,
    sealed     Bool,
    marked_at  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(marked_at)
ORDER BY (dimension, key)
