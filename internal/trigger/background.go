package trigger

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/clock"
)

// background is the goroutine of a watcher (file, email, gmail): started
// once, stopped by Stop, which returns only once it has ended.
type background struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs fn in a goroutine with a context that stop cancels; a second
// start is an error.
func (b *background) start(ctx context.Context, fn func(ctx context.Context)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil {
		return errors.New("watcher already started")
	}
	ctx, b.cancel = context.WithCancel(ctx)
	b.done = make(chan struct{})
	go func() {
		defer close(b.done)
		fn(ctx)
	}()
	return nil
}

// stop cancels the goroutine and waits for it; without a start it does
// nothing.
func (b *background) stop() {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// reconnect runs session again and again until ctx ends, waiting between
// two tries a delay that starts at first, doubles up to limit, and starts
// over after a session that got going (healthy). failed is told of each
// failure and the wait that follows it, timed by clk.
func reconnect(ctx context.Context, clk clock.Clock, first, limit time.Duration, session func(ctx context.Context) (healthy bool, err error), failed func(err error, wait time.Duration)) {
	delay := first
	for {
		healthy, err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if healthy {
			delay = first
		}
		failed(err, delay)
		if clk.Sleep(ctx, delay) != nil {
			return
		}
		delay = min(delay*2, limit)
	}
}
