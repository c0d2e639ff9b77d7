package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/oklog/ulid/v2"
	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/events"
	"github.com/routines-dev/routines/internal/owner"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/sandbox"
	"github.com/routines-dev/routines/internal/scheduler"
)

func newRunOnceCmd(g *globals) *cobra.Command {
	var inputs []string
	var allowUnconfined bool
	cmd := &cobra.Command{
		Use:   "run-once [DIR|FILE|NAME]",
		Short: "Run a routine now, in the foreground, with live logs",
		Long: "run-once validates the routine, records a run in the project's .routines/state.db and runs it,\n" +
			"streaming each step's output prefixed with the step id. Ctrl-C cancels the run.",
		Args: argsRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, project, err := g.loadRoutine(firstArg(args))
			if err != nil {
				return err
			}
			writeWarnings(g.deps.Stderr, r)
			input, err := parseInputs(r, inputs)
			if err != nil {
				return invalid(err)
			}
			unconfined, err := g.confinement(r, allowUnconfined)
			if err != nil {
				return invalid(err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return g.execute(ctx, project, r, unconfined, &scheduler.Request{
				Trigger: routine.TriggerInfo{Kind: routine.TriggerManual},
				Input:   input,
			})
		},
	}
	cmd.Flags().StringArrayVarP(&inputs, "input", "i", nil, "input as key=value (repeatable); steps read it as {{ input.key }}")
	cmd.Flags().BoolVar(&allowUnconfined, "allow-unconfined", false, "run steps without Landlock when the kernel does not offer it")
	return cmd
}

// parseInputs reads key=value pairs and checks them against the routine.
func parseInputs(r *routine.Routine, pairs []string) (map[string]string, error) {
	input := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--input %q: write key=value", p)
		}
		input[k] = v
	}
	return input, checkInputs(r, input)
}

// checkInputs checks input against the routine's declared inputs.
func checkInputs(r *routine.Routine, input map[string]string) error {
	if err := r.CheckInput(input); err != nil {
		return fmt.Errorf("%w (pass --input NAME=VALUE for each declared input)", err)
	}
	return nil
}

// confinement checks that run steps can be confined. Off Linux a routine
// whose steps need the sandbox is refused (platformProblem). Without
// Landlock a run refuses to start unless the user allowed unconfined
// steps; without a layer the routine asks for (network: false, a resources
// limit), unless the user allowed that layer to be missing.
func (g *globals) confinement(r *routine.Routine, allow bool) (unconfined bool, err error) {
	if err := g.platformProblem(r); err != nil {
		return false, err
	}
	if !usesKind(r, "run") {
		return false, nil
	}
	if err := sandbox.Require(neededLayers(r), g.allowMissing); err != nil {
		return false, err
	}
	return g.hostConfinement(allow)
}

// hostConfinement checks that this host confines run steps with Landlock:
// without it, run steps are refused unless the user allowed them
// unconfined (allow), and then they run unconfined, with a warning.
func (g *globals) hostConfinement(allow bool) (unconfined bool, err error) {
	check := g.deps.SandboxCheck
	if check == nil {
		check = sandbox.Check
	}
	if _, err := check(); err != nil {
		if !allow {
			return false, fmt.Errorf("cannot confine run steps: %v; pass --allow-unconfined to run them without a sandbox", err)
		}
		fmt.Fprintf(g.deps.Stderr, "warning: %v; run steps are NOT confined (--allow-unconfined)\n", err)
		return true, nil
	}
	return false, nil
}

// neededLayers are the sandbox layers r asks for explicitly.
func neededLayers(r *routine.Routine) []string {
	var need []string
	if !r.Permissions.NetworkAllowed() {
		need = append(need, sandbox.LayerNetwork)
	}
	res := []*routine.Resources{r.Resources}
	for _, list := range [][]routine.Step{r.Steps, r.OnFailure} {
		for i := range list {
			res = append(res, list[i].Resources)
		}
	}
	for _, x := range res {
		if x == nil {
			continue
		}
		if x.Memory > 0 {
			need = append(need, sandbox.LayerMemory)
		}
		if x.Pids > 0 {
			need = append(need, sandbox.LayerPids)
		}
		if x.CPU > 0 {
			need = append(need, sandbox.LayerCPU)
		}
	}
	return need
}

func usesKind(r *routine.Routine, kind string) bool {
	for _, list := range [][]routine.Step{r.Steps, r.OnFailure} {
		for i := range list {
			if list[i].Kind() == kind || list[i].Compensate != nil && list[i].Compensate.Kind() == kind {
				return true
			}
		}
	}
	return false
}

// execute records a run of r in the project's store and runs it in the
// foreground, showing it live. The exit code follows the run's state.
//
// The run is recorded running, owned by this process and leased to it
// (as are its sub-runs), so a daemon on the project never claims it; if
// this process dies, the daemon finds its owner dead and resumes the run
// at its first unfinished step.
func (g *globals) execute(ctx context.Context, proj project.Project, r *routine.Routine, unconfined bool, req *scheduler.Request) error {
	routines := &projectRoutines{g: g, root: proj.Dir}
	if err := checkCalls(r, routines.Get); err != nil {
		return invalid(err)
	}
	st, err := g.openStore(ctx, proj, true)
	if err != nil {
		return err
	}
	defer st.Close()
	own, err := owner.Acquire(proj.OwnersDir())
	if err != nil {
		return err
	}
	defer own.Release()
	leases := scheduler.NewLeases(st, own.ID(), 0, nil, g.logger)
	// A cancel requested through a daemon's API is another process's
	// write, which this store does not hear: the heartbeat finds it.
	leases.Start(nil)
	defer leases.Stop()
	req.ID = ulid.Make().String()
	req.Routine = r
	req.Running, req.Holder, req.Lease = true, own.ID(), leases.Lease()
	ctx, release := leases.Hold(ctx, req.ID)
	defer release()
	run, _, err := scheduler.NewQueue(st, nil, g.logger).Enqueue(ctx, req)
	if err != nil {
		return err
	}
	out, human := g.deps.Stdout, g.deps.Stdout
	if g.output == "json" {
		human = g.deps.Stderr
	}
	fmt.Fprintf(human, "run %s · %s · rev %s\n", run.ID, r.Name, routine.ShortRevision(r.Revision))
	view := &liveView{stdout: human, stderr: g.deps.Stderr}
	resolver, err := g.secretResolver(st, proj)
	if err != nil {
		return err
	}
	eng := engine.New(engine.Config{
		Store:        st,
		Kinds:        g.deps.Kinds,
		StateDir:     proj.StateDir(),
		Logger:       g.logger,
		Observer:     view,
		Secrets:      resolver,
		Routines:     routines,
		Events:       events.Remote{Project: proj},
		Leases:       leases,
		Unconfined:   unconfined,
		AllowMissing: g.allowMissing,
	})
	run, err = eng.Execute(ctx, r, run)
	if err != nil {
		return err
	}
	view.summary(run)
	if g.output == "json" {
		steps, err := st.StepList(context.WithoutCancel(ctx), run.ID)
		if err != nil {
			return err
		}
		if err := writeJSON(out, newRunDetail(run, steps)); err != nil {
			return err
		}
	}
	return runExit(run.State)
}

// runExit is what a command that waited for a run returns, once it
// showed the run's end: nothing when it succeeded, else the exit code of
// its state (130 cancelled, 1 failed or dead).
func runExit(state routine.State) error {
	switch state {
	case routine.StateSucceeded:
		return nil
	case routine.StateCancelled:
		return &exitError{code: ExitCancelled, err: errSilent}
	}
	return &exitError{code: ExitFailed, err: errSilent}
}

// liveView prints a run as it happens: each line of a step prefixed with
// its id, step stderr to stderr, everything else to stdout.
type liveView struct {
	engine.NopObserver
	mu     sync.Mutex
	stdout io.Writer
	stderr io.Writer
}

// Log implements engine.Observer.
func (v *liveView) Log(l routine.LogLine) {
	w := v.stdout
	if l.Stream == routine.StreamStderr {
		w = v.stderr
	}
	marker := ""
	if l.Stream == routine.StreamSystem {
		marker = "· "
	}
	v.mu.Lock()
	if l.Step == "" { // a line about the whole run
		fmt.Fprintf(w, "%s%s\n", marker, l.Text)
	} else {
		fmt.Fprintf(w, "[%s] %s%s\n", l.Step, marker, l.Text)
	}
	v.mu.Unlock()
}

// StepFinished implements engine.Observer.
func (v *liveView) StepFinished(_ *routine.Run, s *routine.StepRun) {
	var msg string
	switch s.State {
	case routine.StateSkipped:
		msg = "skipped"
	case routine.StateFailed:
		msg = "failed: " + s.Error.Message
		if s.Attempts > 1 {
			msg += fmt.Sprintf(" (after %d attempts)", s.Attempts)
		}
	case routine.StateCancelled:
		if s.StartedAt == nil {
			return // never started: the summary says why
		}
		msg = "cancelled"
	default:
		return
	}
	prefix := s.ID
	if s.Phase != routine.PhaseMain {
		prefix = string(s.Phase) + ":" + s.ID
	}
	v.mu.Lock()
	fmt.Fprintf(v.stdout, "[%s] · %s\n", prefix, msg)
	v.mu.Unlock()
}

// summary prints the final line of a run.
func (v *liveView) summary(run *routine.Run) {
	v.mu.Lock()
	defer v.mu.Unlock()
	took := span(run.StartedAt, run.FinishedAt)
	fmt.Fprintf(v.stdout, "run %s %s in %s\n", run.ID, run.State, took)
	if e := run.Error; e != nil {
		where := ""
		if e.Step != "" {
			where = " in step " + e.Step
		}
		fmt.Fprintf(v.stdout, "error (%s)%s: %s\n", e.Code, where, e.Message)
	}
	if run.State == routine.StateDead {
		fmt.Fprintf(v.stdout, "input kept for replay: routines dlq replay %s\n", run.ID)
	}
}
