-- Ceilings of a namespace (docs/teams.md): the most runs of its routines
-- that may be running at once across the fleet (enforced by the claim)
-- and queued (a new run past it is refused); 0 for no ceiling.
ALTER TABLE namespaces ADD COLUMN max_running INTEGER NOT NULL DEFAULT 0;
ALTER TABLE namespaces ADD COLUMN max_queued INTEGER NOT NULL DEFAULT 0;

-- The queued runs of a namespace are counted by its routines' names at
-- every check of its max_queued that its estimate cannot answer: a seek
-- per routine, not a walk of the whole backlog. The index also answers
-- the count of the whole backlog and the running runs by routine of a
-- claim under ceilings, without a sort.
CREATE INDEX runs_state_routine ON runs (state, routine);
