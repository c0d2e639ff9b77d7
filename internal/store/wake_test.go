package store

import (
	"context"
	"testing"
	"time"
)

// recv reports whether ch holds a signal (true) or is closed (false), and
// fails when neither comes in 5 s.
func recv(t *testing.T, ch <-chan struct{}) bool {
	t.Helper()
	select {
	case _, ok := <-ch:
		return ok
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up and not closed in 5s")
		return false
	}
}

// empty fails unless ch holds nothing now.
func empty(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case _, ok := <-ch:
		t.Fatalf("channel holds a signal or is closed (ok=%v), want empty", ok)
	default:
	}
}

func TestWakeHub(t *testing.T) {
	t.Parallel()
	var h WakeHub
	ctx, cancel := context.WithCancel(t.Context())
	a := h.Subscribe(ctx)
	empty(t, a)
	// Turning live wakes the channels, once; a channel of a live hub
	// starts with a wake-up.
	h.SetLive(true)
	h.SetLive(true)
	b := h.Subscribe(t.Context())
	for _, ch := range []<-chan struct{}{a, b} {
		if !recv(t, ch) {
			t.Fatal("closed, want the first wake-up")
		}
		empty(t, ch)
	}
	// Wake-ups coalesce: three make one.
	h.Wake()
	h.Wake()
	h.Wake()
	for _, ch := range []<-chan struct{}{a, b} {
		if !recv(t, ch) {
			t.Fatal("closed, want a wake-up")
		}
		empty(t, ch)
	}
	// Back from a loss, the hub wakes the channels: writes made meanwhile
	// went unheard.
	h.SetLive(false)
	h.SetLive(true)
	for _, ch := range []<-chan struct{}{a, b} {
		if !recv(t, ch) {
			t.Fatal("closed, want a wake-up")
		}
	}
	// The end of its context closes a channel alone.
	cancel()
	if recv(t, a) {
		t.Fatal("a wake-up after the context ended, want the channel closed")
	}
	h.Wake()
	if !recv(t, b) {
		t.Fatal("b closed with a's context")
	}
	// Close closes the rest, and any channel asked for after.
	h.Close()
	if recv(t, b) {
		t.Fatal("a wake-up after Close, want the channel closed")
	}
	h.Wake()
	ended, stop := context.WithCancel(t.Context())
	stop()
	for _, ch := range []<-chan struct{}{h.Subscribe(t.Context()), h.Subscribe(ended)} {
		if recv(t, ch) {
			t.Fatal("a channel of a closed hub is open")
		}
	}
}

// A channel asked for with a context that has ended is closed.
func TestWakeHubEndedContext(t *testing.T) {
	t.Parallel()
	var h WakeHub
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if recv(t, h.Subscribe(ctx)) {
		t.Fatal("open channel for an ended context")
	}
}
