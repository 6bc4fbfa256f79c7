-- Resolved location (unit codes from the city registry) and, when incomplete, why; the duty-list
-- version in force when the incident came in.
ALTER TABLE {db}.incidents
    ADD COLUMN IF NOT EXISTS community        LowCardinality(Nullable(String)) AFTER street,
    ADD COLUMN IF NOT EXISTS location_method  LowCardinality(String) DEFAULT 'none' AFTER grid_code,
    ADD COLUMN IF NOT EXISTS location_problem Nullable(String) AFTER location_method,
    ADD COLUMN IF NOT EXISTS whistle_unit     LowCardinality(Nullable(String)) AFTER sensor_value,
    ADD COLUMN IF NOT EXISTS dutylist_version LowCardinality(Nullable(String)) AFTER whistle_unit
