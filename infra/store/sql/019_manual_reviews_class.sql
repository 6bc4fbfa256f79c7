-- The operator queue filters by class: the class of the best candidate item.
ALTER TABLE {db}.manual_reviews ADD COLUMN IF NOT EXISTS top_class LowCardinality(Nullable(String))
