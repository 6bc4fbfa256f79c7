CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.dispatch_days_mv TO {db}.dispatch_days AS
SELECT toDate(dispatched_at) AS day, dispatch_id, unit, role, attempt, dispatched_at
FROM {db}.dispatches
