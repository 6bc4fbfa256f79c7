-- The task events again, ordered by the day they happened (UTC), with what the activity counts
-- need: a day's events are counted without scanning every event. Fed by event_days_mv from every
-- insert into task_events; one row per event (read with FINAL). An event's `at` travels with it, so a
-- redelivered event lands on the same day and collapses with its first copy.
CREATE TABLE IF NOT EXISTS {db}.event_days
(
    day                   Date,
    task_id               String,
    event_id              String,
    incident_id           String,
    kind                  LowCardinality(String),
    at                    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, task_id, event_id)
