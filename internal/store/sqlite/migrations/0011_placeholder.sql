-- A placeholder for the lead's 0011 (issue 15: rollups per group commit),
-- so that retention's 0012 can be tested on its branch: migrations run
-- 1, 2, 3 … without a gap. The lead's 0011 replaces this file on merge.
SELECT 1;
