package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/routines-dev/routines/internal/store"
)

// The backoff of the probes of a store that refuses writes: the first
// firstProbe after the refusal, then twice the wait before, up to
// maxProbe, which bounds how long after space returns the daemon notices.
const (
	firstProbe = 100 * time.Millisecond
	maxProbe   = 5 * time.Second
)

// relapse is how soon after the end of an outage a new one counts as the
// same, not logged again: a disk at the edge of full flaps, as a
// checkpoint frees a little room and the next writes take it back.
const relapse = time.Minute

// writesWatch is the service that follows whether the store's storage
// takes writes (a full disk, an I/O error, a read-only file system): it
// logs an outage once when it begins, with its cause; probes the store
// with backoff until a write goes through; and logs its end once, with
// how long it lasted. An outage within a minute of the last one's end
// (relapse) is not logged again. Meanwhile the writes refused elsewhere log at debug
// level only (store.LogLevel), the API answers new work 503 and runs wait
// at their next checkpoint.
type writesWatch struct {
	prober store.WriteProber
	log    *slog.Logger
	stop   chan struct{}
	done   chan struct{}
}

// watchWrites returns the service that follows the writes of p.
func watchWrites(p store.WriteProber, logger *slog.Logger) *writesWatch {
	return &writesWatch{prober: p, log: logger, stop: make(chan struct{}), done: make(chan struct{})}
}

// Start implements Service.
func (w *writesWatch) Start(context.Context) error {
	go w.run()
	return nil
}

// Stop implements Service.
func (w *writesWatch) Stop(context.Context) error {
	close(w.stop)
	<-w.done
	return nil
}

func (w *writesWatch) run() {
	defer close(w.done)
	wr := w.prober.Writability()
	var ended time.Time // the end of the last outage logged
	for {
		changed := wr.Changed()
		since, err := wr.Outage()
		if err == nil {
			select {
			case <-changed:
				continue
			case <-w.stop:
				return
			}
		}
		again := !ended.IsZero() && time.Since(ended) < relapse
		if again {
			w.log.Debug("the store cannot write again, soon after the last outage", "err", err)
		} else {
			w.log.Error("the store cannot write: new runs are refused with 503 and runs wait at their next step; "+
				"free space or fix the disk, and the daemon goes on by itself", "err", err)
		}
		if !w.probe() {
			return
		}
		if !again {
			w.log.Info("the store writes again: runs resume, new runs are taken", "after", time.Since(since).Round(100*time.Millisecond))
		}
		ended = time.Now()
	}
}

// probe tries a write until one goes through (true), or until Stop.
func (w *writesWatch) probe() bool {
	wait := firstProbe
	for {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-w.stop:
			t.Stop()
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), maxProbe)
		err := w.prober.ProbeWrite(ctx)
		cancel()
		if err == nil {
			return true
		}
		w.log.Debug("probe of the store's writes", "err", err)
		wait = min(2*wait, maxProbe)
	}
}
