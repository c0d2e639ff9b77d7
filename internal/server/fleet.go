package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// waiting says why a queued run of a deployment waits when no live worker
// may take it: none is live, or none has the region and labels its
// routine asks for. It says nothing ("") when a live worker may: the run
// waits for a free slot, its routine's ceiling or its time, or is about
// to be claimed.
func (s *Server) waiting(ctx context.Context, run *routine.Run) string {
	live, err := s.cfg.Store.WorkerList(ctx, time.Now())
	if err != nil {
		s.log.Error("list the live workers", "err", err)
		return ""
	}
	return whyWaiting(run.Requires, live)
}

// shownWorkers is how many live workers a message about a waiting run
// lists at most.
const shownWorkers = 10

// whyWaiting is waiting's message for a run that requires need, when the
// workers live are live.
func whyWaiting(need routine.Placement, live []*store.Worker) string {
	var names []string
	for _, w := range live {
		if need.MetBy(w.Placement) {
			return ""
		}
		if len(names) < shownWorkers {
			names = append(names, w.ID+" ("+describeWorker(w.Placement)+")")
		}
	}
	if len(live) > shownWorkers {
		names = append(names, fmt.Sprintf("%d more", len(live)-shownWorkers))
	}
	start := "start one with: routines worker --db URL"
	if need.Region != "" {
		start += " --region " + need.Region
	}
	if len(need.Labels) > 0 {
		start += " --labels " + strings.Join(need.Labels, ",")
	}
	switch {
	case len(live) == 0 && need.IsZero():
		return "no live worker: " + start
	case len(live) == 0:
		return "no live worker, and it needs one of " + need.String() + ": " + start
	}
	return fmt.Sprintf("no live worker has %s (live: %s): %s", need, strings.Join(names, ", "), start)
}

// describeWorker says what a worker has: "region us-east, label gpu".
func describeWorker(p routine.Placement) string {
	if p.IsZero() {
		return "no region or labels"
	}
	return p.String()
}
