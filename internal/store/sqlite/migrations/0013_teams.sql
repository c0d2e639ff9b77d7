-- Teams (docs/teams.md): API tokens, namespaces and the trail of actions.
-- Times are INTEGER microseconds since the Unix epoch, as in 0001.
--
-- A routine belongs to the namespace of its first push, recorded on each
-- of its deployments; the routines there before namespaces (and a local
-- daemon's) are the default namespace's. Its runs, stats and events are
-- its namespace's through it.
ALTER TABLE deployments ADD COLUMN namespace TEXT NOT NULL DEFAULT 'default';

-- A token is stored as the sha256 of its value, never the value: the
-- value is 32 random bytes, so a hash cannot be reversed. A revoked or
-- expired token is kept (its name is not reused, and the trail names it).
CREATE TABLE api_tokens (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    hash       TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL,
    namespace  TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
) STRICT;

-- The policy of a namespace: regions is a JSON array of the regions its
-- runs may execute in, empty for any.
CREATE TABLE namespaces (
    name       TEXT    NOT NULL PRIMARY KEY,
    regions    TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- The trail of actions: who (the token's name, role and namespace), from
-- where, did what to what, and how it ended. Append-only: the triggers
-- refuse to change or remove a record.
CREATE TABLE audit_log (
    seq       INTEGER NOT NULL PRIMARY KEY,
    time      INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    role      TEXT    NOT NULL,
    namespace TEXT    NOT NULL,
    source    TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    outcome   TEXT    NOT NULL,
    detail    TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_actor_time ON audit_log (actor, time);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
