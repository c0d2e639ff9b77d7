-- Day rollups (width 86400), beside the minutes and hours of
-- 0006_rollups.sql: Stats of a month reads 30 rows per routine instead of
-- 720 (store.PlanStats reads days for the whole days of a range, hours and
-- minutes at its edges).
--
-- No run may end while the migration runs: a run ended between the
-- backfill below and the new routines_rollup_add would miss its day. The
-- lock waits for the transactions writing runs, whose ends the backfill
-- then sees, and holds off the others until the migration commits.
LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE;

-- routines_rollup_add of 0006_rollups.sql, which says how it works, adding
-- each run to its day too: its source with a third width. The source is
-- kept as it was written, so the replacement finds it (or fails here).
DO $$
DECLARE
    v_def text := pg_get_functiondef('routines_rollup_add(text[])'::regprocedure);
BEGIN
    IF position('(VALUES (60), (3600))' IN v_def) = 0 THEN
        RAISE EXCEPTION 'routines_rollup_add is not that of 0006_rollups.sql: its widths are not (VALUES (60), (3600))';
    END IF;
    EXECUTE replace(v_def, '(VALUES (60), (3600))', '(VALUES (60), (3600), (86400))');
END $$;

-- The days of the runs that ended before this migration, summed from
-- their hours.
CREATE AGGREGATE routines_histogram_sum(bigint[]) (
    SFUNC = routines_histogram_add, STYPE = bigint[], INITCOND = '{0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0}'
);

INSERT INTO rollups (width, start, routine, succeeded, failed, dead, cancelled, duration, duration_sum,
    queue_wait, queue_wait_sum, cpu_ms, gb_seconds, bytes_sent, bytes_received)
SELECT 86400, to_timestamp(floor(extract(epoch FROM h.start) / 86400) * 86400) AS day, h.routine,
    sum(h.succeeded), sum(h.failed), sum(h.dead), sum(h.cancelled),
    routines_histogram_sum(h.duration), sum(h.duration_sum), routines_histogram_sum(h.queue_wait), sum(h.queue_wait_sum),
    sum(h.cpu_ms), sum(h.gb_seconds), sum(h.bytes_sent), sum(h.bytes_received)
FROM rollups h WHERE h.width = 3600
GROUP BY day, h.routine;

INSERT INTO rollup_tokens (width, start, routine, model, input, output)
SELECT 86400, to_timestamp(floor(extract(epoch FROM h.start) / 86400) * 86400) AS day, h.routine, h.model,
    sum(h.input), sum(h.output)
FROM rollup_tokens h WHERE h.width = 3600
GROUP BY day, h.routine, h.model;

DROP AGGREGATE routines_histogram_sum(bigint[]);
