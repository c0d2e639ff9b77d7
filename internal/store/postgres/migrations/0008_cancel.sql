-- Cancelling a running run (docs/runs.md#cancelling-a-run): when a cancel
-- was asked for; NULL when none was. RunCancelRequest sets it and
-- notifies routines_cancel, so that the worker holding the run (on any
-- machine) renews its leases at once and learns of it (RunHeartbeat
-- returns the runs to cancel); a run claimed with it set is cancelled
-- rather than resumed.
ALTER TABLE runs ADD COLUMN cancel_requested_at timestamptz;
