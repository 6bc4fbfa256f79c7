ALTER TABLE {db}.manual_reviews ADD COLUMN IF NOT EXISTS model_version LowCardinality(Nullable(String)) AFTER attempt
