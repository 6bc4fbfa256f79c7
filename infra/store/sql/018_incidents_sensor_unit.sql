-- The unit a sensor reported its value in: the duty list's sensor rules compare values only in their own unit.
ALTER TABLE {db}.incidents ADD COLUMN IF NOT EXISTS sensor_unit LowCardinality(Nullable(String)) AFTER sensor_value
