-- Placement (remote mode): what a worker must have to claim a run, and the
-- registry of the workers of a deployment, which reservations count on.
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
-- twice nor runs a routine past its ceiling), with two additions.
--
-- Placement. When p_region is not NULL, the claim takes only the runs
-- whose requirements a worker of region p_region and labels p_labels
-- meets, and records p_region as where they run. The requirements are a
-- filter of the walk of runs_claim, as the state and the routine are: a
-- run that requires nothing passes it at once, so the common claim walks
-- as it did; a run the worker cannot take is stepped over, and holds back
-- none after it.
--
-- Reservations across the fleet. When p_reserved_routines is not empty
-- (p_reserved[i] slots reserved for p_reserved_routines[i]), the claim
-- takes a run of a routine whose reservation is unmet (fewer running runs
-- than reserved), and a run of another routine only while the fleet's
-- free slots outnumber the unmet reservations: its slots are those of the
-- workers that beat within p_live, its busy slots its running runs that
-- hold a slot (as ceilings count them). Claims with reservations take
-- turns under the advisory lock 0x52540004 (one key), taken before any
-- other lock, and count after it, each count a statement of its own (as
-- ceilings are counted, and for the same reason); then they count what
-- they take themselves. A claim without reservations takes no such lock
-- and counts nothing. Waiting for a routine's lock while holding this one
-- cannot deadlock: whoever holds a routine's lock either took this one
-- first (so it is not held here) or never waits for it.
DROP FUNCTION routines_claim(text, timestamptz, interval, integer, text[], integer[], text[]);
CREATE FUNCTION routines_claim(p_worker text, p_now timestamptz, p_lease interval, p_limit integer,
        p_ceiling_routines text[], p_ceilings integer[], p_exclude text[], p_region text, p_labels text[],
        p_reserved_routines text[], p_reserved integer[], p_live interval)
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
    v_reserving boolean := cardinality(p_reserved_routines) > 0;
    v_slots     integer;   -- of the live workers
    v_running   integer;   -- running runs that hold a slot
    v_res_busy  integer[]; -- those of p_reserved_routines[i]
    v_unmet     integer;
    v_only      text[];    -- NULL: runs of any routine may be taken
    v_i         integer;
BEGIN
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
            region = coalesce(p_region, '')
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
