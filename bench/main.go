//go:build linux

// Command bench measures the engine against a plain shell doing the same
// work in the same run, and prints a table: workload, our time, the floor,
// the ratio and the target. Run it with `go run ./bench` (or `make bench`).
//
// Workloads (each step is an external process; the floor uses /bin/true,
// never the shell builtin):
//
//	seq40   40 sequential steps `true`      floor: a bash loop running /bin/true 40 times
//	par100  100 independent steps `true`    floor: bash starting /bin/true 100 times with & and wait
//	hello   one step `echo hello`           floor: bash running /bin/echo hello
//	webhook trigger-to-first-step latency of `routines serve` (see webhook.go)
//	throughput  webhook runs/s of `routines serve` under load (see daemon.go)
//	memory  RSS of `routines serve`: idle with 100 routines, 100k queued runs
//	secrets run start with 10 builtin secrets, and redaction of 100 MB of output (see secrets.go)
//	remote-throughput, remote-latency, remote-cold, remote-idle
//	        remote mode: `routines server` and `routines worker` processes on
//	        a throwaway PostgreSQL (see remote.go); -only remote runs the four
//
// For seq40 and par100 the compared times are the work itself: the run as
// the engine records it (started_at to finished_at: every step, checkpoint
// and sandbox set-up included) against the loop as bash times it. For hello
// they are whole processes, `routines run-once` against `bash -c`, start to
// exit. The whole-process times of every workload are printed too.
//
// Times are medians over -n repetitions, ours and the floor interleaved so
// both see the same machine load.
//
// It builds on Linux only: its workloads are run steps, which need Linux.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type workload struct {
	name    string
	steps   string  // the steps: section of the routine
	floor   string  // the bash script doing the same work
	target  float64 // the ratio we aim for; 0 when the target is absolute
	absMax  time.Duration
	perStep int  // steps, for the per-step overhead column
	work    bool // compare the work (run vs loop) rather than whole processes
}

func workloads() []workload {
	var seq, par strings.Builder
	for i := range 40 {
		fmt.Fprintf(&seq, "  - id: s%d\n    run: \"true\"\n", i)
	}
	for i := range 100 {
		fmt.Fprintf(&par, "  - id: p%d\n    needs: []\n    run: \"true\"\n", i)
	}
	return []workload{
		{name: "seq40", steps: seq.String(), floor: "for i in {1..40}; do /bin/true; done", target: 1.25, perStep: 40, work: true},
		{name: "par100", steps: "parallelism: 8\nsteps:\n" + par.String(), floor: "for i in {1..100}; do /bin/true & done; wait", target: 1.5, perStep: 100, work: true},
		{name: "hello", steps: "  - id: hello\n    run: echo hello\n", floor: "/bin/echo hello", absMax: 50 * time.Millisecond, perStep: 1},
	}
}

// only, when set, names the one workload to run.
var only *string

// syncMode is the --sync of the daemon of the throughput workload.
var syncMode *string

func main() {
	reps := flag.Int("n", 15, "repetitions of each measurement")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	only = flag.String("only", "", "run only this workload (seq40, par100, hello, webhook, throughput, memory, secrets, "+
		strings.Join(remoteWorkloads, ", ")+"), or remote: the four remote ones")
	syncMode = flag.String("sync", "full", "throughput: the daemon's --sync (full or normal)")
	durable = flag.Bool("durable", false, "remote workloads: run PostgreSQL with fsync, synchronous_commit and full_page_writes on (pgtest turns them off)")
	flag.Func("workers", "worker counts of remote-throughput, comma-separated (default 1,2,4,8)", func(v string) error {
		throughputWorkers = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("want counts of workers such as 1,2,4,8")
			}
			throughputWorkers = append(throughputWorkers, n)
		}
		return nil
	})
	flag.Parse()
	if err := run(*reps, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(reps int, keep bool) error {
	tmp, err := os.MkdirTemp("", "routines-bench-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(tmp)
	}
	bin := filepath.Join(tmp, "routines")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/routines")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	if info, err := os.Stat(bin); err == nil {
		fmt.Printf("binary: %.1f MB stripped\n", float64(info.Size())/1e6)
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	if *only == "" || slices.ContainsFunc(workloads(), func(w workload) bool { return w.name == *only }) {
		fmt.Fprintln(tw, "workload\tcompared\tours\tfloor\tratio\tper-step overhead\tours (process)\tfloor (process)\tpeak RSS\ttarget\tmet\t")
	}
	allMet := true
	for _, w := range workloads() {
		if *only != "" && *only != w.name {
			continue
		}
		dir := filepath.Join(tmp, w.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		body := "name: " + w.name + "\n"
		if strings.HasPrefix(w.steps, "parallelism") {
			body += w.steps
		} else {
			body += "steps:\n" + w.steps
		}
		if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(body), 0o644); err != nil {
			return err
		}
		// One warm-up run creates the store, so every measured run is alike.
		if _, err := measure(exec.Command(bin, "run-once", dir, "-o", "json"), ourWork); err != nil {
			return fmt.Errorf("%s warm-up: %w", w.name, err)
		}
		floorScript := "s=$EPOCHREALTIME; " + w.floor + "; e=$EPOCHREALTIME; echo $s $e"
		var ours, floor []sample
		for range reps {
			o, err := measure(exec.Command(bin, "run-once", dir, "-o", "json"), ourWork)
			if err != nil {
				return fmt.Errorf("%s: %w", w.name, err)
			}
			f, err := measure(exec.Command("bash", "-c", floorScript), floorWork)
			if err != nil {
				return fmt.Errorf("%s floor: %w", w.name, err)
			}
			ours, floor = append(ours, o), append(floor, f)
		}
		oProc, fProc := median(ours, func(s sample) time.Duration { return s.process }), median(floor, func(s sample) time.Duration { return s.process })
		o, f, compared := oProc, fProc, "process"
		if w.work {
			o, f, compared = median(ours, func(s sample) time.Duration { return s.work }), median(floor, func(s sample) time.Duration { return s.work }), "work"
		}
		var rss int64
		for _, s := range ours {
			rss = max(rss, s.rssKB)
		}
		ratio := float64(o) / float64(f)
		target, met := "", true
		if w.target > 0 {
			target = fmt.Sprintf("≤ %.2f×", w.target)
			met = ratio <= w.target
		} else {
			target = "≤ " + w.absMax.String()
			met = o <= w.absMax
		}
		if w.name == "hello" {
			target += ", RSS ≤ 30 MB"
			met = met && rss <= 30<<10
		}
		allMet = allMet && met
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f×\t%s\t%s\t%s\t%.1f MB\t%s\t%v\t\n", w.name, compared, ms(o), ms(f), ratio,
			ms((o-f)/time.Duration(w.perStep)), ms(oProc), ms(fProc), float64(rss)/1024, target, met)
	}
	tw.Flush()
	if !allMet {
		fmt.Println("some targets were not met")
	}
	if *only == "" || *only == "webhook" {
		if err := webhookBench(bin, tmp, reps); err != nil {
			return err
		}
	}
	if *only == "" || *only == "throughput" {
		if err := throughputBench(bin, tmp); err != nil {
			return err
		}
	}
	if *only == "" || *only == "memory" {
		if err := memoryBench(bin, tmp); err != nil {
			return err
		}
	}
	if *only == "" || *only == "secrets" {
		if err := secretsBench(bin, tmp, reps); err != nil {
			return err
		}
	}
	if *only == "" || *only == "remote" || slices.Contains(remoteWorkloads, *only) {
		return remoteBench(bin, tmp, reps)
	}
	return nil
}

// sample is one measured command: its whole process and the work inside it.
type sample struct {
	process, work time.Duration
	rssKB         int64
}

// ourWork reads the run's duration from run-once -o json.
func ourWork(out []byte) (time.Duration, error) {
	var run struct {
		State      string    `json:"state"`
		StartedAt  time.Time `json:"started_at"`
		FinishedAt time.Time `json:"finished_at"`
	}
	if err := json.Unmarshal(out, &run); err != nil || run.State != "succeeded" {
		return 0, fmt.Errorf("run did not succeed: %v: %s", err, out)
	}
	return run.FinishedAt.Sub(run.StartedAt), nil
}

// floorWork reads the two $EPOCHREALTIME stamps the floor script prints.
func floorWork(out []byte) (time.Duration, error) {
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return 0, fmt.Errorf("floor printed %q", out)
	}
	s, err1 := strconv.ParseFloat(f[len(f)-2], 64)
	e, err2 := strconv.ParseFloat(f[len(f)-1], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("floor printed %q", out)
	}
	return time.Duration((e - s) * 1e9), nil
}

// measure runs cmd, times the whole process and reads the work time and
// peak RSS.
func measure(cmd *exec.Cmd, work func([]byte) (time.Duration, error)) (sample, error) {
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%v: %s%s", err, out.String(), errOut.String())
	}
	w, err := work([]byte(out.String()))
	if err != nil {
		return sample{}, err
	}
	s := sample{process: d, work: w}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.rssKB = ru.Maxrss
	}
	return s, nil
}

func median(s []sample, f func(sample) time.Duration) time.Duration {
	ds := make([]time.Duration, len(s))
	for i, x := range s {
		ds[i] = f(x)
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
