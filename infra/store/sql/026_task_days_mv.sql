CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.task_days_mv TO {db}.task_days AS
SELECT toDate(dispatched_at) AS day, task_id, version, dispatched_at, unit, role, item_no, top_class, source, district, street,
       community, grid_code, status, accepted_at, completed_at, closed_at, rework, supervised, escalated_at, score,
       accept_by, finish_by, accept_working_hours, finish_working_hours
FROM {db}.tasks
