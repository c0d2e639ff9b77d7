// Package server is the HTTP face of the local daemon: the JSON API under
// /v1 (fire a routine, publish an event, read a run) and the webhook
// ingress under /hooks.
// It queues runs through a Queue and reads them from the store; it never
// executes anything itself.
package server
