-- Cancelling a running run (docs/runs.md#cancelling-a-run): the time a
-- cancel was asked for, INTEGER microseconds since the Unix epoch as in
-- 0001; NULL when none was. The worker holding the run learns of it from
-- its heartbeat (RunHeartbeat) or at once from the store's wake-up, kills
-- the run's steps and ends it cancelled; a run claimed with it set is
-- cancelled rather than resumed.
ALTER TABLE runs ADD COLUMN cancel_requested_at INTEGER;
