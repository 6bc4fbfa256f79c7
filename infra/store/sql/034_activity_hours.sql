-- What the screen's trend lines and /stats/ count, per UTC hour: reports received, tasks dispatched, closed
-- and closed on time, task events by kind, dispatches (infra.store.ACTIVITY, where each is defined). An hour's counts are recomputed
-- from the day-ordered copies (incident_days, task_days, task_closings, event_days, dispatch_days) after each insert touching its day
-- (infra.store.Store.refresh_activity): exact, and idempotent — the latest `refreshed_at` wins (FINAL).
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
