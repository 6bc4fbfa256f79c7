CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.event_days_mv TO {db}.event_days AS
SELECT toDate(at) AS day, task_id, event_id, incident_id, kind, at
FROM {db}.task_events
