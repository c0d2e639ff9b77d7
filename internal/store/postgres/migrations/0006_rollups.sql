-- Observability (issue 13), as in the SQLite driver's 0008_rollups.sql:
-- what a run and its steps used besides CPU, the trace a run belongs to,
-- the tags of runs as an index for RunList, and the rollups that Stats
-- reads instead of scanning runs.
--
-- usage is the JSON text of routine.Usage, NULL when it is zero.

ALTER TABLE runs ADD COLUMN usage text;
ALTER TABLE runs ADD COLUMN trace_id text NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN parent_span_id text NOT NULL DEFAULT '';
ALTER TABLE step_runs ADD COLUMN usage text;

-- RunList by trigger kind or by final state, newest first, walks one of
-- these backwards (runs_claim has the queued and running runs only).
CREATE INDEX runs_trigger_queued_at ON runs (trigger_kind, queued_at, id);
CREATE INDEX runs_state_queued_at ON runs (state, queued_at, id);

-- A run's tags, one row each: RunList by tag, newest first, walks the
-- tag's rows backwards and reads only the runs it returns. Tags are fixed
-- when a run is created, so the trigger that fills it is on INSERT only.
CREATE TABLE run_tags (
    tag       text        NOT NULL,
    queued_at timestamptz NOT NULL,
    id        text COLLATE "C" NOT NULL,
    PRIMARY KEY (tag, queued_at, id)
);

CREATE FUNCTION routines_tag() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_tags (tag, queued_at, id)
    SELECT DISTINCT t.tag, NEW.queued_at, NEW.id FROM jsonb_array_elements_text(NEW.tags::jsonb) AS t(tag)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER runs_tags AFTER INSERT ON runs
    FOR EACH ROW WHEN (NEW.tags IS NOT NULL)
    EXECUTE FUNCTION routines_tag();

INSERT INTO run_tags (tag, queued_at, id)
SELECT DISTINCT t.tag, r.queued_at, r.id FROM runs r, jsonb_array_elements_text(r.tags::jsonb) AS t(tag)
WHERE r.tags IS NOT NULL
ON CONFLICT DO NOTHING;

-- Rollups: the runs that ended, summed per routine and per minute (width
-- 60) and per hour (width 3600) of their end, start being a multiple of
-- the width since the Unix epoch. Minutes make short ranges and the edges
-- of long ones exact; hours keep a month to 720 rows per routine.
-- duration and queue_wait are the counts of a store.Histogram, one per
-- bucket of routines_bucket and one for what exceeds them all; the sums
-- are in microseconds. Tokens are summed per model in rollup_tokens.
CREATE TABLE rollups (
    width          integer          NOT NULL,
    start          timestamptz      NOT NULL,
    routine        text             NOT NULL,
    succeeded      bigint           NOT NULL DEFAULT 0,
    failed         bigint           NOT NULL DEFAULT 0,
    dead           bigint           NOT NULL DEFAULT 0,
    cancelled      bigint           NOT NULL DEFAULT 0,
    duration       bigint[]         NOT NULL,
    duration_sum   bigint           NOT NULL DEFAULT 0,
    queue_wait     bigint[]         NOT NULL,
    queue_wait_sum bigint           NOT NULL DEFAULT 0,
    cpu_ms         bigint           NOT NULL DEFAULT 0,
    gb_seconds     double precision NOT NULL DEFAULT 0,
    bytes_sent     bigint           NOT NULL DEFAULT 0,
    bytes_received bigint           NOT NULL DEFAULT 0,
    PRIMARY KEY (width, start, routine)
);

CREATE TABLE rollup_tokens (
    width   integer     NOT NULL,
    start   timestamptz NOT NULL,
    routine text        NOT NULL,
    model   text        NOT NULL,
    input   bigint      NOT NULL,
    output  bigint      NOT NULL,
    PRIMARY KEY (width, start, routine, model)
);

-- routines_bucket is the index (1-based) of the bucket of a histogram that
-- counts p_us microseconds: the upper bounds are store.HistogramBounds.
CREATE FUNCTION routines_bucket(p_us bigint) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_bounds CONSTANT bigint[] := '{1000,2000,5000,10000,20000,50000,100000,200000,500000,1000000,2000000,5000000,10000000,20000000,50000000,100000000,200000000,500000000,1000000000,2000000000,5000000000,10000000000,20000000000,50000000000}';
    v_i integer := 1;
BEGIN
    WHILE v_i <= cardinality(v_bounds) AND v_bounds[v_i] < p_us LOOP
        v_i := v_i + 1;
    END LOOP;
    RETURN v_i;
END $$;

-- routines_histogram counts the bucket indexes p_buckets (NULL: none) in
-- the 25 buckets of a histogram.
CREATE FUNCTION routines_histogram(p_buckets integer[]) RETURNS bigint[]
    LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_counts bigint[] := array_fill(0::bigint, ARRAY[25]);
    v_b integer;
BEGIN
    FOREACH v_b IN ARRAY coalesce(p_buckets, '{}') LOOP
        v_counts[v_b] := v_counts[v_b] + 1;
    END LOOP;
    RETURN v_counts;
END $$;

-- routines_histogram_add adds two histograms' counts.
CREATE FUNCTION routines_histogram_add(p_a bigint[], p_b bigint[]) RETURNS bigint[]
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    FOR v_i IN 1 .. cardinality(p_a) LOOP
        p_a[v_i] := p_a[v_i] + p_b[v_i];
    END LOOP;
    RETURN p_a;
END $$;

-- routines_rollup_add adds the runs p_ids, which ended, to the rollups of
-- their routines: when each ended (its finish, else its start, else its
-- queueing: a queued run cancelled), its state, duration and queue wait
-- (when it started; when it finished too), CPU and usage. One upsert per
-- rollup row, in the order of their keys: the transactions that end runs
-- at once lock the rows they share in the same order, and never deadlock.
CREATE FUNCTION routines_rollup_add(p_ids text[]) RETURNS void
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
        CROSS JOIN (VALUES (60), (3600)) AS w(width)
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

-- A run ends once: when its state becomes final from one that is not (a
-- repeated final write adds nothing), or when it is created final. The
-- triggers are per statement, over the rows it wrote, so that a
-- checkpoint of many runs adds them in one upsert (in key order, see
-- routines_rollup_add). OLD is the row as the update found it once it held
-- its lock: of concurrent writes that end a run, only the first sees it
-- not final.
CREATE FUNCTION routines_runs_ended() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    v_ids text[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_ids := ARRAY(SELECT n.id FROM new_runs n WHERE n.state IN ('succeeded', 'failed', 'dead', 'cancelled'));
    ELSE
        v_ids := ARRAY(SELECT n.id FROM new_runs n JOIN old_runs o ON o.id = n.id
            WHERE n.state IN ('succeeded', 'failed', 'dead', 'cancelled')
                AND o.state NOT IN ('succeeded', 'failed', 'dead', 'cancelled'));
    END IF;
    IF cardinality(v_ids) > 0 THEN
        PERFORM routines_rollup_add(v_ids);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER runs_end AFTER UPDATE ON runs
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION routines_runs_ended();
CREATE TRIGGER runs_created_ended AFTER INSERT ON runs
    REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION routines_runs_ended();

-- The runs that ended before this migration.
SELECT routines_rollup_add(ARRAY(SELECT id FROM runs WHERE state IN ('succeeded', 'failed', 'dead', 'cancelled')));

-- routines_claim as in 0005_claim_speed.sql, which says how it works,
-- returning the run's usage and trace too.
DROP FUNCTION routines_claim(p_worker text, p_now timestamptz, p_lease interval, p_limit integer,
        p_ceiling_routines text[], p_ceilings integer[], p_exclude text[], p_region text, p_labels text[],
        p_reserved_routines text[], p_reserved integer[], p_live interval);

CREATE FUNCTION routines_claim(p_worker text, p_now timestamptz, p_lease interval, p_limit integer,
        p_ceiling_routines text[], p_ceilings integer[], p_exclude text[], p_region text, p_labels text[],
        p_reserved_routines text[], p_reserved integer[], p_live interval)
    RETURNS TABLE (id text, routine text, revision text, trigger_kind text, trigger_payload bytea,
        input text, tags text, state text, attempt integer, queued_at timestamptz,
        started_at timestamptz, finished_at timestamptz, worker text, region text,
        cpu_user_ms bigint, cpu_sys_ms bigint, max_rss_kb bigint, error text, replay_of text,
        req_region text, req_labels text[], usage text, trace_id text, parent_span_id text, taken_from text)
    LANGUAGE plpgsql
    SET enable_sort = off
    -- enable_sort = off prices the sort of the runs taken (a few dozen
    -- rows) so high that PostgreSQL would compile the statement with JIT,
    -- for a second, at every claim.
    SET jit = off
    AS $$
DECLARE
    v_now       timestamptz := coalesce(p_now, now());
    v_labels    text[] := coalesce(p_labels, '{}');
    v_skip      text[] := coalesce(p_exclude, '{}');
    v_locked    text[] := '{}';
    v_taken     integer := 0;
    v_contended boolean := false;
    v_routine   text;
    v_ceiling   integer;
    v_busy      integer;
    v_reserving boolean := coalesce(cardinality(p_reserved_routines), 0) > 0;
    v_slots     integer;   -- of the live workers
    v_running   integer;   -- running runs that hold a slot
    v_res_busy  integer[]; -- those of p_reserved_routines[i]
    v_unmet     integer;
    v_only      text[];    -- NULL: runs of any routine may be taken
    v_i         integer;
BEGIN
    IF coalesce(cardinality(p_ceiling_routines), 0) = 0 AND NOT v_reserving THEN
        -- The oldest claimable runs, in one statement. The sort is of
        -- the runs taken, which the index walk found in order already.
        RETURN QUERY
        WITH pick AS (
            SELECT c.id, CASE WHEN c.state = 'running' THEN c.worker ELSE '' END AS taken_from FROM runs c
            WHERE c.state IN ('queued', 'running')
                AND ((c.state = 'queued' AND (c.not_before IS NULL OR c.not_before <= v_now))
                    OR (c.state = 'running' AND c.lease_until <= v_now))
                AND c.routine <> ALL (v_skip)
                AND (p_region IS NULL OR ((c.req_region = '' OR c.req_region = p_region) AND c.req_labels <@ v_labels))
            ORDER BY c.queued_at, c.id LIMIT greatest(p_limit, 1)
            FOR UPDATE SKIP LOCKED
        ), taken AS (
            -- By primary key: joined to pick, the planner of a generic
            -- plan, which cannot tell how many runs pick holds, may walk
            -- the whole table.
            UPDATE runs r SET state = 'running', worker = p_worker, lease_until = v_now + p_lease, not_before = NULL,
                region = coalesce(p_region, ''), wakes_on_end = false
            WHERE r.id = ANY (ARRAY(SELECT pick.id FROM pick))
            RETURNING r.id, r.routine, r.revision, r.trigger_kind, r.trigger_payload, r.input, r.tags, r.state,
                r.attempt, r.queued_at, r.started_at, r.finished_at, r.worker, r.region, r.cpu_user_ms,
                r.cpu_sys_ms, r.max_rss_kb, r.error, r.replay_of, r.req_region, r.req_labels, r.usage, r.trace_id,
                r.parent_span_id
        )
        SELECT t.id, t.routine, t.revision, t.trigger_kind, t.trigger_payload, t.input, t.tags, t.state,
            t.attempt, t.queued_at, t.started_at, t.finished_at, t.worker, t.region, t.cpu_user_ms,
            t.cpu_sys_ms, t.max_rss_kb, t.error, t.replay_of, t.req_region, t.req_labels, t.usage, t.trace_id,
            t.parent_span_id, pick.taken_from
        FROM taken t JOIN pick ON pick.id = t.id ORDER BY t.queued_at, t.id;
        RETURN;
    END IF;
    IF v_reserving THEN
        PERFORM pg_advisory_xact_lock(x'52540004'::integer, 0);
        SELECT coalesce(sum(w.slots), 0) INTO v_slots FROM workers w WHERE w.beat_at > v_now - p_live;
        SELECT count(*) INTO v_running FROM runs r
        WHERE r.state = 'running' AND (r.lease_until IS NULL OR r.lease_until > v_now);
        SELECT array_agg((SELECT count(*) FROM runs r WHERE r.routine = x.name AND r.state = 'running'
                AND (r.lease_until IS NULL OR r.lease_until > v_now))::integer ORDER BY x.i)
            INTO v_res_busy FROM unnest(p_reserved_routines) WITH ORDINALITY AS x(name, i);
    END IF;
    WHILE v_taken < greatest(p_limit, 1) LOOP
        v_routine := NULL;
        v_only := NULL;
        IF v_reserving THEN
            v_unmet := 0;
            v_only := '{}';
            FOR v_i IN 1 .. cardinality(p_reserved_routines) LOOP
                IF p_reserved[v_i] > v_res_busy[v_i] THEN
                    v_unmet := v_unmet + p_reserved[v_i] - v_res_busy[v_i];
                    v_only := v_only || p_reserved_routines[v_i];
                END IF;
            END LOOP;
            IF v_slots - v_running > v_unmet THEN
                v_only := NULL;
            END IF;
            EXIT WHEN cardinality(v_only) = 0;
        END IF;
        IF cardinality(p_ceiling_routines) > 0 THEN
            SELECT r.routine INTO v_routine FROM runs r
            WHERE r.state IN ('queued', 'running')
                AND ((r.state = 'queued' AND (r.not_before IS NULL OR r.not_before <= v_now))
                    OR (r.state = 'running' AND r.lease_until <= v_now))
                AND r.routine <> ALL (v_skip)
                AND (v_only IS NULL OR r.routine = ANY (v_only))
                AND (p_region IS NULL OR ((r.req_region = '' OR r.req_region = p_region) AND r.req_labels <@ v_labels))
            ORDER BY r.queued_at, r.id LIMIT 1;
            EXIT WHEN NOT FOUND;
            v_ceiling := p_ceilings[array_position(p_ceiling_routines, v_routine)];
            IF v_ceiling IS NOT NULL THEN
                IF NOT v_routine = ANY (v_locked) THEN
                    IF cardinality(v_locked) = 0 THEN
                        PERFORM pg_advisory_xact_lock(x'52540002'::integer, hashtext(v_routine));
                    ELSIF NOT pg_try_advisory_xact_lock(x'52540002'::integer, hashtext(v_routine)) THEN
                        v_skip := v_skip || v_routine;
                        v_contended := true;
                        CONTINUE;
                    END IF;
                    v_locked := v_locked || v_routine;
                END IF;
                SELECT count(*) INTO v_busy FROM runs r
                WHERE r.routine = v_routine AND r.state = 'running'
                    AND (r.lease_until IS NULL OR r.lease_until > v_now);
                IF v_busy >= v_ceiling THEN
                    v_skip := v_skip || v_routine;
                    CONTINUE;
                END IF;
            END IF;
        END IF;
        UPDATE runs r SET state = 'running', worker = p_worker, lease_until = v_now + p_lease, not_before = NULL,
            region = coalesce(p_region, ''), wakes_on_end = v_reserving OR v_ceiling IS NOT NULL
        FROM (SELECT c.id, CASE WHEN c.state = 'running' THEN c.worker ELSE '' END AS taken_from FROM runs c
            WHERE c.state IN ('queued', 'running')
                AND ((c.state = 'queued' AND (c.not_before IS NULL OR c.not_before <= v_now))
                    OR (c.state = 'running' AND c.lease_until <= v_now))
                AND c.routine <> ALL (v_skip)
                AND (v_routine IS NULL OR c.routine = v_routine)
                AND (v_only IS NULL OR c.routine = ANY (v_only))
                AND (p_region IS NULL OR ((c.req_region = '' OR c.req_region = p_region) AND c.req_labels <@ v_labels))
            ORDER BY c.queued_at, c.id LIMIT 1
            FOR UPDATE SKIP LOCKED) pick
        WHERE r.id = pick.id
        RETURNING r.id, r.routine, r.revision, r.trigger_kind, r.trigger_payload, r.input, r.tags, r.state,
            r.attempt, r.queued_at, r.started_at, r.finished_at, r.worker, r.region, r.cpu_user_ms,
            r.cpu_sys_ms, r.max_rss_kb, r.error, r.replay_of, r.req_region, r.req_labels, r.usage, r.trace_id,
            r.parent_span_id, pick.taken_from
        INTO id, routine, revision, trigger_kind, trigger_payload, input, tags, state, attempt, queued_at,
            started_at, finished_at, worker, region, cpu_user_ms, cpu_sys_ms, max_rss_kb, error, replay_of,
            req_region, req_labels, usage, trace_id, parent_span_id, taken_from;
        IF NOT FOUND THEN
            EXIT WHEN v_routine IS NULL;
            v_skip := v_skip || v_routine;
            CONTINUE;
        END IF;
        RETURN NEXT;
        v_taken := v_taken + 1;
        IF v_reserving THEN
            v_running := v_running + 1;
            v_i := array_position(p_reserved_routines, routine);
            IF v_i IS NOT NULL THEN
                v_res_busy[v_i] := v_res_busy[v_i] + 1;
            END IF;
        END IF;
    END LOOP;
    IF v_contended THEN
        PERFORM pg_notify('routines_wake', '');
    END IF;
END $$;
