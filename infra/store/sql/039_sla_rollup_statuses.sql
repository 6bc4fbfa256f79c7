-- How many of a day's tasks stand in each status (infra.store.STATUS_COUNTS, one per
-- pipeline.lifecycle status): /stats/ sums them instead of counting every task. A store from before
-- these columns has its rollup recomputed once by Store.migrate.
ALTER TABLE {db}.sla_rollup
    ADD COLUMN IF NOT EXISTS status_accepted          UInt64 AFTER satisfied,
    ADD COLUMN IF NOT EXISTS status_closed            UInt64 AFTER status_accepted,
    ADD COLUMN IF NOT EXISTS status_completed         UInt64 AFTER status_closed,
    ADD COLUMN IF NOT EXISTS status_dispatched        UInt64 AFTER status_completed,
    ADD COLUMN IF NOT EXISTS status_evaluated         UInt64 AFTER status_dispatched,
    ADD COLUMN IF NOT EXISTS status_extension_pending UInt64 AFTER status_evaluated,
    ADD COLUMN IF NOT EXISTS status_parked            UInt64 AFTER status_extension_pending,
    ADD COLUMN IF NOT EXISTS status_returned          UInt64 AFTER status_parked,
    ADD COLUMN IF NOT EXISTS status_verified          UInt64 AFTER status_returned
