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

-- routines_rollup_add as in 0006_rollups.sql, adding each run to its day
-- too: it adds the runs p_ids, which ended, to the rollups of their
-- routines: when each ended (its finish, else its start, else its
-- queueing: a queued run cancelled), its state, duration and queue wait
-- (when it started; when it finished too), CPU and usage. One upsert per
-- rollup row, in the order of their keys: the transactions that end runs
-- at once lock the rows they share in the same order, and never deadlock.
CREATE OR REPLACE FUNCTION routines_rollup_add(p_ids text[]) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    WITH e AS (
        SELECT w.width, to_timestamp(floor(extract(epoch FROM x.ended_at) / w.width) * w.width) AS start, x.*
        FROM (SELECT r.routine, r.state, coalesce(r.finished_at, r.started_at, r.queued_at) AS ended_at,
                CASE WHEN r.started_at IS NOT NULL AND r.finished_at IS NOT NULL
                    THEN greatest(0, (extract(epoch FROM r.finished_at - r.started_at) * 1000000)::bigint) END AS duration,
                CASE WHEN r.started_at IS NOT NULL
                    THEN greatest(0, (extract(epoch FROM r.started_at - r.queued_at) * 1000000)::bigint) END AS queue_wait,
                r.cpu_user_ms + r.cpu_sys_ms AS cpu_ms, r.usage::jsonb AS usage
            FROM runs r WHERE r.id = ANY (p_ids)) x
        CROSS JOIN (VALUES (60), (3600), (86400)) AS w(width)
    ), tokens AS (
        INSERT INTO rollup_tokens AS o (width, start, routine, model, input, output)
        SELECT e.width, e.start, e.routine, t.key, sum(coalesce((t.value ->> 'input')::bigint, 0)),
            sum(coalesce((t.value ->> 'output')::bigint, 0))
        FROM e, jsonb_each(e.usage -> 'tokens') AS t
        GROUP BY e.width, e.start, e.routine, t.key
        ORDER BY e.width, e.start, e.routine, t.key
        ON CONFLICT (width, start, routine, model) DO UPDATE SET input = o.input + excluded.input, output = o.output + excluded.output
    )
    INSERT INTO rollups AS o (width, start, routine, succeeded, failed, dead, cancelled, duration, duration_sum,
        queue_wait, queue_wait_sum, cpu_ms, gb_seconds, bytes_sent, bytes_received)
    SELECT e.width, e.start, e.routine,
        count(*) FILTER (WHERE e.state = 'succeeded'), count(*) FILTER (WHERE e.state = 'failed'),
        count(*) FILTER (WHERE e.state = 'dead'), count(*) FILTER (WHERE e.state = 'cancelled'),
        routines_histogram(array_agg(routines_bucket(e.duration)) FILTER (WHERE e.duration IS NOT NULL)),
        coalesce(sum(e.duration), 0),
        routines_histogram(array_agg(routines_bucket(e.queue_wait)) FILTER (WHERE e.queue_wait IS NOT NULL)),
        coalesce(sum(e.queue_wait), 0),
        sum(e.cpu_ms), coalesce(sum((e.usage ->> 'gb_seconds')::double precision), 0),
        coalesce(sum((e.usage ->> 'bytes_sent')::bigint), 0), coalesce(sum((e.usage ->> 'bytes_received')::bigint), 0)
    FROM e
    GROUP BY e.width, e.start, e.routine
    ORDER BY e.width, e.start, e.routine
    ON CONFLICT (width, start, routine) DO UPDATE SET
        succeeded = o.succeeded + excluded.succeeded, failed = o.failed + excluded.failed,
        dead = o.dead + excluded.dead, cancelled = o.cancelled + excluded.cancelled,
        duration = routines_histogram_add(o.duration, excluded.duration),
        duration_sum = o.duration_sum + excluded.duration_sum,
        queue_wait = routines_histogram_add(o.queue_wait, excluded.queue_wait),
        queue_wait_sum = o.queue_wait_sum + excluded.queue_wait_sum,
        cpu_ms = o.cpu_ms + excluded.cpu_ms, gb_seconds = o.gb_seconds + excluded.gb_seconds,
        bytes_sent = o.bytes_sent + excluded.bytes_sent, bytes_received = o.bytes_received + excluded.bytes_received;
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
