CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.incident_days_mv TO {db}.incident_days AS
SELECT toDate(reported_at) AS day, incident_id, reported_at
FROM {db}.incidents
