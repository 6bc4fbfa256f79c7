-- Photos of the problem as the reporter sent them (a grid worker's app, an Open311 media_url): links, never the pictures.
ALTER TABLE {db}.incidents ADD COLUMN IF NOT EXISTS photo_urls Array(String)
