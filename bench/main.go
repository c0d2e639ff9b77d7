// Command bench measures the engine against a plain shell doing the same
// work in the same run, and prints a table: workload, our time, the floor,
// the ratio and the target. Run it with `go run ./bench` (or `make bench`).
//
// Workloads (each step is an external process; the floor uses /bin/true,
// never the shell builtin):
//
//	seq40   40 sequential steps `true`      floor: a bash loop running /bin/true 40 times
//	par100  100 independent steps `true`    floor: bash starting /bin/true 100 times with & and wait
//	hello   `routines run-once` of one step `echo hello`, the whole process from start to exit
//	        floor: bash running /bin/echo hello
//
// Times are medians over -n repetitions, ours and the floor interleaved so
// both see the same machine load.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	perStep int // steps, for the per-step overhead column
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
		{name: "seq40", steps: seq.String(), floor: "for i in {1..40}; do /bin/true; done", target: 1.25, perStep: 40},
		{name: "par100", steps: "parallelism: 8\nsteps:\n" + par.String(), floor: "for i in {1..100}; do /bin/true & done; wait", target: 1.5, perStep: 100},
		{name: "hello", steps: "  - id: hello\n    run: echo hello\n", floor: "/bin/echo hello", absMax: 50 * time.Millisecond, perStep: 1},
	}
}

func main() {
	reps := flag.Int("n", 15, "repetitions of each measurement")
	keep := flag.Bool("keep", false, "keep the temporary directory")
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
	fmt.Fprintln(tw, "workload\tours (median)\tfloor (median)\tratio\tper-step overhead\tpeak RSS\ttarget\tmet\t")
	allMet := true
	for _, w := range workloads() {
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
		if _, _, err := timeCmd(exec.Command(bin, "run-once", dir)); err != nil {
			return fmt.Errorf("%s warm-up: %w", w.name, err)
		}
		var ours, floor []time.Duration
		var rss int64
		for range reps {
			d, r, err := timeCmd(exec.Command(bin, "run-once", dir))
			if err != nil {
				return fmt.Errorf("%s: %w", w.name, err)
			}
			ours, rss = append(ours, d), max(rss, r)
			d, _, err = timeCmd(exec.Command("bash", "-c", w.floor))
			if err != nil {
				return fmt.Errorf("%s floor: %w", w.name, err)
			}
			floor = append(floor, d)
		}
		o, f := median(ours), median(floor)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f×\t%s\t%.1f MB\t%s\t%v\t\n", w.name, ms(o), ms(f), ratio, ms((o-f)/time.Duration(w.perStep)), float64(rss)/1024, target, met)
	}
	tw.Flush()
	if !allMet {
		fmt.Println("some targets were not met")
	}
	return nil
}

// timeCmd runs cmd and returns its wall time and peak RSS in KiB.
func timeCmd(cmd *exec.Cmd) (time.Duration, int64, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("%v: %s", err, out.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return d, rss, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
