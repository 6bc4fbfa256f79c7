-- The incidents again, ordered by the day they were reported (UTC), with only what the activity
-- counts need: a day's reports are read without scanning every incident. Fed by incident_days_mv
-- from every insert into incidents; one row per incident (read with FINAL).
CREATE TABLE IF NOT EXISTS {db}.incident_days
(
    day                   Date,
    incident_id           String,
    reported_at           DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, incident_id)
