// Package fleettest proves remote mode with real processes: servers and
// workers of one deployment, built from cmd/routines, on a throwaway
// PostgreSQL, under load from every kind of trigger, while workers and
// servers are killed with SIGKILL and PostgreSQL is stopped and started
// again (TestFleet), and while a worker with runs in flight is scaled
// down with SIGTERM (TestScaleDown). It holds tests only, for Linux,
// where the daemons run steps; what they assert is read from the store
// and from a log of the steps' side effects.
package fleettest
