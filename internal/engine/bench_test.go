package engine_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// benchmarkRoutine runs a routine of n `true` steps with the real run kind,
// store and sandbox, and reports the ratio to a floor measured in the same
// benchmark: starting /bin/true the same number of times from Go.
func benchmarkRoutine(b *testing.B, n int, parallel bool) {
	dir := b.TempDir()
	var yaml strings.Builder
	fmt.Fprintf(&yaml, "name: bench\nparallelism: 8\nsteps:\n")
	for i := range n {
		fmt.Fprintf(&yaml, "  - id: s%d\n    run: \"true\"\n", i)
		if parallel {
			yaml.WriteString("    needs: []\n")
		}
	}
	r, err := spec.Parse("routine.yaml", []byte(yaml.String()), dir)
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, ".routines", "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e := engine.New(engine.Config{Store: st, Kinds: stepkind.NewRegistry(steps.RunKind{}), StateDir: filepath.Join(dir, ".routines")})
	var ours, floor time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		run, err := st.RunCreate(context.Background(), &store.RunCreateParams{ID: fmt.Sprintf("01BENCH%019d", i), Routine: r.Name, QueuedAt: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		run, err = e.Execute(context.Background(), r, run)
		if err != nil || run.State != routine.StateSucceeded {
			b.Fatalf("%v %+v", err, run.Error)
		}
		ours += time.Since(start)
		start = time.Now()
		if parallel {
			cmds := make([]*exec.Cmd, n)
			for j := range cmds {
				cmds[j] = exec.Command("/bin/true")
				cmds[j].Start()
			}
			for _, c := range cmds {
				c.Wait()
			}
		} else {
			for range n {
				exec.Command("/bin/true").Run()
			}
		}
		floor += time.Since(start)
	}
	b.ReportMetric(float64(ours)/float64(floor), "x-floor")
	b.ReportMetric(float64(ours-floor)/float64(b.N*n)/1e6, "ms-overhead/step")
}

func BenchmarkSeq40(b *testing.B)  { benchmarkRoutine(b, 40, false) }
func BenchmarkPar100(b *testing.B) { benchmarkRoutine(b, 100, true) }
