-- Ceilings of a namespace (docs/teams.md): the most runs of its routines
-- that may be running at once across the fleet (max_running, enforced by
-- routines_claim) and queued (max_queued: a new run past it is refused);
-- 0 for no ceiling.
ALTER TABLE namespaces ADD COLUMN max_running integer NOT NULL DEFAULT 0;
ALTER TABLE namespaces ADD COLUMN max_queued integer NOT NULL DEFAULT 0;

-- The queued runs of a namespace are counted by its routines' names at
-- every check of its max_queued that its estimate cannot answer: a seek
-- per routine, not a walk of the whole backlog. Partial, so that only the
-- creation of a run (and a requeue) writes to it, not a claim nor an end;
-- RunCount writes its states into the statement so that the planner can
-- use it.
CREATE INDEX runs_queued ON runs (routine) WHERE state = 'queued';

-- routines_claim as in 0006_rollups.sql (0005_claim_speed.sql says how it
-- works), with ceilings of groups of routines: p_group_routines[i] is of
-- group p_groups[i], whose ceiling is p_group_ceilings[i] (the runs of a
-- namespace's routines, RunClaimParams.GroupCeilings). A run of a group at
-- its ceiling is skipped with every run of the group, as a routine at its
-- own is. The count of a group's running runs is taken under an advisory
-- lock of the group (class 52540005, beside 52540002 of the routines), so
-- that two claims never both take its last slot. Without any ceiling nor
-- reservation the claim is the one statement it was. The new parameters
-- default to NULL, so that a worker of the version before, which passes
-- twelve, still claims (under no group ceiling) during an upgrade.
DROP FUNCTION routines_claim(p_worker text, p_now timestamptz, p_lease interval, p_limit integer,
        p_ceiling_routines text[], p_ceilings integer[], p_exclude text[], p_region text, p_labels text[],
        p_reserved_routines text[], p_reserved integer[], p_live interval);

-- routines_claim_lock takes the advisory lock (class, hashtext(key)) for
-- the rest of the transaction: waiting for it when wait, else only when
-- it is free at once; it reports whether it holds it.
CREATE FUNCTION routines_claim_lock(p_class integer, p_key text, p_wait boolean) RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    IF p_wait THEN
        PERFORM pg_advisory_xact_lock(p_class, hashtext(p_key));
        RETURN true;
    END IF;
    RETURN pg_try_advisory_xact_lock(p_class, hashtext(p_key));
END $$;

CREATE FUNCTION routines_claim(p_worker text, p_now timestamptz, p_lease interval, p_limit integer,
        p_ceiling_routines text[], p_ceilings integer[], p_exclude text[], p_region text, p_labels text[],
        p_reserved_routines text[], p_reserved integer[], p_live interval,
        p_group_routines text[] DEFAULT NULL, p_groups text[] DEFAULT NULL, p_group_ceilings integer[] DEFAULT NULL)
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
    v_locked    text[] := '{}'; -- routines whose ceiling lock this claim holds
    v_glocked   text[] := '{}'; -- groups whose ceiling lock this claim holds
    v_taken     integer := 0;
    v_contended boolean := false;
    v_routine   text;
    v_ceiling   integer;
    v_busy      integer;
    v_reserving boolean := coalesce(cardinality(p_reserved_routines), 0) > 0;
    v_checking  boolean := coalesce(cardinality(p_ceiling_routines), 0) > 0
                           OR coalesce(cardinality(p_group_routines), 0) > 0;
    v_group     text;
    v_gceiling  integer;
    v_members   text[];    -- the routines of v_group, or v_routine alone
    v_slots     integer;   -- of the live workers
    v_running   integer;   -- running runs that hold a slot
    v_res_busy  integer[]; -- those of p_reserved_routines[i]
    v_unmet     integer;
    v_only      text[];    -- NULL: runs of any routine may be taken
    v_i         integer;
BEGIN
    IF NOT v_checking AND NOT v_reserving THEN
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
        IF v_checking THEN
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
            v_i := array_position(p_group_routines, v_routine);
            v_group := p_groups[v_i];
            v_gceiling := p_group_ceilings[v_i];
            v_members := ARRAY[v_routine];
            IF v_gceiling IS NOT NULL THEN
                v_members := ARRAY(SELECT x.r FROM unnest(p_group_routines, p_groups) AS x(r, g) WHERE x.g = v_group);
                -- The group's lock, then the routine's: only the first
                -- lock of a claim waits, the others are tried, so no two
                -- claims wait for each other.
                IF NOT v_group = ANY (v_glocked) THEN
                    IF NOT routines_claim_lock(x'52540005'::integer, v_group, cardinality(v_locked) + cardinality(v_glocked) = 0) THEN
                        v_skip := v_skip || v_members;
                        v_contended := true;
                        CONTINUE;
                    END IF;
                    v_glocked := v_glocked || v_group;
                END IF;
                SELECT count(*) INTO v_busy FROM runs r
                WHERE r.routine = ANY (v_members) AND r.state = 'running'
                    AND (r.lease_until IS NULL OR r.lease_until > v_now);
                IF v_busy >= v_gceiling THEN
                    v_skip := v_skip || v_members;
                    CONTINUE;
                END IF;
            END IF;
            IF v_ceiling IS NOT NULL THEN
                IF NOT v_routine = ANY (v_locked) THEN
                    IF NOT routines_claim_lock(x'52540002'::integer, v_routine, cardinality(v_locked) + cardinality(v_glocked) = 0) THEN
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
            region = coalesce(p_region, ''), wakes_on_end = v_reserving OR v_ceiling IS NOT NULL OR v_gceiling IS NOT NULL
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
