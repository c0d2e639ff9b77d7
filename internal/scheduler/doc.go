// Package scheduler is the run loop of the local daemon: it keeps the
// catalog of routines the daemon knows, queues runs for triggers and API
// calls, and works the queue: a dispatcher claims as many runs as workers
// are free, in one store call, under each routine's concurrency ceiling
// and the reservations; each run holds a lease renewed by heartbeat while
// it is in flight, and executes in the engine. It
// imports no server, trigger or command line: they call it.
package scheduler
