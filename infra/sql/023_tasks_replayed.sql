-- A historical order replayed (`cityops replay`): its task says so, so the board can leave history out.
ALTER TABLE {db}.tasks
    ADD COLUMN IF NOT EXISTS replayed Bool DEFAULT false AFTER source
