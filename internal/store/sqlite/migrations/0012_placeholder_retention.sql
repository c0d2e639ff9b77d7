-- Placeholder of retention's 0012 so that 0013 applies on this branch:
-- drop this file when merging (keep retention's 0012).
SELECT 1;
