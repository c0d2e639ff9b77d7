package retention

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/store"
)

// Service prunes continuously: a pass at start, then one every Interval,
// paced so that its batches take at most half of the store's writer. It
// is a daemon service (Start/Stop).
type Service struct {
	p        *Pruner
	interval time.Duration

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Interval is how often the service prunes under a policy: a tenth of
// its shortest age, at least a second and at most a minute.
func Interval(p Policy) time.Duration {
	s := p.shortest()
	if s == 0 {
		return time.Minute
	}
	return min(time.Minute, max(time.Second, s/10))
}

// NewService returns the service that prunes with p every interval.
func NewService(p *Pruner, interval time.Duration) *Service {
	p.cfg.Pace = true
	return &Service{p: p, interval: interval}
}

// Start starts pruning in the background; it says once when the store
// keeps its size because it predates incremental vacuum.
func (s *Service) Start(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	go s.loop(ctx)
	return nil
}

func (s *Service) loop(ctx context.Context) {
	defer close(s.done)
	log := s.p.cfg.Logger
	for {
		rep, err := s.p.Pass(ctx, Options{})
		switch {
		case errors.Is(err, context.Canceled):
			return
		case errors.Is(err, store.ErrUnwritable):
			// The store's outage is logged once where it is watched
			// (the daemon's writes watch); the pass waits it out.
			log.Debug("retention: the store cannot write; pruning waits for the next pass", "err", err, "next_in", s.interval)
		case err != nil:
			log.Warn("retention: pruning failed; it is tried again at the next pass", "err", err, "next_in", s.interval)
		case rep.Removed():
			log.Info("retention: pruned", "runs", rep.Runs, "logs", rep.Logs, "artifacts", rep.Artifacts,
				"audit", rep.Audit, "rollups", rep.Rollups, "freed_bytes", rep.FreedBytes,
				"batches", rep.Batches, "max_batch", rep.MaxBatch, "took", rep.Took)
		}
		if err == nil && rep.Vacuum != nil && !rep.Vacuum.Incremental {
			s.once.Do(func() {
				log.Warn("retention: the store predates incremental vacuum: the space pruning frees is reused, but the file does not shrink; " +
					"stop the daemon and run `routines prune` once to rewrite it")
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.interval):
		}
	}
}

// Stop stops pruning, cutting a pass short between two batches, and
// waits for it.
func (s *Service) Stop(ctx context.Context) error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
