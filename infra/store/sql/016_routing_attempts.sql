-- Re-routing after a return (退单): the attempt number, and the candidates left to try.
ALTER TABLE {db}.dispatches
    ADD COLUMN IF NOT EXISTS candidates  Array(String),
    ADD COLUMN IF NOT EXISTS attempt     UInt16 DEFAULT 0
