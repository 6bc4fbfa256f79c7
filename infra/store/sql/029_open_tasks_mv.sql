-- {open} is infra.store.OPEN_SQL, the one definition of an open task (pipeline.lifecycle.OPEN).
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.open_tasks_mv TO {db}.open_tasks AS
SELECT task_id, version, toUInt8(NOT ({open})) AS closed, unit, item_no, street, grid_code, status, dispatched_at,
       finish_warn_at, finish_by, supervised, escalated_at
FROM {db}.tasks
