-- The state of routines: each routine's own persistent key/value store,
-- read and written by state steps. routine is the namespace. Times are
-- INTEGER microseconds since the Unix epoch, as in 0001; expires_at is NULL
-- for a key that never expires. An expired key reads as missing and is
-- deleted by the next put or delete of its routine. A rowid table: WITHOUT
-- ROWID suits small rows, and a value may be 64 KiB.

CREATE TABLE state (
    routine    TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (routine, key)
) STRICT;

-- The purge of a routine's expired keys reads only keys that expire.
CREATE INDEX state_routine_expires_at ON state (routine, expires_at) WHERE expires_at IS NOT NULL;
