-- Rollups summed once per transaction instead of once per run (issue 13:
-- per-run triggers that rewrote two rollup rows, with a JSON histogram
-- each, cost 11 % of the daemon's throughput). A run that ends now only
-- appends what it adds to run_ends; the store sums that table into the
-- rollups and empties it before every commit (foldRunEnds in
-- rollups.go), so a row of it never outlives its transaction, and a
-- write undone alone (a savepoint of a group commit) takes its rows with
-- it.

DROP TRIGGER runs_end;
DROP TRIGGER runs_created_ended;
DROP TRIGGER run_ends_rollup;
DROP VIEW run_ends;
DROP VIEW run_end_values;
DROP TABLE histogram_bounds;

-- The rollups again, with a column per bucket of each histogram instead
-- of a JSON array: adding a sum to a row is then integer additions only.
-- duration_I and queue_wait_I count the durations in bucket I of
-- store.HistogramBounds (the last one: above them all).
CREATE TABLE rollups_by_bucket (
    width          INTEGER NOT NULL,
    start          INTEGER NOT NULL,
    routine        TEXT    NOT NULL,
    succeeded      INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    dead           INTEGER NOT NULL DEFAULT 0,
    cancelled      INTEGER NOT NULL DEFAULT 0,
    duration_sum   INTEGER NOT NULL DEFAULT 0,
    queue_wait_sum INTEGER NOT NULL DEFAULT 0,
    cpu_ms         INTEGER NOT NULL DEFAULT 0,
    gb_seconds     REAL    NOT NULL DEFAULT 0,
    bytes_sent     INTEGER NOT NULL DEFAULT 0,
    bytes_received INTEGER NOT NULL DEFAULT 0,
    duration_0 INTEGER NOT NULL DEFAULT 0, duration_1 INTEGER NOT NULL DEFAULT 0,
    duration_2 INTEGER NOT NULL DEFAULT 0, duration_3 INTEGER NOT NULL DEFAULT 0,
    duration_4 INTEGER NOT NULL DEFAULT 0, duration_5 INTEGER NOT NULL DEFAULT 0,
    duration_6 INTEGER NOT NULL DEFAULT 0, duration_7 INTEGER NOT NULL DEFAULT 0,
    duration_8 INTEGER NOT NULL DEFAULT 0, duration_9 INTEGER NOT NULL DEFAULT 0,
    duration_10 INTEGER NOT NULL DEFAULT 0, duration_11 INTEGER NOT NULL DEFAULT 0,
    duration_12 INTEGER NOT NULL DEFAULT 0, duration_13 INTEGER NOT NULL DEFAULT 0,
    duration_14 INTEGER NOT NULL DEFAULT 0, duration_15 INTEGER NOT NULL DEFAULT 0,
    duration_16 INTEGER NOT NULL DEFAULT 0, duration_17 INTEGER NOT NULL DEFAULT 0,
    duration_18 INTEGER NOT NULL DEFAULT 0, duration_19 INTEGER NOT NULL DEFAULT 0,
    duration_20 INTEGER NOT NULL DEFAULT 0, duration_21 INTEGER NOT NULL DEFAULT 0,
    duration_22 INTEGER NOT NULL DEFAULT 0, duration_23 INTEGER NOT NULL DEFAULT 0,
    duration_24 INTEGER NOT NULL DEFAULT 0,
    queue_wait_0 INTEGER NOT NULL DEFAULT 0, queue_wait_1 INTEGER NOT NULL DEFAULT 0,
    queue_wait_2 INTEGER NOT NULL DEFAULT 0, queue_wait_3 INTEGER NOT NULL DEFAULT 0,
    queue_wait_4 INTEGER NOT NULL DEFAULT 0, queue_wait_5 INTEGER NOT NULL DEFAULT 0,
    queue_wait_6 INTEGER NOT NULL DEFAULT 0, queue_wait_7 INTEGER NOT NULL DEFAULT 0,
    queue_wait_8 INTEGER NOT NULL DEFAULT 0, queue_wait_9 INTEGER NOT NULL DEFAULT 0,
    queue_wait_10 INTEGER NOT NULL DEFAULT 0, queue_wait_11 INTEGER NOT NULL DEFAULT 0,
    queue_wait_12 INTEGER NOT NULL DEFAULT 0, queue_wait_13 INTEGER NOT NULL DEFAULT 0,
    queue_wait_14 INTEGER NOT NULL DEFAULT 0, queue_wait_15 INTEGER NOT NULL DEFAULT 0,
    queue_wait_16 INTEGER NOT NULL DEFAULT 0, queue_wait_17 INTEGER NOT NULL DEFAULT 0,
    queue_wait_18 INTEGER NOT NULL DEFAULT 0, queue_wait_19 INTEGER NOT NULL DEFAULT 0,
    queue_wait_20 INTEGER NOT NULL DEFAULT 0, queue_wait_21 INTEGER NOT NULL DEFAULT 0,
    queue_wait_22 INTEGER NOT NULL DEFAULT 0, queue_wait_23 INTEGER NOT NULL DEFAULT 0,
    queue_wait_24 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (width, start, routine)
) STRICT, WITHOUT ROWID;

INSERT INTO rollups_by_bucket
SELECT width, start, routine, succeeded, failed, dead, cancelled, duration_sum, queue_wait_sum,
    cpu_ms, gb_seconds, bytes_sent, bytes_received,
    duration ->> '$[0]', duration ->> '$[1]', duration ->> '$[2]', duration ->> '$[3]',
    duration ->> '$[4]', duration ->> '$[5]', duration ->> '$[6]', duration ->> '$[7]',
    duration ->> '$[8]', duration ->> '$[9]', duration ->> '$[10]', duration ->> '$[11]',
    duration ->> '$[12]', duration ->> '$[13]', duration ->> '$[14]', duration ->> '$[15]',
    duration ->> '$[16]', duration ->> '$[17]', duration ->> '$[18]', duration ->> '$[19]',
    duration ->> '$[20]', duration ->> '$[21]', duration ->> '$[22]', duration ->> '$[23]',
    duration ->> '$[24]',
    queue_wait ->> '$[0]', queue_wait ->> '$[1]', queue_wait ->> '$[2]', queue_wait ->> '$[3]',
    queue_wait ->> '$[4]', queue_wait ->> '$[5]', queue_wait ->> '$[6]', queue_wait ->> '$[7]',
    queue_wait ->> '$[8]', queue_wait ->> '$[9]', queue_wait ->> '$[10]', queue_wait ->> '$[11]',
    queue_wait ->> '$[12]', queue_wait ->> '$[13]', queue_wait ->> '$[14]', queue_wait ->> '$[15]',
    queue_wait ->> '$[16]', queue_wait ->> '$[17]', queue_wait ->> '$[18]', queue_wait ->> '$[19]',
    queue_wait ->> '$[20]', queue_wait ->> '$[21]', queue_wait ->> '$[22]', queue_wait ->> '$[23]',
    queue_wait ->> '$[24]'
FROM rollups;

DROP TABLE rollups;
ALTER TABLE rollups_by_bucket RENAME TO rollups;
CREATE INDEX rollups_routine ON rollups (width, routine, start);

-- What a run that ended adds to its rollups: when it ended (its finish,
-- else its start, else its queueing: a queued run cancelled), its
-- duration and queue wait in microseconds (NULL when it never finished,
-- or never started), its CPU in milliseconds and its usage (JSON of
-- routine.Usage, NULL when zero).
CREATE TABLE run_ends (
    routine    TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    ended_at   INTEGER NOT NULL,
    duration   INTEGER,
    queue_wait INTEGER,
    cpu_ms     INTEGER NOT NULL,
    usage      TEXT
) STRICT;

-- A run ends once: when its state becomes final from one that is not (a
-- repeated final write adds nothing), or when it is created final.
CREATE TRIGGER runs_end AFTER UPDATE OF state ON runs
    WHEN new.state IN ('succeeded', 'failed', 'dead', 'cancelled')
        AND old.state NOT IN ('succeeded', 'failed', 'dead', 'cancelled')
BEGIN
    INSERT INTO run_ends VALUES (new.routine, new.state,
        coalesce(new.finished_at, new.started_at, new.queued_at),
        max(0, new.finished_at - new.started_at), max(0, new.started_at - new.queued_at),
        new.cpu_user_ms + new.cpu_sys_ms, new.usage);
END;

CREATE TRIGGER runs_created_ended AFTER INSERT ON runs
    WHEN new.state IN ('succeeded', 'failed', 'dead', 'cancelled')
BEGIN
    INSERT INTO run_ends VALUES (new.routine, new.state,
        coalesce(new.finished_at, new.started_at, new.queued_at),
        max(0, new.finished_at - new.started_at), max(0, new.started_at - new.queued_at),
        new.cpu_user_ms + new.cpu_sys_ms, new.usage);
END;
