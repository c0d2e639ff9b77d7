-- The builtin secrets vault and the audit log of secrets. A secret's value
-- is stored only as ciphertext, sealed under the vault's data key; the data
-- key is stored only encrypted with age under the master key, which the
-- store never sees (vault_key holds one row). version counts the values a
-- name has had; rotated_at is when the current one was set. The audit log records who used or changed which
-- secret, when, through which provider, and whether it worked: never a
-- value. Times are INTEGER microseconds since the Unix epoch, as in 0001.

CREATE TABLE vault_key (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    wrapped    BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE secrets (
    name       TEXT    NOT NULL PRIMARY KEY,
    ciphertext BLOB    NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    rotated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE secret_audit (
    seq      INTEGER NOT NULL PRIMARY KEY,
    time     INTEGER NOT NULL,
    action   TEXT    NOT NULL,
    secret   TEXT    NOT NULL,
    provider TEXT    NOT NULL,
    routine  TEXT    NOT NULL,
    run_id   TEXT    NOT NULL,
    ok       INTEGER NOT NULL,
    error    TEXT    NOT NULL
) STRICT;

CREATE INDEX secret_audit_time ON secret_audit (time);
CREATE INDEX secret_audit_secret_time ON secret_audit (secret, time);
