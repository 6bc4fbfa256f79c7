-- The text model whose classification made each automatic decision (a dispatch, or a wait for the
-- operator): the rulings and returns that follow are examples for the next model, judged per model.
ALTER TABLE {db}.dispatches ADD COLUMN IF NOT EXISTS model_version LowCardinality(Nullable(String)) AFTER due_at
