-- The peak memory of the runs of a rollup row (issue 13: the routines
-- page shows peak memory): the largest max_rss_kb of the runs that ended
-- in it, in KiB, kept by foldRunEnds as a maximum. Rows of runs that
-- ended before this migration get theirs from the runs still stored.

ALTER TABLE rollups ADD COLUMN max_rss_kb INTEGER NOT NULL DEFAULT 0;
ALTER TABLE run_ends ADD COLUMN max_rss_kb INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER runs_end;
DROP TRIGGER runs_created_ended;

CREATE TRIGGER runs_end AFTER UPDATE OF state ON runs
    WHEN new.state IN ('succeeded', 'failed', 'dead', 'cancelled')
        AND old.state NOT IN ('succeeded', 'failed', 'dead', 'cancelled')
BEGIN
    INSERT INTO run_ends VALUES (new.routine, new.state,
        coalesce(new.finished_at, new.started_at, new.queued_at),
        max(0, new.finished_at - new.started_at), max(0, new.started_at - new.queued_at),
        new.cpu_user_ms + new.cpu_sys_ms, new.usage, new.max_rss_kb);
END;

CREATE TRIGGER runs_created_ended AFTER INSERT ON runs
    WHEN new.state IN ('succeeded', 'failed', 'dead', 'cancelled')
BEGIN
    INSERT INTO run_ends VALUES (new.routine, new.state,
        coalesce(new.finished_at, new.started_at, new.queued_at),
        max(0, new.finished_at - new.started_at), max(0, new.started_at - new.queued_at),
        new.cpu_user_ms + new.cpu_sys_ms, new.usage, new.max_rss_kb);
END;

UPDATE rollups SET max_rss_kb = coalesce((
    SELECT max(r.max_rss_kb) FROM runs r
    WHERE r.routine = rollups.routine AND r.state IN ('succeeded', 'failed', 'dead', 'cancelled')
        AND coalesce(r.finished_at, r.started_at, r.queued_at) >= rollups.start
        AND coalesce(r.finished_at, r.started_at, r.queued_at) < rollups.start + rollups.width * 1000000), 0);
