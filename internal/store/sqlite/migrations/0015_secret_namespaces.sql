-- Secrets per namespace (docs/teams.md): a namespace's routines resolve
-- only its secrets, and its deployers list, set and remove only those. A
-- secret is named by its namespace and its name; those stored before are
-- the default namespace's. SQLite cannot change a primary key in place:
-- the table is made again and its rows copied.
CREATE TABLE secrets_by_namespace (
    namespace  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    ciphertext BLOB    NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    rotated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
) STRICT;

INSERT INTO secrets_by_namespace (namespace, name, ciphertext, version, created_at, rotated_at)
SELECT 'default', name, ciphertext, version, created_at, rotated_at FROM secrets;

DROP TABLE secrets;
ALTER TABLE secrets_by_namespace RENAME TO secrets;
