-- Placement (remote mode): what a worker must have to claim a run, and the
-- registry of the workers of a deployment.
--
-- A run requires the region and labels its routine had when it was queued:
-- req_region '' is any region, req_labels '{}' no label (labels sorted,
-- each once). Added with constant defaults, the columns cost no rewrite of
-- the table.
ALTER TABLE runs
    ADD COLUMN req_region text   NOT NULL DEFAULT '',
    ADD COLUMN req_labels text[] NOT NULL DEFAULT '{}';

-- Each worker beats every few seconds; one whose last beat is old is not
-- live.
CREATE TABLE workers (
    id         text        NOT NULL PRIMARY KEY,
    region     text        NOT NULL,
    labels     text[]      NOT NULL,
    slots      integer     NOT NULL,
    started_at timestamptz NOT NULL,
    beat_at    timestamptz NOT NULL
);
CREATE INDEX workers_beat_at ON workers (beat_at);

-- routines_claim as in 0001_init.sql (which says why it never gives a run
-- twice nor runs a routine past its ceiling), and with a placement: when
-- p_region is not NULL, the claim takes only the runs whose requirements a
-- worker of region p_region and labels p_labels meets, and records
-- p_region as where they run. The requirements are a filter of the walk
-- of runs_claim, as the state and the routine are: a run that requires
-- nothing passes it at once, so the common claim walks as it did; a run
-- the worker cannot take is stepped over, and holds back none after it.
DROP FUNCTION routines_claim(text, timestamptz, interval, integer, text[], integer[], text[]);
CREATE FUNCTION routines_claim(p_worker text, p_now timestamptz, p_lease interval, p_limit integer,
        p_ceiling_routines text[], p_ceilings integer[], p_exclude text[], p_region text, p_labels text[])
    RETURNS TABLE (id text, routine text, revision text, trigger_kind text, trigger_payload bytea,
        input text, tags text, state text, attempt integer, queued_at timestamptz,
        started_at timestamptz, finished_at timestamptz, worker text, region text,
        cpu_user_ms bigint, cpu_sys_ms bigint, max_rss_kb bigint, error text, replay_of text,
        req_region text, req_labels text[], taken_from text)
    LANGUAGE plpgsql
    SET enable_sort = off
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
BEGIN
    WHILE v_taken < greatest(p_limit, 1) LOOP
        v_routine := NULL;
        IF cardinality(p_ceiling_routines) > 0 THEN
            SELECT r.routine INTO v_routine FROM runs r
            WHERE r.state IN ('queued', 'running')
                AND ((r.state = 'queued' AND (r.not_before IS NULL OR r.not_before <= v_now))
                    OR (r.state = 'running' AND r.lease_until <= v_now))
                AND r.routine <> ALL (v_skip)
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
            region = coalesce(p_region, '')
        FROM (SELECT c.id, CASE WHEN c.state = 'running' THEN c.worker ELSE '' END AS taken_from FROM runs c
            WHERE c.state IN ('queued', 'running')
                AND ((c.state = 'queued' AND (c.not_before IS NULL OR c.not_before <= v_now))
                    OR (c.state = 'running' AND c.lease_until <= v_now))
                AND c.routine <> ALL (v_skip)
                AND (v_routine IS NULL OR c.routine = v_routine)
                AND (p_region IS NULL OR ((c.req_region = '' OR c.req_region = p_region) AND c.req_labels <@ v_labels))
            ORDER BY c.queued_at, c.id LIMIT 1
            FOR UPDATE SKIP LOCKED) pick
        WHERE r.id = pick.id
        RETURNING r.id, r.routine, r.revision, r.trigger_kind, r.trigger_payload, r.input, r.tags, r.state,
            r.attempt, r.queued_at, r.started_at, r.finished_at, r.worker, r.region, r.cpu_user_ms,
            r.cpu_sys_ms, r.max_rss_kb, r.error, r.replay_of, r.req_region, r.req_labels, pick.taken_from
        INTO id, routine, revision, trigger_kind, trigger_payload, input, tags, state, attempt, queued_at,
            started_at, finished_at, worker, region, cpu_user_ms, cpu_sys_ms, max_rss_kb, error, replay_of,
            req_region, req_labels, taken_from;
        IF NOT FOUND THEN
            EXIT WHEN v_routine IS NULL;
            v_skip := v_skip || v_routine;
            CONTINUE;
        END IF;
        RETURN NEXT;
        v_taken := v_taken + 1;
    END LOOP;
    IF v_contended THEN
        PERFORM pg_notify('routines_wake', '');
    END IF;
END $$;
