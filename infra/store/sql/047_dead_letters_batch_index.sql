-- A message that failed inside a batch record (schemas/batches.py): its place in that record, as the
-- topic, partition and offset name only the record.
ALTER TABLE {db}.dead_letters ADD COLUMN IF NOT EXISTS batch_index Nullable(UInt32) AFTER offset
