-- Day rollups, as PostgreSQL keeps them (its 0009_rollup_days.sql): a
-- month of stats reads 30 day rows of a routine instead of 720 hours
-- (store.PlanStats reads days for the whole days of a range, hours for
-- the whole hours at its edges, minutes for the rest). The fold adds each
-- run end to its day from now on (rollup_widths lists the widths it
-- keeps); the days of the runs that ended before are summed from their
-- hours. No run end waits in run_ends here: each transaction folds its
-- own before it commits. Retention keeps day rows: one a routine a day.
INSERT INTO rollup_widths (width) VALUES (86400);

INSERT INTO rollups (width, start, routine,
    succeeded, failed, dead, cancelled, duration_sum, queue_wait_sum, cpu_ms,
    gb_seconds, bytes_sent, bytes_received, duration_0, duration_1,
    duration_2, duration_3, duration_4, duration_5, duration_6, duration_7,
    duration_8, duration_9, duration_10, duration_11, duration_12,
    duration_13, duration_14, duration_15, duration_16, duration_17,
    duration_18, duration_19, duration_20, duration_21, duration_22,
    duration_23, duration_24, queue_wait_0, queue_wait_1, queue_wait_2,
    queue_wait_3, queue_wait_4, queue_wait_5, queue_wait_6, queue_wait_7,
    queue_wait_8, queue_wait_9, queue_wait_10, queue_wait_11, queue_wait_12,
    queue_wait_13, queue_wait_14, queue_wait_15, queue_wait_16,
    queue_wait_17, queue_wait_18, queue_wait_19, queue_wait_20,
    queue_wait_21, queue_wait_22, queue_wait_23, queue_wait_24,
    max_rss_kb)
SELECT 86400, start - start % 86400000000 AS day, routine,
    sum(succeeded), sum(failed), sum(dead), sum(cancelled),
    sum(duration_sum), sum(queue_wait_sum), sum(cpu_ms), sum(gb_seconds),
    sum(bytes_sent), sum(bytes_received), sum(duration_0), sum(duration_1),
    sum(duration_2), sum(duration_3), sum(duration_4), sum(duration_5),
    sum(duration_6), sum(duration_7), sum(duration_8), sum(duration_9),
    sum(duration_10), sum(duration_11), sum(duration_12), sum(duration_13),
    sum(duration_14), sum(duration_15), sum(duration_16), sum(duration_17),
    sum(duration_18), sum(duration_19), sum(duration_20), sum(duration_21),
    sum(duration_22), sum(duration_23), sum(duration_24), sum(queue_wait_0),
    sum(queue_wait_1), sum(queue_wait_2), sum(queue_wait_3),
    sum(queue_wait_4), sum(queue_wait_5), sum(queue_wait_6),
    sum(queue_wait_7), sum(queue_wait_8), sum(queue_wait_9),
    sum(queue_wait_10), sum(queue_wait_11), sum(queue_wait_12),
    sum(queue_wait_13), sum(queue_wait_14), sum(queue_wait_15),
    sum(queue_wait_16), sum(queue_wait_17), sum(queue_wait_18),
    sum(queue_wait_19), sum(queue_wait_20), sum(queue_wait_21),
    sum(queue_wait_22), sum(queue_wait_23), sum(queue_wait_24),
    max(max_rss_kb)
FROM rollups WHERE width = 3600
GROUP BY day, routine;

INSERT INTO rollup_tokens (width, start, routine, model, input, output)
SELECT 86400, start - start % 86400000000 AS day, routine, model, sum(input), sum(output)
FROM rollup_tokens WHERE width = 3600
GROUP BY day, routine, model;
