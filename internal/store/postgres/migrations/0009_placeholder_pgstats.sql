-- Placeholder of pgstats' 0009 so that 0010 applies on this branch:
-- drop this file when merging (keep pgstats' 0009).
SELECT 1;
