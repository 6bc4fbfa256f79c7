-- The local list (一乡一单) a dispatch followed, beside the list version; NULL = the city list.
ALTER TABLE {db}.dispatches
    ADD COLUMN IF NOT EXISTS local_list LowCardinality(Nullable(String)) AFTER dutylist_version
