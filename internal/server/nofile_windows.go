package server

// nofileLimit reports no limit: Windows gives a process millions of
// handles, none of which connections could take from runs.
func nofileLimit() (uint64, bool) { return 0, false }
