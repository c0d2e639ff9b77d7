-- Teams (docs/teams.md): API tokens, namespaces and the trail of actions.
--
-- A routine belongs to the namespace of its first push, recorded on each
-- of its deployments; the routines there before namespaces are the
-- default namespace's. Its runs, stats and events are its namespace's
-- through it.
ALTER TABLE deployments ADD COLUMN namespace text NOT NULL DEFAULT 'default';

-- A token is stored as the sha256 of its value, never the value: the
-- value is 32 random bytes, so a hash cannot be reversed. Every request
-- looks its token up by hash (the unique index), so a revocation holds at
-- once on every server. A revoked or expired token is kept (its name is
-- not reused, and the trail names it).
CREATE TABLE api_tokens (
    id         text        PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    hash       text        NOT NULL UNIQUE,
    role       text        NOT NULL,
    namespace  text        NOT NULL,
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);

-- The policy of a namespace: the regions its runs may execute in, empty
-- for any.
CREATE TABLE namespaces (
    name       text        PRIMARY KEY,
    regions    text[]      NOT NULL,
    updated_at timestamptz NOT NULL
);

-- The trail of actions: who (the token's name, role and namespace), from
-- where, did what to what, and how it ended. Append-only: the trigger
-- refuses to change or remove a record.
CREATE TABLE audit_log (
    seq       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time      timestamptz NOT NULL,
    actor     text        NOT NULL,
    role      text        NOT NULL,
    namespace text        NOT NULL,
    source    text        NOT NULL,
    action    text        NOT NULL,
    target    text        NOT NULL,
    outcome   text        NOT NULL,
    detail    text        NOT NULL
);

CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_actor_time ON audit_log (actor, time);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
