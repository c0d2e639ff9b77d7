-- The queue: a queued run may wait for a time (not_before, for delayed
-- retries), and a claimed run is leased to its worker (worker, lease_until)
-- until a heartbeat extends the lease or it expires and the run may be
-- claimed again. Times are INTEGER microseconds since the Unix epoch, as
-- in 0001; NULL is "none": claimable at once, or not leased (a run
-- executed in the foreground).

ALTER TABLE runs ADD COLUMN not_before INTEGER;
ALTER TABLE runs ADD COLUMN lease_until INTEGER;

-- A claim walks the queued runs oldest first and stops at the first it
-- may take. With id in the key the walk needs no sort, and with routine
-- and not_before in it the walk never reads the table. It also serves
-- what runs_state_queued_at served (a filter on state), which it replaces.
DROP INDEX runs_state_queued_at;
CREATE INDEX runs_claim ON runs (state, queued_at, id, routine, not_before);
