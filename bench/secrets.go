//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// secretsBench measures what secrets cost: the start of a run that
// resolves 10 builtin secrets (decrypted, audited) against the same run
// with none, in-process; and a step printing 100 MB with 10 secrets to
// redact against the same step with none, as run-once processes.
func secretsBench(bin, tmp string, reps int) error {
	resolveWith, resolveWithout, err := runStartWithSecrets(filepath.Join(tmp, "secrets-start"), reps*20)
	if err != nil {
		return err
	}
	added := resolveWith - resolveWithout
	fmt.Printf("\nsecrets: run start (one `state` step, engine in-process, median of %d)\n", reps*20)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\tours\tfloor\tadded\ttarget\tmet\t")
	fmt.Fprintf(tw, "run with 10 builtin secrets vs none\t%s\t%s\t%s\t< 1 ms\t%v\t\n", ms(resolveWith), ms(resolveWithout), ms(added), added < time.Millisecond)
	tw.Flush()

	fmt.Printf("\nredaction: a step printing 100 MB (1M lines of 100 bytes; 16 MiB kept), run-once, median of %d\n", max(3, reps/3))
	tw = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stream\twith 10 secrets\tno secrets (floor)\tratio\ttarget\tmet\t")
	for _, stream := range []string{"stdout", "stderr"} {
		with, without, err := redactionRuns(bin, filepath.Join(tmp, "redact-"+stream), stream, max(3, reps/3))
		if err != nil {
			return err
		}
		ratio := float64(with) / float64(without)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f×\t≤ 1.10×\t%v\t\n", stream, ms(with), ms(without), ratio, ratio <= 1.10)
	}
	tw.Flush()
	return nil
}

// runStartWithSecrets times engine runs of a one-step routine, with 10
// builtin secrets declared and without, interleaved, and returns the
// median run durations (Execute, from the run's record to its end).
func runStartWithSecrets(dir string, n int) (with, without time.Duration, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, 0, err
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return 0, 0, err
	}
	vault := secrets.NewBuiltin(st, secrets.KeySource{Env: id.String()})
	var names []string
	for i := range 10 {
		name := fmt.Sprintf("SECRET_%d", i)
		names = append(names, name)
		if _, err := vault.Set(ctx, store.DefaultNamespace, name, fmt.Sprintf("value-of-secret-%d-0123456789abcdef", i)); err != nil {
			return 0, 0, err
		}
	}
	resolver, err := secrets.NewResolver(secrets.ResolverConfig{Providers: []secrets.Provider{vault}, Default: []string{"builtin"}, Audit: st})
	if err != nil {
		return 0, 0, err
	}
	eng := engine.New(engine.Config{Store: st, Kinds: stepkind.NewRegistry(steps.StateKind{}), StateDir: dir, Secrets: resolver})
	parse := func(decl string) (*routine.Routine, error) {
		return spec.Parse("routine.yaml", []byte("name: start\n"+decl+"steps:\n  - id: get\n    state: { get: x }\n"), dir)
	}
	rWith, err := parse("secrets: [" + strings.Join(names, ", ") + "]\n")
	if err != nil {
		return 0, 0, err
	}
	rWithout, err := parse("")
	if err != nil {
		return 0, 0, err
	}
	one := func(r *routine.Routine) (time.Duration, error) {
		run, err := st.RunCreate(ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: r.Name, QueuedAt: time.Now()})
		if err != nil {
			return 0, err
		}
		start := time.Now()
		done, err := eng.Execute(ctx, r, run)
		if err == nil && done.State != routine.StateSucceeded {
			err = fmt.Errorf("run %s: %v", done.State, done.Error)
		}
		return time.Since(start), err
	}
	var ws, wos []time.Duration
	for i := range n + 10 {
		w, err := one(rWith)
		if err != nil {
			return 0, 0, err
		}
		wo, err := one(rWithout)
		if err != nil {
			return 0, 0, err
		}
		if i >= 10 { // warm-up
			ws, wos = append(ws, w), append(wos, wo)
		}
	}
	return medianOf(ws), medianOf(wos), nil
}

// redactionRuns times run-once of a step printing 100 MB to stream, with
// 10 secrets declared (from the environment) and without.
func redactionRuns(bin, dir, stream string, n int) (with, without time.Duration, err error) {
	redirect := ""
	if stream == "stderr" {
		redirect = " >&2"
	}
	line := strings.Repeat("the quick brown fox jumps over the lazy dog ", 3)[:99]
	step := fmt.Sprintf("steps:\n  - id: print\n    run: head -c 100000000 < <(yes '%s')%s\n", line, redirect)
	var names []string
	env := os.Environ()
	for i := range 10 {
		name := fmt.Sprintf("SECRET_%d", i)
		names = append(names, name)
		env = append(env, fmt.Sprintf("%s=value-of-secret-%d-0123456789abcdef", name, i))
	}
	dirs := map[bool]string{true: filepath.Join(dir, "with"), false: filepath.Join(dir, "without")}
	for secretsOn, d := range dirs {
		body := "name: print\n" + step
		if secretsOn {
			body = "name: print\nsecrets: [" + strings.Join(names, ", ") + "]\n" + step
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, 0, err
		}
		if err := os.WriteFile(filepath.Join(d, "routine.yaml"), []byte(body), 0o644); err != nil {
			return 0, 0, err
		}
	}
	runOnce := func(d string) (time.Duration, error) {
		cmd := exec.Command(bin, "run-once", d, "-o", "json")
		cmd.Env = env
		s, err := measure(cmd, ourWork)
		return s.work, err
	}
	var ws, wos []time.Duration
	for i := range n + 1 {
		w, err := runOnce(dirs[true])
		if err != nil {
			return 0, 0, err
		}
		wo, err := runOnce(dirs[false])
		if err != nil {
			return 0, 0, err
		}
		if i > 0 { // the first creates the stores
			ws, wos = append(ws, w), append(wos, wo)
		}
	}
	return medianOf(ws), medianOf(wos), nil
}

func medianOf(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
