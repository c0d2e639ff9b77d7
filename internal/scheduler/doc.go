// Package scheduler is the run loop of the local daemon: it keeps the
// catalog of routines the daemon knows, queues runs for triggers and API
// calls, and works the queue with a pool of workers that claim runs from the
// store under each routine's concurrency ceiling, hold a lease renewed by
// heartbeat while a run is in flight, and hand the run to the engine. It
// imports no server, trigger or command line: they call it.
package scheduler
