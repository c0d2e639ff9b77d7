package steps

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/client"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// EmitKind publishes an event by posting it to POST /v1/events/<name> of
// the daemon: the one given by server:, else the project's running daemon
// (its address is in .routines/serve.json). So an emit step works in a
// routine run by `routines serve`, or by `run-once` while a daemon runs.
type EmitKind struct {
	// Client sends the request; http.DefaultClient when nil.
	Client *http.Client
}

// Name implements Kind.
func (EmitKind) Name() string { return "emit" }

// emitTimeout bounds one post when the step has no timeout of its own.
const emitTimeout = 30 * time.Second

// Execute implements Kind. It outputs run_ids (the ids of the runs the
// event made or folded into, comma-separated) and deduplicated (true when
// any of them was a duplicate folded into an earlier run).
func (k EmitKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	a := x.Action.Emit
	if a == nil || strings.TrimSpace(a.Event) == "" {
		return nil, errors.New("emit: event names no event (did a template render empty?)")
	}
	base := a.Server
	if base == "" {
		if x.StateDir == "" {
			return nil, errors.New("emit: no project directory to find the daemon in: set the step's server")
		}
		var err error
		if base, err = (project.Project{Dir: filepath.Dir(x.StateDir)}).DaemonURL(); err != nil {
			return nil, fmt.Errorf("emit: %w (or set the step's server)", err)
		}
	}
	token := a.Token
	if token == "" {
		token = x.Env["ROUTINES_TOKEN"]
	}
	if token == "" {
		token = os.Getenv("ROUTINES_TOKEN")
	}
	data := a.Data
	if data == nil {
		data = map[string]string{}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, emitTimeout)
		defer cancel()
	}
	var opts []client.Option
	if k.Client != nil {
		opts = append(opts, client.WithHTTPClient(k.Client))
	}
	res, err := client.New(base, token, opts...).Emit(ctx, a.Event, data, a.Dedupe, 0)
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

var _ stepkind.Kind = EmitKind{}
