package daemon_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/routines-dev/routines/internal/daemon"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/trigger"
)

// recorder is a service that writes its starts and stops to a shared log.
func recorder(log *[]string, name string, failStart error) daemon.Service {
	return daemon.Func{
		OnStart: func(context.Context) error {
			*log = append(*log, "start "+name)
			return failStart
		},
		OnStop: func(context.Context) error { *log = append(*log, "stop "+name); return nil },
	}
}

func TestGroupStopsInReverseOrder(t *testing.T) {
	t.Parallel()
	var log []string
	var g daemon.Group
	for _, n := range []string{"listener", "executor", "intake"} {
		g.Add(n, recorder(&log, n, nil))
	}
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(t.Context()); err != nil { // stopping twice stops nothing twice
		t.Fatal(err)
	}
	want := []string{"start listener", "start executor", "start intake", "stop intake", "stop executor", "stop listener"}
	if !slices.Equal(log, want) {
		t.Fatalf("log %q, want %q", log, want)
	}
}

func TestGroupFailedStartStopsWhatStarted(t *testing.T) {
	t.Parallel()
	var log []string
	var g daemon.Group
	boom := errors.New("address in use")
	g.Add("store", recorder(&log, "store", nil))
	g.Add("listener", recorder(&log, "listener", boom))
	g.Add("executor", recorder(&log, "executor", nil))
	err := g.Start(t.Context())
	if !errors.Is(err, boom) || err.Error() != "start listener: address in use" {
		t.Fatalf("err %v; want it to name the listener", err)
	}
	want := []string{"start store", "start listener", "stop store"}
	if !slices.Equal(log, want) {
		t.Fatalf("log %q, want %q", log, want)
	}
}

// source records what it is given, and refuses a routine named "bad".
type source struct {
	name string
	log  *[]string
}

func (s source) Start(context.Context) error { return nil }
func (s source) Stop(context.Context) error  { return nil }
func (s source) Remove(n string)             { *s.log = append(*s.log, s.name+" remove "+n) }
func (s source) Set(_ context.Context, r *routine.Routine) error {
	if r.Revision == "bad" && s.name == "second" {
		return errors.New("trigger 0: bad cron")
	}
	*s.log = append(*s.log, s.name+" set "+r.Name+"@"+r.Revision)
	return nil
}

// A revision one source refuses leaves every source on the previous one.
func TestTriggersSetIsAllOrPrevious(t *testing.T) {
	t.Parallel()
	var log []string
	kinds := []trigger.NewSource{
		func(trigger.SourceEnv) trigger.Source { return source{"first", &log} },
		func(trigger.SourceEnv) trigger.Source { return source{"second", &log} },
	}
	tr := daemon.NewTriggers(kinds, trigger.SourceEnv{})
	v1 := &routine.Routine{Name: "r", Revision: "v1"}
	if err := tr.Set(t.Context(), v1, nil); err != nil {
		t.Fatal(err)
	}
	if err := tr.Set(t.Context(), &routine.Routine{Name: "r", Revision: "bad"}, v1); err == nil {
		t.Fatal("a refused revision was taken")
	}
	if err := tr.Set(t.Context(), &routine.Routine{Name: "new", Revision: "bad"}, nil); err == nil {
		t.Fatal("a refused routine was taken")
	}
	want := []string{"first set r@v1", "second set r@v1", "first set r@bad", "first set r@v1", "first set new@bad", "first remove new"}
	if !slices.Equal(log, want) {
		t.Fatalf("log %q, want %q", log, want)
	}
}
