-- Why an operator closed an incident without a dispatch: answered, invalid or duplicate.
ALTER TABLE {db}.operator_decisions ADD COLUMN IF NOT EXISTS close_reason LowCardinality(Nullable(String)) AFTER item_no
