package steps

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/events"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// EmitKind publishes an event. With server: it posts it to POST
// /v1/events/<name> of that daemon or server; otherwise it hands it to
// the run's publisher (stepkind.Execution.Events): in a daemon, straight
// to its queue, with no HTTP; under run-once, to the project's running
// daemon.
type EmitKind struct {
	// Client sends the requests to server:; http.DefaultClient when nil.
	Client *http.Client
}

// Name implements Kind.
func (EmitKind) Name() string { return "emit" }

// DirFree implements stepkind.DirFree: its steps use no file of the
// routine directory.
func (EmitKind) DirFree() {}

var _ stepkind.DirFree = EmitKind{}

// emitTimeout bounds one publish when the step has no timeout of its own.
const emitTimeout = 30 * time.Second

// Execute implements Kind. It outputs run_ids (the ids of the runs the
// event made or folded into) and deduplicated (true when any of them was
// a duplicate folded into an earlier run).
func (k EmitKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	a := x.Action.Emit
	if a == nil || strings.TrimSpace(a.Event) == "" {
		return nil, errors.New("emit: event names no event (did a template render empty?)")
	}
	if err := routine.CheckEventName(a.Event); err != nil {
		return nil, stepkind.Fail("", false, fmt.Errorf("emit: %w", err))
	}
	pub, err := k.publisher(a, x)
	if err != nil {
		return nil, err
	}
	e := &stepkind.Emission{Event: a.Event, Data: a.Data, Dedupe: a.Dedupe, Token: a.Token, Namespace: x.Namespace}
	if e.Token == "" {
		e.Token = x.Env["ROUTINES_TOKEN"]
	}
	if e.Token == "" {
		e.Token = os.Getenv("ROUTINES_TOKEN")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, emitTimeout)
		defer cancel()
	}
	res, err := pub.Emit(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("emit %s: %w", a.Event, err)
	}
	ids := make([]any, 0, len(res.Runs))
	dup := false
	for _, r := range res.Runs {
		ids = append(ids, r.RunID)
		dup = dup || r.Deduplicated
		note := "queued"
		if r.Deduplicated {
			note = "deduplicated into"
		}
		fmt.Fprintf(x.Stdout, "%s: %s run %s\n", r.Routine, note, r.RunID)
	}
	if len(res.Runs) == 0 {
		fmt.Fprintf(x.Stdout, "event %s emitted; no routine listens to it\n", a.Event)
	}
	return &stepkind.Result{Outputs: routine.Outputs{
		"run_ids":      ids,
		"deduplicated": strconv.FormatBool(dup),
	}}, nil
}

// publisher is where the step's event goes: server: over HTTP, else the
// run's publisher.
func (k EmitKind) publisher(a *routine.EmitAction, x *stepkind.Execution) (stepkind.Publisher, error) {
	switch {
	case a.Server != "":
		return events.Remote{URL: a.Server, Client: k.Client}, nil
	case x.Events != nil:
		return x.Events, nil
	}
	return nil, stepkind.Fail("", false, errors.New("emit: this run has no daemon to publish to: set the step's server: to the URL of a daemon or server"))
}

var _ stepkind.Kind = EmitKind{}
