-- Runs, the record of each of their steps, and their log lines.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC): they sort, they
-- cover year 1 to 9999, and microseconds are what PostgreSQL keeps, so both
-- drivers return the same instants. JSON columns hold TEXT and are NULL when
-- the value is empty.

CREATE TABLE runs (
    id              TEXT    NOT NULL PRIMARY KEY,
    routine         TEXT    NOT NULL,
    revision        TEXT    NOT NULL,
    trigger_kind    TEXT    NOT NULL,
    trigger_payload TEXT,
    input           TEXT,
    tags            TEXT,
    state           TEXT    NOT NULL,
    attempt         INTEGER NOT NULL,
    queued_at       INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    worker          TEXT    NOT NULL,
    region          TEXT    NOT NULL,
    cpu_user_ms     INTEGER NOT NULL,
    cpu_sys_ms      INTEGER NOT NULL,
    max_rss_kb      INTEGER NOT NULL,
    error           TEXT,
    replay_of       TEXT    NOT NULL
) STRICT;

-- id breaks ties between runs queued in the same microsecond, so "newest
-- first" is a walk of the index with no sort step.
CREATE INDEX runs_routine_queued_at ON runs (routine, queued_at, id);
CREATE INDEX runs_queued_at ON runs (queued_at, id);
-- The scheduler asks for the oldest queued runs; a filter on state alone
-- uses the prefix.
CREATE INDEX runs_state_queued_at ON runs (state, queued_at);

-- seq (the rowid) is the order in which steps were first saved: a new
-- record gets the greatest seq so far plus one, and an upsert of the same
-- (run_id, phase, step_id) keeps it. The unique key is the record's
-- identity, as a primary key would be, and lists a run's records.
CREATE TABLE step_runs (
    seq         INTEGER NOT NULL PRIMARY KEY,
    run_id      TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    phase       TEXT    NOT NULL,
    step_id     TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    exit_code   INTEGER,
    started_at  INTEGER,
    finished_at INTEGER,
    duration_ms INTEGER NOT NULL,
    outputs     TEXT,
    cpu_ms      INTEGER NOT NULL,
    max_rss_kb  INTEGER NOT NULL,
    error       TEXT,
    UNIQUE (run_id, phase, step_id)
) STRICT;

-- Clustered on (run_id, seq): an append is one b-tree insert and reading a
-- run's log is a range scan. text may hold any bytes a step printed.
CREATE TABLE logs (
    run_id TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    step   TEXT    NOT NULL,
    time   INTEGER NOT NULL,
    stream TEXT    NOT NULL,
    text   TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;
