-- Ceilings of a namespace (docs/teams.md): the most runs of its routines
-- that may be running at once across the fleet (enforced by the claim)
-- and queued (a new run past it is refused); 0 for no ceiling.
ALTER TABLE namespaces ADD COLUMN max_running INTEGER NOT NULL DEFAULT 0;
ALTER TABLE namespaces ADD COLUMN max_queued INTEGER NOT NULL DEFAULT 0;

-- The queued runs of a namespace are counted by its routines' names in
-- the state prefix of runs_claim, which holds the routine: a walk of the
-- backlog in the index, as the count of the whole backlog is. No index is
-- added, so that the writes of runs pay nothing for a ceiling they may
-- not have.
