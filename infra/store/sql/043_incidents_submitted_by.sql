-- The id of the API key that sent the report (never the key): the only intake key that may score its result (回访).
ALTER TABLE {db}.incidents ADD COLUMN IF NOT EXISTS submitted_by LowCardinality(Nullable(String))
