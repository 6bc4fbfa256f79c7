-- What the screen's trend lines count, per UTC hour: reports received, tasks dispatched, tasks closed
-- and closed on time (infra.store.ACTIVITY, where each is defined). An hour's counts are recomputed
-- from incident_days, task_days and task_closings after each insert touching its day
-- (infra.store.Store.refresh_rollup): exact, and idempotent — the latest `refreshed_at` wins (FINAL).
-- A trend of days sums the hours of each day in the city's zone.
CREATE TABLE IF NOT EXISTS {db}.activity_hours
(
    figure                LowCardinality(String),
    hour                  DateTime('UTC'),
    n                     UInt64,
    refreshed_at          DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(refreshed_at)
ORDER BY (figure, hour)
