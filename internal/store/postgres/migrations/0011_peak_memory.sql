-- The peak memory of the runs of a rollup row (issue 13: the routines
-- page shows peak memory): the largest max_rss_kb of the runs that ended
-- in it, in KiB, kept by routines_rollup_add as a maximum. Rows of runs
-- that ended before this migration get theirs from the runs still stored.
--
-- As in 0009_rollup_days.sql, no run may end while the migration runs.
LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE;

ALTER TABLE rollups ADD COLUMN max_rss_kb bigint NOT NULL DEFAULT 0;

-- routines_rollup_add (0006_rollups.sql, 0009_rollup_days.sql), reading
-- each run's max_rss_kb and keeping the largest in its rows: its source
-- with four edits, each checked to apply.
DO $$
DECLARE
    v_def text := pg_get_functiondef('routines_rollup_add(text[])'::regprocedure);
    v_edit text[];
BEGIN
    FOREACH v_edit SLICE 1 IN ARRAY ARRAY[
        ['r.cpu_user_ms + r.cpu_sys_ms AS cpu_ms,', 'r.cpu_user_ms + r.cpu_sys_ms AS cpu_ms, r.max_rss_kb,'],
        ['cpu_ms, gb_seconds, bytes_sent, bytes_received)', 'cpu_ms, gb_seconds, bytes_sent, bytes_received, max_rss_kb)'],
        ['coalesce(sum((e.usage ->> ''bytes_received'')::bigint), 0)',
            'coalesce(sum((e.usage ->> ''bytes_received'')::bigint), 0), max(e.max_rss_kb)'],
        ['bytes_received = o.bytes_received + excluded.bytes_received;',
            'bytes_received = o.bytes_received + excluded.bytes_received, max_rss_kb = greatest(o.max_rss_kb, excluded.max_rss_kb);']
    ] LOOP
        IF position(v_edit[1] IN v_def) = 0 THEN
            RAISE EXCEPTION 'routines_rollup_add is not that of 0009_rollup_days.sql: no %', v_edit[1];
        END IF;
        v_def := replace(v_def, v_edit[1], v_edit[2]);
    END LOOP;
    EXECUTE v_def;
END $$;

UPDATE rollups o SET max_rss_kb = m.peak
FROM (
    SELECT w.width, to_timestamp(floor(extract(epoch FROM x.ended_at) / w.width) * w.width) AS start, x.routine,
        max(x.max_rss_kb) AS peak
    FROM (SELECT routine, coalesce(finished_at, started_at, queued_at) AS ended_at, max_rss_kb
        FROM runs WHERE state IN ('succeeded', 'failed', 'dead', 'cancelled')) x
    CROSS JOIN (VALUES (60), (3600), (86400)) AS w(width)
    GROUP BY 1, 2, 3
) m
WHERE o.width = m.width AND o.start = m.start AND o.routine = m.routine;
