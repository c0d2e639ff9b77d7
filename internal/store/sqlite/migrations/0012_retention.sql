-- Retention (docs/operations.md#retention): what lets a local store be
-- pruned in short batches, each a walk of an index rather than of runs.
--
-- runs_ended lists the final runs that retention may delete by their end,
-- oldest first; dead runs are not in it (they wait for a replay, or an
-- explicit prune). A run enters it when it ends: one entry per run.
CREATE INDEX runs_ended ON runs (finished_at, id)
    WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at IS NOT NULL;

-- The replays of dead runs: a dead run that was replayed is pruned by
-- age like any other.
CREATE INDEX runs_replay_of ON runs (replay_of) WHERE replay_of <> '';

-- A deleted run takes its tags with it, as an inserted one brought them
-- (runs_tags in 0008); steps and logs go by ON DELETE CASCADE.
CREATE TRIGGER runs_untag AFTER DELETE ON runs WHEN old.tags IS NOT NULL
BEGIN
    DELETE FROM run_tags
        WHERE tag IN (SELECT value FROM json_each(old.tags)) AND queued_at = old.queued_at AND id = old.id;
END;

-- How far a kind of pruning that keeps its rows' parents got: the logs of
-- the runs that ended up to (at, id) in runs_ended order are gone, so the
-- next pass starts there instead of probing every older run again.
CREATE TABLE retention_marks (
    kind TEXT    NOT NULL PRIMARY KEY,
    at   INTEGER NOT NULL,
    id   TEXT    NOT NULL
) STRICT;
