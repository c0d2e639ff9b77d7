package store

import (
	"context"
	"sync"
)

// WakeHub fans wake-ups out to the channels of Waker.Wakeups: the
// in-process half of a Waker, which a driver embeds and calls Wake on
// after each write that may have made a run claimable.
//
// A hub is live when the writes it is to tell of reach it: at once for a
// driver that hears only its own writes, and for one that hears other
// processes' through a connection (PostgreSQL's LISTEN), while that
// connection listens. Each channel gets one wake-up as soon as it and the
// hub are live, so that its receiver looks at the queue then: a write
// made before may have gone unheard, and every write after wakes it. The
// zero value is ready for use, and not live.
type WakeHub struct {
	mu     sync.Mutex
	subs   map[chan struct{}]func() bool // each channel and the stop of its context.AfterFunc
	live   bool
	closed bool
}

// SetLive tells whether the writes to tell of reach the hub now. Turning
// live wakes every channel.
func (h *WakeHub) SetLive(live bool) {
	h.mu.Lock()
	was := h.live
	h.live = live
	h.mu.Unlock()
	if live && !was {
		h.Wake()
	}
}

// Subscribe returns a new channel of wake-ups, buffered by one, that
// closes when ctx ends or the hub closes.
func (h *WakeHub) Subscribe(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(ch)
		return ch
	}
	if h.live {
		ch <- struct{}{}
	}
	if h.subs == nil {
		h.subs = map[chan struct{}]func() bool{}
	}
	// AfterFunc runs drop in a goroutine of its own, after this returns
	// and unlocks, even when ctx has ended already.
	h.subs[ch] = context.AfterFunc(ctx, func() { h.drop(ch) })
	return ch
}

func (h *WakeHub) drop(ch chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[ch]; ok {
		delete(h.subs, ch)
		close(ch)
	}
}

// Wake signals every channel, without waiting: a channel that holds a
// signal already keeps that one.
func (h *WakeHub) Wake() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Close closes every channel; later ones are closed at once.
func (h *WakeHub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch, stop := range h.subs {
		stop()
		close(ch)
	}
	h.subs = nil
}
