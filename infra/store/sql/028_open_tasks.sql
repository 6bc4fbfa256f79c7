-- The tasks still open (pipeline.lifecycle.OPEN), with what the screen lists of them: the overdue
-- list, the pre-warned and a grid's open tasks read this small table instead of every task ever.
-- Fed by open_tasks_mv from every insert into tasks: a task's newest version wins (read with FINAL)
-- and a version that is no longer open is a deletion (`closed`), which FINAL leaves out and
-- `OPTIMIZE … FINAL CLEANUP` (infra.store.Store.clean_open_tasks) removes for good, so the table
-- stays the size of the open work, not of the history.
CREATE TABLE IF NOT EXISTS {db}.open_tasks
(
    task_id               String,
    version               UInt32,
    closed                UInt8,
    unit                  LowCardinality(String),
    item_no               LowCardinality(String),
    street                LowCardinality(Nullable(String)),
    grid_code             LowCardinality(Nullable(String)),
    status                LowCardinality(String),
    dispatched_at         DateTime64(3, 'UTC'),
    finish_warn_at        Nullable(DateTime64(3, 'UTC')),
    finish_by             Nullable(DateTime64(3, 'UTC')),
    supervised            UInt16,
    escalated_at          Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree(version, closed)
ORDER BY task_id
SETTINGS allow_experimental_replacing_merge_with_cleanup = 1
