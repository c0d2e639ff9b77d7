-- Retention of the trail of actions (0013's audit_log) in a local store:
-- a daemon that serves for months records every API call that changes
-- something, and the table only grew. It stays append-only, but for the
-- records older than its horizon, which retention's audit.max_age moves
-- forward before it deletes them: no record newer than the horizon can
-- go, and the horizon never moves back.
CREATE TABLE audit_log_horizon (
    id     INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    before INTEGER NOT NULL
) STRICT;
INSERT INTO audit_log_horizon (id, before) VALUES (1, 0);

DROP TRIGGER audit_log_no_delete;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    WHEN old.time >= (SELECT before FROM audit_log_horizon)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: only records older than its retention horizon are removed'); END;

CREATE TRIGGER audit_log_horizon_forward BEFORE UPDATE ON audit_log_horizon
    WHEN new.before < old.before
BEGIN SELECT RAISE(ABORT, 'the horizon of the audit log only moves forward'); END;
CREATE TRIGGER audit_log_horizon_no_delete BEFORE DELETE ON audit_log_horizon
BEGIN SELECT RAISE(ABORT, 'the horizon of the audit log is kept'); END;
