-- Placeholder of the lead's 0011 (rollups per group commit) so that 0013 applies on this branch:
-- drop this file when merging (keep the lead's 0011).
SELECT 1;
