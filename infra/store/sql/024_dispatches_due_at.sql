-- A replayed order's dispatch keeps the deadline its record had (NULL: the duty list's limits).
ALTER TABLE {db}.dispatches
    ADD COLUMN IF NOT EXISTS due_at Nullable(DateTime64(3, 'UTC')) AFTER attempt
