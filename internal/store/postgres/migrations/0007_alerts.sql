-- The alerts of routines (routine.yaml alerts:): where each alert stands,
-- moved by compare-and-set so that of the evaluators of several servers
-- one records each transition, and the append-only record of the firings
-- and clearings with the delivery of their notifications (deliveries:
-- JSON, one entry per target). A record is due for delivery while not
-- done and next_try has passed; a claim holds it (holder) by pushing
-- next_try past its lease.

CREATE TABLE alert_state (
    routine text        NOT NULL,
    alert   text        NOT NULL,
    state   text        NOT NULL,
    since   timestamptz NOT NULL,
    PRIMARY KEY (routine, alert)
);

CREATE TABLE alert_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    routine    text             NOT NULL,
    alert      text             NOT NULL,
    state      text             NOT NULL,
    condition  text             NOT NULL,
    metric     text             NOT NULL,
    value      double precision NOT NULL,
    threshold  double precision NOT NULL,
    runs       bigint           NOT NULL,
    over       bigint           NOT NULL, -- nanoseconds
    at         timestamptz      NOT NULL,
    started_at timestamptz      NOT NULL,
    deliveries jsonb            NOT NULL,
    done       boolean          NOT NULL,
    attempts   integer          NOT NULL,
    next_try   timestamptz      NOT NULL,
    holder     text             NOT NULL
);

CREATE INDEX alert_events_due ON alert_events (next_try) WHERE NOT done;
CREATE INDEX alert_events_pending ON alert_events (routine, alert, id) WHERE NOT done;
CREATE INDEX alert_events_at ON alert_events (at);
CREATE INDEX alert_events_routine_at ON alert_events (routine, at);
