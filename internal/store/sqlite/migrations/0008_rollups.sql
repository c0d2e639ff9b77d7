-- Observability (issue 13): what a run and its steps used besides CPU, the
-- trace a run belongs to, the tags of runs as an index for RunList, and
-- the rollups that Stats reads instead of scanning runs.
--
-- usage is the JSON of routine.Usage (gb_seconds, bytes_sent,
-- bytes_received, tokens by model), NULL when it is zero. Times are
-- INTEGER microseconds since the Unix epoch, as in 0001.

ALTER TABLE runs ADD COLUMN usage TEXT;
ALTER TABLE runs ADD COLUMN trace_id TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN parent_span_id TEXT NOT NULL DEFAULT '';
ALTER TABLE step_runs ADD COLUMN usage TEXT;

-- RunList by trigger kind, newest first, walks this index backwards.
CREATE INDEX runs_trigger_queued_at ON runs (trigger_kind, queued_at, id);

-- A run's tags, one row each: RunList by tag, newest first, walks the
-- tag's rows backwards and reads only the runs it returns. Tags are fixed
-- when a run is created, so the trigger that fills it is on INSERT only.
CREATE TABLE run_tags (
    tag       TEXT    NOT NULL,
    queued_at INTEGER NOT NULL,
    id        TEXT    NOT NULL,
    PRIMARY KEY (tag, queued_at, id)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER runs_tags AFTER INSERT ON runs WHEN new.tags IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO run_tags (tag, queued_at, id)
        SELECT value, new.queued_at, new.id FROM json_each(new.tags);
END;

INSERT OR IGNORE INTO run_tags (tag, queued_at, id)
    SELECT t.value, r.queued_at, r.id FROM runs r, json_each(r.tags) t WHERE r.tags IS NOT NULL;

-- Rollups: the runs that ended, summed per routine and per minute (width
-- 60) and per hour (width 3600) of their end, start being a multiple of
-- the width. Minutes make short ranges and the edges of long ones exact;
-- hours keep a month to 720 rows per routine. duration and queue_wait are
-- the counts of a store.Histogram as a JSON array, one per bucket of
-- histogram_bounds and one for what exceeds them all; the sums are in
-- microseconds. Tokens are summed per model in rollup_tokens.
CREATE TABLE rollup_widths (
    width INTEGER NOT NULL PRIMARY KEY
) STRICT;
INSERT INTO rollup_widths (width) VALUES (60), (3600);

-- The upper bounds of the buckets, in microseconds: store.HistogramBounds.
CREATE TABLE histogram_bounds (
    bound INTEGER NOT NULL PRIMARY KEY
) STRICT;
INSERT INTO histogram_bounds (bound) VALUES
    (1000), (2000), (5000), (10000), (20000), (50000), (100000), (200000), (500000),
    (1000000), (2000000), (5000000), (10000000), (20000000), (50000000),
    (100000000), (200000000), (500000000), (1000000000), (2000000000), (5000000000),
    (10000000000), (20000000000), (50000000000);

CREATE TABLE rollups (
    width          INTEGER NOT NULL,
    start          INTEGER NOT NULL,
    routine        TEXT    NOT NULL,
    succeeded      INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    dead           INTEGER NOT NULL DEFAULT 0,
    cancelled      INTEGER NOT NULL DEFAULT 0,
    duration       TEXT    NOT NULL DEFAULT '[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]',
    duration_sum   INTEGER NOT NULL DEFAULT 0,
    queue_wait     TEXT    NOT NULL DEFAULT '[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]',
    queue_wait_sum INTEGER NOT NULL DEFAULT 0,
    cpu_ms         INTEGER NOT NULL DEFAULT 0,
    gb_seconds     REAL    NOT NULL DEFAULT 0,
    bytes_sent     INTEGER NOT NULL DEFAULT 0,
    bytes_received INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (width, start, routine)
) STRICT, WITHOUT ROWID;

CREATE TABLE rollup_tokens (
    width   INTEGER NOT NULL,
    start   INTEGER NOT NULL,
    routine TEXT    NOT NULL,
    model   TEXT    NOT NULL,
    input   INTEGER NOT NULL,
    output  INTEGER NOT NULL,
    PRIMARY KEY (width, start, routine, model)
) STRICT, WITHOUT ROWID;

-- run_end_values is what a run that ended adds to its rollups: when it
-- ended (its finish, else its start, else its queueing: a queued run
-- cancelled), its duration and queue wait with the JSON path of their
-- buckets (NULL when it never started, or never finished), its CPU.
CREATE VIEW run_end_values AS
    SELECT id, routine, state, ended_at, duration,
        '$[' || (SELECT count(*) FROM histogram_bounds WHERE bound < duration) || ']' AS duration_path,
        queue_wait,
        '$[' || (SELECT count(*) FROM histogram_bounds WHERE bound < queue_wait) || ']' AS queue_wait_path,
        cpu_ms, usage
    FROM (SELECT id, routine, state, coalesce(finished_at, started_at, queued_at) AS ended_at,
            max(0, finished_at - started_at) AS duration, max(0, started_at - queued_at) AS queue_wait,
            cpu_user_ms + cpu_sys_ms AS cpu_ms, usage
        FROM runs);

-- A row inserted into run_ends is added to the rollups of its routine, in
-- every width: the one place that sums, which the triggers of runs and
-- the backfill below feed.
CREATE VIEW run_ends AS SELECT * FROM run_end_values WHERE false;

CREATE TRIGGER run_ends_rollup INSTEAD OF INSERT ON run_ends
BEGIN
    INSERT INTO rollups (width, start, routine)
        SELECT width, new.ended_at - new.ended_at % (width * 1000000), new.routine FROM rollup_widths WHERE true
        ON CONFLICT DO NOTHING;
    UPDATE rollups SET
        succeeded = succeeded + (new.state = 'succeeded'),
        failed = failed + (new.state = 'failed'),
        dead = dead + (new.state = 'dead'),
        cancelled = cancelled + (new.state = 'cancelled'),
        duration = iif(new.duration IS NULL, duration,
            json_set(duration, new.duration_path, json_extract(duration, new.duration_path) + 1)),
        duration_sum = duration_sum + coalesce(new.duration, 0),
        queue_wait = iif(new.queue_wait IS NULL, queue_wait,
            json_set(queue_wait, new.queue_wait_path, json_extract(queue_wait, new.queue_wait_path) + 1)),
        queue_wait_sum = queue_wait_sum + coalesce(new.queue_wait, 0),
        cpu_ms = cpu_ms + new.cpu_ms,
        gb_seconds = gb_seconds + coalesce(new.usage ->> '$.gb_seconds', 0),
        bytes_sent = bytes_sent + coalesce(new.usage ->> '$.bytes_sent', 0),
        bytes_received = bytes_received + coalesce(new.usage ->> '$.bytes_received', 0)
    WHERE (width, start, routine) IN
        (SELECT width, new.ended_at - new.ended_at % (width * 1000000), new.routine FROM rollup_widths);
    INSERT INTO rollup_tokens (width, start, routine, model, input, output)
        SELECT w.width, new.ended_at - new.ended_at % (w.width * 1000000), new.routine, t.key,
            coalesce(t.value ->> '$.input', 0), coalesce(t.value ->> '$.output', 0)
        FROM rollup_widths w, json_each(new.usage, '$.tokens') t WHERE new.usage IS NOT NULL
        ON CONFLICT DO UPDATE SET input = input + excluded.input, output = output + excluded.output;
END;

-- A run ends once: when its state becomes final from one that is not (a
-- repeated final write adds nothing), or when it is created final.
CREATE TRIGGER runs_end AFTER UPDATE OF state ON runs
    WHEN new.state IN ('succeeded', 'failed', 'dead', 'cancelled')
        AND old.state NOT IN ('succeeded', 'failed', 'dead', 'cancelled')
BEGIN
    INSERT INTO run_ends SELECT * FROM run_end_values WHERE id = new.id;
END;

CREATE TRIGGER runs_created_ended AFTER INSERT ON runs
    WHEN new.state IN ('succeeded', 'failed', 'dead', 'cancelled')
BEGIN
    INSERT INTO run_ends SELECT * FROM run_end_values WHERE id = new.id;
END;

-- The runs that ended before this migration.
INSERT INTO run_ends SELECT * FROM run_end_values WHERE state IN ('succeeded', 'failed', 'dead', 'cancelled');
