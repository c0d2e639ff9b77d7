-- Routines pushed to a deployment. A bundle is the tar.gz of a routine's
-- directory, stored once under the sha256 of its bytes. A deployment makes
-- a bundle the current revision of a routine; the newest deployment of a
-- routine is its current one, and deployments are never updated or
-- deleted: a rollback is a new one.

CREATE TABLE bundles (
    hash       text        PRIMARY KEY,
    data       bytea       NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE deployments (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    routine     text        NOT NULL,
    hash        text        NOT NULL REFERENCES bundles (hash),
    author      text        NOT NULL,
    message     text        NOT NULL,
    git_commit  text        NOT NULL,
    rollback_of text        NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE INDEX deployments_routine_seq ON deployments (routine, seq DESC);
