-- 摊派 refusals are counted apart: a dispatch to a street the duty list does not name was refused.
ALTER TABLE {db}.manual_reviews
    ADD COLUMN IF NOT EXISTS tanpai_refused   Bool DEFAULT false AFTER candidates,
    ADD COLUMN IF NOT EXISTS dutylist_version LowCardinality(Nullable(String)) AFTER tanpai_refused
