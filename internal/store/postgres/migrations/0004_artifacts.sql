-- Artifacts that steps hand on to later steps (--artifacts postgres),
-- so that a run resumed on another worker finds them: small ones only,
-- each at most postgres.MaxArtifactBytes, with the SHA-256 of its bytes.

CREATE TABLE artifacts (
    run_id     text        NOT NULL,
    step       text        NOT NULL,
    name       text        NOT NULL,
    size       bigint      NOT NULL,
    sha256     text        NOT NULL,
    data       bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step, name)
);
