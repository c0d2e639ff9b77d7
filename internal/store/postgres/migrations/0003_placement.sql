-- Placeholder on the artifacts branch for the fleet branch's migration of
-- the same name, so that 0004 follows a 0003 here: the merge takes the
-- fleet branch's file.
SELECT 1;
