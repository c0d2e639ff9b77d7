-- The alerts of routines (routine.yaml alerts:): where each alert stands,
-- moved by compare-and-set so that of several evaluators one records each
-- transition, and the append-only record of the firings and clearings
-- with the delivery of their notifications (deliveries: JSON, one entry
-- per target). A record is due for delivery while done is 0 and next_try
-- has passed; a claim holds it (holder) by pushing next_try past its
-- lease. Times are INTEGER microseconds since the Unix epoch, as in 0001.

CREATE TABLE alert_state (
    routine TEXT    NOT NULL,
    alert   TEXT    NOT NULL,
    state   TEXT    NOT NULL,
    since   INTEGER NOT NULL,
    PRIMARY KEY (routine, alert)
) STRICT;

CREATE TABLE alert_events (
    id         INTEGER NOT NULL PRIMARY KEY,
    routine    TEXT    NOT NULL,
    alert      TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    condition  TEXT    NOT NULL,
    metric     TEXT    NOT NULL,
    value      REAL    NOT NULL,
    threshold  REAL    NOT NULL,
    runs       INTEGER NOT NULL,
    over       INTEGER NOT NULL, -- nanoseconds
    at         INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    deliveries TEXT    NOT NULL,
    done       INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    next_try   INTEGER NOT NULL,
    holder     TEXT    NOT NULL
) STRICT;

CREATE INDEX alert_events_due ON alert_events (next_try) WHERE done = 0;
CREATE INDEX alert_events_pending ON alert_events (routine, alert, id) WHERE done = 0;
CREATE INDEX alert_events_at ON alert_events (at);
CREATE INDEX alert_events_routine_at ON alert_events (routine, at);
