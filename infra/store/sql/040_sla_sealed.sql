-- The SLA rollup's older days merged once: one row per dimension value and intake source (and its
-- row of every source, '*') covering every dispatch day before `through` (infra.store: SEAL_SQL).
-- The board of the whole history reads these rows and the rollup's days from `through` on, so it
-- sums one row per value instead of one per day (BENCHMARKS.md, "The screen's queries"). A value's
-- row is merged again when a change touches one of its sealed days, and every row when `through`
-- moves (Store.seal).
-- The running deadlines before `through` are counted (`<figure>_passed`: past for any instant the
-- board is asked about from `through` on; an earlier instant reads the rollup alone), later ones kept.
CREATE TABLE IF NOT EXISTS {db}.sla_sealed
(
    through                  Date,
    dimension                LowCardinality(String),
    key                      String,
    source                   LowCardinality(String),
    tasks                    UInt64,
    returned                 UInt64,
    open                     UInt64,
    parked                   UInt64,
    accepted_in_time         UInt64,
    accept_due_kept          UInt64,
    accept_due_passed        UInt64,
    accept_due_deadlines     Array(DateTime64(3, 'UTC')),
    handled                  UInt64,
    closed                   UInt64,
    closed_on_time           UInt64,
    reworked                 UInt64,
    supervised               UInt64,
    escalated                UInt64,
    overdue_open_passed      UInt64,
    overdue_open_deadlines   Array(DateTime64(3, 'UTC')),
    evaluated                UInt64,
    resolved                 UInt64,
    satisfied                UInt64,
    status_accepted          UInt64,
    status_closed            UInt64,
    status_completed         UInt64,
    status_dispatched        UInt64,
    status_evaluated         UInt64,
    status_extension_pending UInt64,
    status_parked            UInt64,
    status_returned          UInt64,
    status_verified          UInt64,
    accept_hours_histogram   Array(UInt32),  -- working hours: counts per bucket (infra.store: HOURS_BUCKETS)
    finish_hours_histogram   Array(UInt32),
    refreshed_at             DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(refreshed_at)
-- By source within a dimension: a board reads the rows of one source (or '*') as one range.
ORDER BY (through, dimension, source, key)
SETTINGS index_granularity = 256  -- a board reads one dimension's rows, each with two histograms
