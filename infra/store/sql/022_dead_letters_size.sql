-- How large the failed message was, and whether the dead letter carries it cut.
ALTER TABLE {db}.dead_letters
    ADD COLUMN IF NOT EXISTS payload_bytes      UInt64 DEFAULT 0 AFTER payload_sha256,
    ADD COLUMN IF NOT EXISTS payload_truncated  Bool DEFAULT false AFTER payload_bytes
