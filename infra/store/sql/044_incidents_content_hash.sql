-- A hash of the report as the sender sent it (pipeline.normalize.content_hash): the api answers 409 to a
-- report id that came before with other content.
ALTER TABLE {db}.incidents ADD COLUMN IF NOT EXISTS content_hash String DEFAULT ''
