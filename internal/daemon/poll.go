package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/routines-dev/routines/internal/repeat"
)

// Poller is the service that does one thing at start and then every Poll
// until Stop: it reads what the store says into what the process serves.
// A failure at start fails the start; a later one is logged (once while
// it lasts, see repeat) and tried again at the next poll, and what was
// read before is kept meanwhile.
type Poller struct {
	Sync func(ctx context.Context) error
	Poll time.Duration
	// Failed says, in the log, what failed and what is kept; Recovered
	// that it works again.
	Failed, Recovered string
	Logger            *slog.Logger

	stop, done chan struct{}
}

// Start syncs once, then every Poll in the background.
func (p *Poller) Start(ctx context.Context) error {
	if err := p.Sync(ctx); err != nil {
		return err
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	failing := repeat.New(nil)
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.Poll)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				// A store that is down fails every poll: logged once,
				// then at a backoff, and its recovery once.
				if err := p.Sync(ctx); err != nil {
					failing.Log(p.Logger, slog.LevelError, "", p.Failed, "err", err)
				} else {
					failing.Recovered(p.Logger, "", p.Recovered)
				}
			}
		}
	}()
	return nil
}

// Stop stops the polling; a poll under way ends first.
func (p *Poller) Stop(context.Context) error {
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	return nil
}
