package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var phaseNames = []string{"ruleset", "outputs", "startConfined", "out.start+afterfunc", "waitExit", "sweep+stop", "p.Wait", "out.wait"}

func runTimed(ctx context.Context, c *Command, ph []time.Duration) (*Result, error) {
	t0 := time.Now()
	mark := func(i int) { now := time.Now(); ph[i] += now.Sub(t0); t0 = now }
	grace := defaultKillGrace
	ruleset, err := newRuleset(&c.Policy)
	if err != nil {
		return nil, err
	}
	defer unix.Close(ruleset)
	null, _ := devNull()
	mark(0)
	out, err := openOutputs(c.Stdout, c.Stderr, null)
	if err != nil {
		return nil, err
	}
	args := []string{c.Path}
	attr := &os.ProcAttr{Env: []string{}, Files: []*os.File{null, out.stdout, out.stderr}, Sys: &syscall.SysProcAttr{Setpgid: true}}
	mark(1)
	start := time.Now()
	var p *os.Process
	if c.Policy.Unconfined {
		p, err = spawn(c.Path, args, attr, &c.Policy)
	} else {
		p, err = startConfined(ruleset, func() (*os.Process, error) { return spawn(c.Path, args, attr, &c.Policy) })
	}
	if err != nil {
		return nil, err
	}
	mark(2)
	out.start()
	g := &group{pgid: p.Pid, grace: grace}
	stop := context.AfterFunc(ctx, g.terminate)
	mark(3)
	exitErr := waitExit(p.Pid)
	mark(4)
	g.sweep()
	stop()
	mark(5)
	ps, err := p.Wait()
	end := time.Now()
	mark(6)
	out.wait(grace)
	mark(7)
	if err := errors.Join(exitErr, err); err != nil {
		return nil, fmt.Errorf("sandbox: wait for %s: %w", c.Path, err)
	}
	return result(ps, end.Sub(start)), nil
}

func TestPhases(t *testing.T) {
	if os.Getenv("PHASES") == "" {
		t.Skip()
	}
	c := &Command{Path: "/bin/true", Stdout: &lineWriter{}, Stderr: &lineWriter{}, Policy: Policy{ReadWrite: []string{t.TempDir(), t.TempDir()}}}
	if os.Getenv("PHASES") == "unconfined" {
		c.Policy.Unconfined = true
	}
	if os.Getenv("NILW") != "" {
		c.Stdout, c.Stderr = nil, nil
	}
	const n = 3000
	ph := make([]time.Duration, len(phaseNames))
	for range 200 {
		runTimed(t.Context(), c, ph)
	}
	clear(ph)
	var tot []time.Duration
	for range n {
		s := time.Now()
		runTimed(t.Context(), c, ph)
		tot = append(tot, time.Since(s))
	}
	sort.Slice(tot, func(i, j int) bool { return tot[i] < tot[j] })
	for i, name := range phaseNames {
		fmt.Printf("%-22s %8v\n", name, ph[i]/n)
	}
	fmt.Println("median total", tot[n/2])
}
