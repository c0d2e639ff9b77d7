-- Placement (remote mode): what a worker must have to claim a run, and the
-- registry of the workers of a deployment.
--
-- A run requires the region and labels its routine had when it was queued:
-- req_region '' is any region; req_labels is a JSON list of labels, sorted,
-- NULL for none. A claim walks runs_claim, which gains them so that the
-- walk still never reads the table.
ALTER TABLE runs ADD COLUMN req_region TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN req_labels TEXT;
DROP INDEX runs_claim;
CREATE INDEX runs_claim ON runs (state, queued_at, id, routine, not_before, req_region, req_labels);

-- Each worker beats every few seconds; one whose last beat is old is not
-- live. labels is a JSON list, NULL for none. Times are INTEGER
-- microseconds since the Unix epoch, as in 0001.
CREATE TABLE workers (
    id         TEXT    NOT NULL PRIMARY KEY,
    region     TEXT    NOT NULL,
    labels     TEXT,
    slots      INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    beat_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX workers_beat_at ON workers (beat_at);
