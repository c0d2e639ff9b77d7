-- Routines pushed to a deployment (remote mode; a local store has none).
-- A bundle is the tar.gz of a routine's directory, stored once under the
-- sha256 of its bytes. A deployment makes a bundle the current revision of
-- a routine; the newest deployment of a routine is its current one, and
-- deployments are never updated or deleted: a rollback is a new one. Times
-- are INTEGER microseconds since the Unix epoch, as in 0001.

CREATE TABLE bundles (
    hash       TEXT    NOT NULL PRIMARY KEY,
    data       BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE deployments (
    seq         INTEGER NOT NULL PRIMARY KEY,
    routine     TEXT    NOT NULL,
    hash        TEXT    NOT NULL REFERENCES bundles (hash),
    author      TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    git_commit  TEXT    NOT NULL,
    rollback_of TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX deployments_routine_seq ON deployments (routine, seq);
