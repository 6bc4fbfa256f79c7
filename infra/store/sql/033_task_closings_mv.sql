-- `tasks.closed_at` in WHERE: the select list's alias of the same name would shadow the column.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.task_closings_mv TO {db}.task_closings AS
SELECT toDate(assumeNotNull(closed_at)) AS day, task_id, version, assumeNotNull(closed_at) AS closed_at, completed_at, finish_by
FROM {db}.tasks
WHERE tasks.closed_at IS NOT NULL
