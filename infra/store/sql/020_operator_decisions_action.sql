-- An operator may close an incident without a dispatch (answered directly, not a city matter);
-- the queue leaves closed incidents out.
ALTER TABLE {db}.operator_decisions ADD COLUMN IF NOT EXISTS action LowCardinality(String) DEFAULT 'dispatch' AFTER incident_id
