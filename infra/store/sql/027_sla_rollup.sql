-- The SLA board, pre-aggregated: per dimension (unit, street, item…, or 'total'), its value, the
-- intake source and the dispatch day, the counts and working-hours histograms the board sums.
-- Each value and day also has a row of every source (source '*'): what a board without a source reads.
-- What depends on the instant asked about (overdue, accept due) is kept as the deadlines of the
-- tasks still running, counted at query time. The columns are infra.store's SLA figures
-- (SLA_COUNTS, SLA_BY_INSTANT, SLA_QUANTILES), where each is defined. A day's rows are recomputed
-- from task_days after each insert of tasks touching it (infra.store.Store.refresh_rollup): exact,
-- and idempotent — a recomputation replaces the day's rows (the latest `refreshed_at` wins; FINAL).
CREATE TABLE IF NOT EXISTS {db}.sla_rollup
(
    dimension             LowCardinality(String),
    key                   String,
    source                LowCardinality(String),
    day                   Date,
    tasks                 UInt64,
    returned              UInt64,
    open                  UInt64,
    parked                UInt64,
    accepted_in_time      UInt64,
    accept_due_kept       UInt64,
    accept_due_deadlines  Array(DateTime64(3, 'UTC')),
    handled               UInt64,
    closed                UInt64,
    closed_on_time        UInt64,
    reworked              UInt64,
    supervised            UInt64,
    escalated             UInt64,
    overdue_open_deadlines Array(DateTime64(3, 'UTC')),
    evaluated             UInt64,
    resolved              UInt64,
    satisfied             UInt64,
    accept_hours_histogram   Array(UInt32),  -- working hours: counts per bucket (infra.store: HOURS_BUCKETS)
    finish_hours_histogram   Array(UInt32),
    refreshed_at          DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(refreshed_at)
-- By source, then day, within a dimension: a board reads a dimension's last days of one source (or
-- '*'; the older days are sealed, infra/sql/040) as one range of rows; small granules, because each
-- row carries two histograms.
ORDER BY (dimension, source, day, key)
SETTINGS index_granularity = 1024
