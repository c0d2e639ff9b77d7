package steps

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
)

// StateKind gets, puts or deletes a key of the routine's own persistent
// key/value store. The keys of a routine are invisible to other routines.
type StateKind struct{}

// Name implements Kind.
func (StateKind) Name() string { return "state" }

// DirFree implements stepkind.DirFree: its steps use no file of the
// routine directory.
func (StateKind) DirFree() {}

var _ stepkind.DirFree = StateKind{}

// Execute implements Kind. get outputs value ("" when missing) and found;
// put outputs value and found (whether the key existed before); delete
// outputs found. Each prints one line that says what it did.
func (StateKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	a := x.Action.State
	if x.State == nil || x.Now == nil {
		return nil, errors.New("state: the engine gave this step no store")
	}
	op, key := a.Op()
	if op == "" {
		return nil, errors.New("state: get, put or delete names no key (did a template render empty?)")
	}
	if err := routine.CheckStateKey(key); err != nil {
		return nil, err
	}
	if holdsSecret(x, key) || op == routine.StateOpPut && holdsSecret(x, a.Value) {
		return nil, errors.New("state: the key or value holds a secret's value; secrets are never kept in state (declare the secret and use {{NAME}} in each run instead)")
	}
	now := x.Now()
	switch op {
	case routine.StateOpGet:
		value, found, err := x.State.StateGet(ctx, &store.StateGetParams{Routine: x.Routine, Key: key, Now: now})
		if err != nil {
			return nil, err
		}
		if found {
			fmt.Fprintf(x.Stdout, "%s = %s\n", key, shown(value))
		} else {
			fmt.Fprintf(x.Stdout, "%s is not set\n", key)
		}
		return &stepkind.Result{Outputs: routine.Outputs{"value": value, "found": strconv.FormatBool(found)}}, nil
	case routine.StateOpPut:
		if err := routine.CheckStateValue(a.Value); err != nil {
			return nil, err
		}
		p := &store.StatePutParams{Routine: x.Routine, Key: key, Value: a.Value, Now: now}
		if a.TTL > 0 {
			expires := now.Add(a.TTL.D())
			p.ExpiresAt = &expires
		}
		existed, err := x.State.StatePut(ctx, p)
		if err != nil {
			return nil, err
		}
		if p.ExpiresAt != nil {
			fmt.Fprintf(x.Stdout, "%s = %s, expires in %s\n", key, shown(a.Value), a.TTL.D())
		} else {
			fmt.Fprintf(x.Stdout, "%s = %s\n", key, shown(a.Value))
		}
		return &stepkind.Result{Outputs: routine.Outputs{"value": a.Value, "found": strconv.FormatBool(existed)}}, nil
	default:
		existed, err := x.State.StateDelete(ctx, &store.StateDeleteParams{Routine: x.Routine, Key: key, Now: now})
		if err != nil {
			return nil, err
		}
		if existed {
			fmt.Fprintf(x.Stdout, "%s deleted\n", key)
		} else {
			fmt.Fprintf(x.Stdout, "%s was not set\n", key)
		}
		return &stepkind.Result{Outputs: routine.Outputs{"found": strconv.FormatBool(existed)}}, nil
	}
}

// shownValueLen is the longest value the step's log line shows.
const shownValueLen = 80

// shown is a value as the step's log line shows it: whole when it is one
// short line, which the engine's redaction of secrets then covers as it
// covers any output line, else only its size. A value is never cut: a cut
// secret would escape redaction.
func shown(v string) string {
	switch {
	case v == "":
		return "(empty)"
	case len(v) > shownValueLen || strings.ContainsAny(v, "\r\n"):
		return fmt.Sprintf("(%d bytes)", len(v))
	}
	return v
}

var _ stepkind.Kind = StateKind{}
