// Package server is the HTTP face of the local daemon: the JSON API under
// /v1 (fire a routine, publish an event, read a run, the daemon's status
// and its problems) and the webhook ingress under /hooks and /slack.
// It queues runs through a Queue and reads them from the store; it never
// executes anything itself.
package server
