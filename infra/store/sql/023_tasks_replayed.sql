-- A historical order replayed (`cityops replay`): its task says so, so the board can leave history
-- out, and keeps the deadline its record had (NULL: the limits give it).
ALTER TABLE {db}.tasks
    ADD COLUMN IF NOT EXISTS replayed Bool DEFAULT false AFTER source,
    ADD COLUMN IF NOT EXISTS due_at Nullable(DateTime64(3, 'UTC')) AFTER reports
