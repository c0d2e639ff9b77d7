-- Secrets per namespace (docs/teams.md): a namespace's routines resolve
-- only its secrets, and its deployers list, set and remove only those. A
-- secret is named by its namespace and its name; those stored before are
-- the default namespace's.
ALTER TABLE secrets ADD COLUMN namespace text NOT NULL DEFAULT 'default';
ALTER TABLE secrets ALTER COLUMN namespace DROP DEFAULT;
ALTER TABLE secrets DROP CONSTRAINT secrets_pkey;
ALTER TABLE secrets ADD PRIMARY KEY (namespace, name);
