//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// webhookBench measures trigger-to-first-step latency on an idle daemon:
// `routines serve` with two webhook routines, one whose only step is the
// cheapest builtin (`state: {get: x}`) and one whose step is `run: "true"`.
// Each request is POST /hooks/<path>?wait=10s; from the answer it takes the
// first step's started_at minus the run's queued_at (both recorded by the
// daemon), and it times the HTTP round trip. Floors, interleaved in the
// same run: a POST round trip on loopback to a Go handler that answers at
// once (the transport), and one fork/exec of /bin/true from Go.
func webhookBench(bin, tmp string, reps int) error {
	dir := filepath.Join(tmp, "webhook")
	for name, text := range map[string]string{
		"noop": "name: noop\ntriggers:\n  - webhook: { path: /noop }\nsteps:\n  - id: get\n    state: { get: x }\n",
		"true": "name: truerun\ntriggers:\n  - webhook: { path: /true }\nsteps:\n  - id: t\n    run: \"true\"\n",
	} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name, "routine.yaml"), []byte(text), 0o644); err != nil {
			return err
		}
	}
	serve := exec.Command(bin, "serve", dir, "--addr", "127.0.0.1:0", "--workers", "2")
	serve.Stdout, serve.Stderr = io.Discard, io.Discard
	if err := serve.Start(); err != nil {
		return err
	}
	defer func() {
		serve.Process.Signal(syscall.SIGTERM)
		serve.Wait()
	}()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; time.Sleep(5 * time.Millisecond) {
		if data, err := os.ReadFile(filepath.Join(dir, ".routines", "serve.json")); err == nil {
			var v struct{ Addr string }
			if json.Unmarshal(data, &v) == nil {
				addr = v.Addr
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serve did not start")
		}
	}
	// The transport floor: a handler that answers at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	floorSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"state":"succeeded"}`))
	})}
	go floorSrv.Serve(ln)
	defer floorSrv.Close()
	floorURL := "http://" + ln.Addr().String() + "/hooks/noop?wait=10s"

	client := &http.Client{Timeout: 30 * time.Second}
	fire := func(url string) (first, round time.Duration, err error) {
		start := time.Now()
		resp, err := client.Post(url, "application/json", strings.NewReader(`{}`))
		if err != nil {
			return 0, 0, err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		round = time.Since(start)
		if err != nil {
			return 0, 0, err
		}
		var run struct {
			State    string    `json:"state"`
			QueuedAt time.Time `json:"queued_at"`
			Steps    []struct {
				StartedAt time.Time `json:"started_at"`
			} `json:"steps"`
		}
		if err := json.Unmarshal(data, &run); err != nil || run.State != "succeeded" {
			return 0, 0, fmt.Errorf("%s: %d %v: %s", url, resp.StatusCode, err, data)
		}
		if len(run.Steps) > 0 {
			first = run.Steps[0].StartedAt.Sub(run.QueuedAt)
		}
		return first, round, nil
	}
	n := max(reps*10, 100)
	var noopFirst, noopRound, trueFirst, trueRound, httpFloor, forkFloor []time.Duration
	base := "http://" + addr + "/hooks/"
	for range 10 { // warm-up: the store, the connection, the sandbox rulesets
		if _, _, err := fire(base + "noop?wait=10s"); err != nil {
			return err
		}
		if _, _, err := fire(base + "true?wait=10s"); err != nil {
			return err
		}
	}
	for range n {
		f, r, err := fire(base + "noop?wait=10s")
		if err != nil {
			return err
		}
		noopFirst, noopRound = append(noopFirst, f), append(noopRound, r)
		if f, r, err = fire(base + "true?wait=10s"); err != nil {
			return err
		}
		trueFirst, trueRound = append(trueFirst, f), append(trueRound, r)
		if _, r, err = fire(floorURL); err != nil {
			return err
		}
		httpFloor = append(httpFloor, r)
		start := time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			return err
		}
		forkFloor = append(forkFloor, time.Since(start))
	}
	fmt.Printf("\nwebhook on an idle daemon (%d requests each, POST /hooks/<path>?wait=10s, interleaved with the floors)\n", n)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\tp50\tp99\tfloor\tfloor p50\tfloor p99\ttarget\tmet\t")
	row := func(name string, d []time.Duration, floorName string, fl []time.Duration, target string, met bool) {
		f50, f99 := "—", "—"
		if fl != nil {
			f50, f99 = ms(pct(fl, 50)), ms(pct(fl, 99))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t\n", name, ms(pct(d, 50)), ms(pct(d, 99)), floorName, f50, f99, target, met)
	}
	noopMet := pct(noopFirst, 50) < 2*time.Millisecond && pct(noopFirst, 99) < 10*time.Millisecond
	row("state step: queued → first step started", noopFirst, "—", nil, "p50 < 2 ms, p99 < 10 ms", noopMet)
	row("state step: HTTP round trip (?wait)", noopRound, "loopback POST", httpFloor, "", true)
	row("run true: queued → first step started", trueFirst, "fork/exec /bin/true", forkFloor, "", true)
	row("run true: HTTP round trip (?wait)", trueRound, "loopback POST + fork/exec", sum(httpFloor, forkFloor), "", true)
	tw.Flush()
	if !noopMet {
		fmt.Println("the webhook latency target was not met")
	}
	return nil
}

// pct returns the p-th percentile (nearest rank) of d; 0 when d is empty.
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (p*len(s) + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// sum pairs two series sample by sample.
func sum(a, b []time.Duration) []time.Duration {
	out := make([]time.Duration, len(a))
	for i := range a {
		out[i] = a[i] + b[i]
	}
	return out
}
