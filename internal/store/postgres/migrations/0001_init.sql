-- The schema of the PostgreSQL store: the tables of the SQLite driver in
-- PostgreSQL's types, the functions that make a claim and a put of state
-- one statement each, the guards of writes by a run's worker, and the
-- trigger that sends wake-ups.
--
-- Times are timestamptz: microseconds, as the SQLite driver keeps them.
-- JSON the store does not look into (input, tags, outputs, errors) is text,
-- read back as written. Bytes that may be anything are bytea, since text
-- holds neither NUL nor invalid UTF-8: a trigger's payload (JSON that Go
-- lets through with invalid UTF-8 in its strings), log lines, state values.
-- Run ids sort bytewise (COLLATE "C") whatever the database's collation,
-- so that newest first, FIFO and prefix look-ups agree with SQLite's.
--
-- Advisory locks, in the two-key form (class, hashtext(name)), by class:
--   0x52540001  migrations (held by Open while it migrates)
--   0x52540002  a routine's ceiling (routines_claim)
--   0x52540003  a routine's dedupe key (RunCreateDeduped)
-- A collision of hashes only makes two names wait for each other.

CREATE TABLE runs (
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    routine         text        NOT NULL,
    revision        text        NOT NULL,
    trigger_kind    text        NOT NULL,
    trigger_payload bytea,
    input           text,
    tags            text,
    state           text        NOT NULL,
    attempt         integer     NOT NULL,
    queued_at       timestamptz NOT NULL,
    started_at      timestamptz,
    finished_at     timestamptz,
    worker          text        NOT NULL,
    region          text        NOT NULL,
    cpu_user_ms     bigint      NOT NULL,
    cpu_sys_ms      bigint      NOT NULL,
    max_rss_kb      bigint      NOT NULL,
    error           text,
    replay_of       text        NOT NULL,
    -- The queue: a queued run may wait for a time (not_before), and a
    -- claimed run is leased to its worker until lease_until. NULL is
    -- "none": claimable at once, or not leased (run in the foreground).
    not_before      timestamptz,
    lease_until     timestamptz,
    -- Dedupe: '' and NULL are none.
    dedupe_key      text        NOT NULL DEFAULT '',
    dedupe_until    timestamptz
);

-- Newest first, of all runs or of a routine, walks an index backwards.
CREATE INDEX runs_queued_at ON runs (queued_at, id);
CREATE INDEX runs_routine_queued_at ON runs (routine, queued_at, id);
-- A claim walks the runs that may be claimable, oldest first, and stops
-- at the first it may take: queued runs, and running runs (their leases
-- may have expired), which are few. A run that ends leaves the index, so
-- a claim costs what the queue holds, not what the history does.
CREATE INDEX runs_claim ON runs (queued_at, id) WHERE state IN ('queued', 'running');
-- The running runs: counted per routine against its ceiling, listed by
-- worker for heartbeats, holders and expiry.
CREATE INDEX runs_running ON runs (routine, worker) WHERE state = 'running';
CREATE INDEX runs_dedupe ON runs (routine, dedupe_key, dedupe_until) WHERE dedupe_key <> '';

-- seq is the order in which steps were first saved: an upsert of the same
-- (run_id, phase, step_id) keeps it.
CREATE TABLE step_runs (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    phase       text        NOT NULL,
    step_id     text        NOT NULL,
    kind        text        NOT NULL,
    state       text        NOT NULL,
    attempts    integer     NOT NULL,
    exit_code   integer,
    started_at  timestamptz,
    finished_at timestamptz,
    duration_ms bigint      NOT NULL,
    outputs     text,
    cpu_ms      bigint      NOT NULL,
    max_rss_kb  bigint      NOT NULL,
    error       text,
    UNIQUE (run_id, phase, step_id)
);

CREATE TABLE logs (
    run_id text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    bigint      NOT NULL,
    step   text        NOT NULL,
    time   timestamptz NOT NULL,
    stream text        NOT NULL,
    text   bytea       NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- The state of routines: each routine's key/value store. An expired key
-- reads as missing and is deleted by the next put or delete of its routine.
CREATE TABLE state (
    routine    text        NOT NULL,
    key        text        NOT NULL,
    value      bytea       NOT NULL,
    updated_at timestamptz NOT NULL,
    expires_at timestamptz,
    PRIMARY KEY (routine, key)
);
CREATE INDEX state_routine_expires_at ON state (routine, expires_at) WHERE expires_at IS NOT NULL;

-- The builtin secrets vault and its audit log, as in the SQLite driver:
-- values only as ciphertext, the data key only wrapped.
CREATE TABLE vault_key (
    id         integer     NOT NULL PRIMARY KEY CHECK (id = 1),
    wrapped    bytea       NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE secrets (
    name       text        NOT NULL PRIMARY KEY,
    ciphertext bytea       NOT NULL,
    version    integer     NOT NULL,
    created_at timestamptz NOT NULL,
    rotated_at timestamptz NOT NULL
);

CREATE TABLE secret_audit (
    seq      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time     timestamptz NOT NULL,
    action   text        NOT NULL,
    secret   text        NOT NULL,
    provider text        NOT NULL,
    routine  text        NOT NULL,
    run_id   text        NOT NULL,
    ok       boolean     NOT NULL,
    error    text        NOT NULL
);
CREATE INDEX secret_audit_time ON secret_audit (time);
CREATE INDEX secret_audit_secret_time ON secret_audit (secret, time);

-- routines_claim takes up to p_limit claimable runs for p_worker, one
-- after the other, each time the oldest (queued_at, id) that is queued and
-- due or running with an expired lease, skipping the routines of
-- p_exclude and those at their ceiling (p_ceilings[i] for
-- p_ceiling_routines[i]). p_now NULL is the database's clock. It returns
-- the runs taken, each with the worker it was taken from ('' off the queue).
--
-- Ceilings. Rows locked FOR UPDATE SKIP LOCKED keep two claims from taking
-- one run, but not two claims, each counting max - 1 running runs of a
-- routine, from taking one run each. So a claim takes the routine's
-- advisory lock, held to its commit, before it counts the routine's running
-- runs and picks one of them: the next claim of the routine counts after
-- that commit. The count is a statement of its own, after the lock: under
-- READ COMMITTED each statement of a function sees what committed before
-- it began, and a statement that waited for the lock would see too little.
-- The routine is known before any of its runs is locked (a look without
-- locks, then the lock, then the pick), so that the claim holding the lock
-- takes the routine's oldest run, whoever else is claiming.
--
-- Deadlocks. A claim waits for a routine's lock only while it holds no
-- other; when it holds one, it tries the next and, if taken, skips that
-- routine for this claim and wakes the listeners (NOTIFY) at its commit,
-- so that a claimer looks again when the other claim is done. The rows a
-- waiting claim has locked hold up no holder of a lock: claims skip
-- locked rows, and no other writer waits for a lock a claim takes.
CREATE FUNCTION routines_claim(p_worker text, p_now timestamptz, p_lease interval, p_limit integer,
        p_ceiling_routines text[], p_ceilings integer[], p_exclude text[])
    RETURNS TABLE (id text, routine text, revision text, trigger_kind text, trigger_payload bytea,
        input text, tags text, state text, attempt integer, queued_at timestamptz,
        started_at timestamptz, finished_at timestamptz, worker text, region text,
        cpu_user_ms bigint, cpu_sys_ms bigint, max_rss_kb bigint, error text, replay_of text,
        taken_from text)
    LANGUAGE plpgsql
    -- A claim must walk an index in queue order and stop at its first
    -- match, never sort the queue: while a table's statistics are young
    -- (a burst of runs before ANALYZE), the planner may think sorting a
    -- handful of rows cheaper, and every claim would sort the whole queue.
    SET enable_sort = off
    AS $$
DECLARE
    v_now       timestamptz := coalesce(p_now, now());
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
        -- Take the oldest claimable run, of the routine when one was
        -- looked at (its oldest, as the walk of runs_claim finds it
        -- first), and say whose it was.
        UPDATE runs r SET state = 'running', worker = p_worker, lease_until = v_now + p_lease, not_before = NULL
        FROM (SELECT c.id, CASE WHEN c.state = 'running' THEN c.worker ELSE '' END AS taken_from FROM runs c
            WHERE c.state IN ('queued', 'running')
                AND ((c.state = 'queued' AND (c.not_before IS NULL OR c.not_before <= v_now))
                    OR (c.state = 'running' AND c.lease_until <= v_now))
                AND c.routine <> ALL (v_skip)
                AND (v_routine IS NULL OR c.routine = v_routine)
            ORDER BY c.queued_at, c.id LIMIT 1
            FOR UPDATE SKIP LOCKED) pick
        WHERE r.id = pick.id
        RETURNING r.id, r.routine, r.revision, r.trigger_kind, r.trigger_payload, r.input, r.tags, r.state,
            r.attempt, r.queued_at, r.started_at, r.finished_at, r.worker, r.region, r.cpu_user_ms,
            r.cpu_sys_ms, r.max_rss_kb, r.error, r.replay_of, pick.taken_from
        INTO id, routine, revision, trigger_kind, trigger_payload, input, tags, state, attempt, queued_at,
            started_at, finished_at, worker, region, cpu_user_ms, cpu_sys_ms, max_rss_kb, error, replay_of,
            taken_from;
        IF NOT FOUND THEN
            -- Every claimable run (of the routine) is being taken by
            -- another claim.
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

-- routines_not_held raises RT404 when there is no run p_id, else RT409:
-- what a write guarded by the run's worker says when its guard did not
-- match (a run's worker changes only when a claim or a requeue takes it).
CREATE FUNCTION routines_not_held(p_id text, p_worker text) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    v_worker text;
BEGIN
    SELECT r.worker INTO v_worker FROM runs r WHERE r.id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no run %', p_id USING ERRCODE = 'RT404';
    END IF;
    RAISE EXCEPTION 'held by "%", not "%" (taken over after a lease expired)', v_worker, p_worker
        USING ERRCODE = 'RT409';
END $$;

-- routines_hold locks the run p_id for the rest of the transaction, and
-- raises as routines_not_held unless p_worker holds it: the guard of a
-- checkpoint without the run, whose later statements then write for a
-- run no claim can take over meanwhile.
CREATE FUNCTION routines_hold(p_id text, p_worker text) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM runs r WHERE r.id = p_id AND r.worker = p_worker FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM routines_not_held(p_id, p_worker);
    END IF;
END $$;

-- routines_state_put sets a key of a routine's state after purging the
-- routine's keys expired at p_now, and returns whether the key was there:
-- an update of the row, or else an insert, tried again should a
-- concurrent put or delete come between the two. Of concurrent puts of a
-- new key, one inserts and the others find it there.
CREATE FUNCTION routines_state_put(p_routine text, p_key text, p_value bytea, p_expires_at timestamptz,
        p_now timestamptz) RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM state s WHERE s.routine = p_routine AND s.expires_at <= p_now;
    LOOP
        UPDATE state s SET value = p_value, updated_at = p_now, expires_at = p_expires_at
        WHERE s.routine = p_routine AND s.key = p_key;
        IF FOUND THEN
            RETURN true;
        END IF;
        INSERT INTO state (routine, key, value, updated_at, expires_at)
        VALUES (p_routine, p_key, p_value, p_now, p_expires_at)
        ON CONFLICT (routine, key) DO NOTHING;
        IF FOUND THEN
            RETURN false;
        END IF;
    END LOOP;
END $$;

-- Wake-ups: a write that may make a run claimable notifies the channel
-- routines_wake, which every store listens on (Store.Wakeups). NOTIFY is
-- sent at commit, and not at all on rollback; the notifications of one
-- transaction are one. A trigger, so that no write path can forget it:
-- a run created queued or put back in the queue, a running run ended (a
-- slot of its routine's ceiling is free), a lease cut short (RunExpire).
CREATE FUNCTION routines_wake() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('routines_wake', '');
    RETURN NULL;
END $$;

CREATE TRIGGER runs_wake_insert AFTER INSERT ON runs
    FOR EACH ROW WHEN (NEW.state = 'queued')
    EXECUTE FUNCTION routines_wake();
CREATE TRIGGER runs_wake_update AFTER UPDATE ON runs
    FOR EACH ROW WHEN ((NEW.state = 'queued' AND OLD.state <> 'queued')
        OR (OLD.state = 'running' AND NEW.state NOT IN ('running', 'queued'))
        OR (NEW.state = 'running' AND NEW.lease_until < OLD.lease_until))
    EXECUTE FUNCTION routines_wake();
