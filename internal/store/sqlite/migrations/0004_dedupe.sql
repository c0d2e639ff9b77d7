-- Dedupe: a run created for a deduplicated event carries its key and the
-- end of its window (INTEGER microseconds since the Unix epoch, as in
-- 0001). Another event of the same routine and key arriving before
-- dedupe_until folds into that run instead of creating one. '' and NULL
-- are "no dedupe".

ALTER TABLE runs ADD COLUMN dedupe_key TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN dedupe_until INTEGER;

CREATE INDEX runs_dedupe ON runs (routine, dedupe_key, dedupe_until) WHERE dedupe_key <> '';
