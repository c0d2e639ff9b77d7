//go:build linux

// The daemon runs as a child process of the test (startServeProcess in
// serve_limits_test.go), which is Linux's.

package cli_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// testMasterKey seals the secrets of these tests only.
const testMasterKey = "AGE-SECRET-KEY-1054T0SUYLVKLYFNDYL8WZP5DV4PF3P5DCW369SPA3FYMM4DTDSJSJXARWX"

// TestBackupUnderLoadRestoreElsewhere backs up the store of a daemon in a
// process of its own while webhooks keep it busy, restores the backup
// into another project, and finds there every run acknowledged before
// the backup started, the finished ones with their logs; the backup holds
// the vault's secret sealed, never in clear, nor the master key.
func TestBackupUnderLoadRestoreElsewhere(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hook", "routine.yaml"), `name: hook
secrets: [HOOK_TOKEN]
triggers:
  - webhook: { path: /hook, secret: s3cret }
steps:
  - id: say
    run: echo "got {{ event.n }} with $HOOK_TOKEN"
`)
	const secret = "hook-token-value-3b9f"
	getenv := func(k string) (string, bool) {
		if k == "ROUTINES_MASTER_KEY" {
			return testMasterKey, true
		}
		return "", false
	}
	if r := routinesWith(t, cli.Deps{Getenv: getenv, Stdin: strings.NewReader(secret)}, dir, "secrets", "set", "HOOK_TOKEN"); r.code != 0 {
		t.Fatalf("secrets set: %+v", r)
	}
	d := startServeProcess(t, dir, []string{"ROUTINES_MASTER_KEY=" + testMasterKey, "ROUTINES_PROJECT="}, "--workers", "4")

	// Two kinds of acknowledgement: 202 (queued, recorded) and 200 of
	// ?wait (finished, its logs recorded).
	type ack struct {
		id       string
		n        int
		finished bool
	}
	var (
		mu   sync.Mutex
		acks []ack
		n    atomic.Int64
		done atomic.Int64 // finished runs acknowledged
		stop atomic.Bool
		wg   sync.WaitGroup
	)
	hook := func(wait bool) {
		for !stop.Load() {
			if !wait {
				time.Sleep(20 * time.Millisecond) // a flood would leave the waiting ones waiting
			}
			i := int(n.Add(1))
			body := fmt.Sprintf(`{"n":%d}`, i)
			url := d.url + "/hooks/hook"
			if wait {
				url += "?wait=20s"
			}
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
			req.Header.Set("X-Routines-Signature", sign("s3cret", body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("POST: %v", err)
				return
			}
			var v struct {
				ID    string `json:"id"`
				RunID string `json:"run_id"`
				State string `json:"state"`
			}
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			switch {
			case err != nil:
				t.Errorf("answer: %v", err)
				return
			case resp.StatusCode == http.StatusAccepted && cmp.Or(v.RunID, v.ID) != "": // ?wait ran out: queued
				mu.Lock()
				acks = append(acks, ack{id: cmp.Or(v.RunID, v.ID), n: i})
				mu.Unlock()
			case resp.StatusCode == http.StatusOK && v.State == string(routine.StateSucceeded):
				mu.Lock()
				acks = append(acks, ack{id: v.ID, n: i, finished: true})
				mu.Unlock()
				done.Add(1)
			default:
				t.Errorf("POST: %d %+v", resp.StatusCode, v)
				return
			}
		}
	}
	for _, wait := range []bool{false, true, true} {
		wg.Go(func() { hook(wait) })
	}
	for deadline := time.Now().Add(60 * time.Second); n.Load() < 100 || done.Load() < 10; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) || t.Failed() {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("%d webhooks posted, %d finished runs acknowledged: the load does not go; daemon: %s", n.Load(), done.Load(), d.logs())
		}
	}
	mu.Lock()
	before := append([]ack(nil), acks...)
	mu.Unlock()
	file := filepath.Join(t.TempDir(), "nightly.db")
	b := routines(t, dir, "backup", file, "-o", "json")
	stop.Store(true)
	wg.Wait()
	if b.code != 0 {
		t.Fatalf("backup: %+v", b)
	}
	var info sqlite.FileInfo
	if err := json.Unmarshal([]byte(b.stdout), &info); err != nil || info.Runs < len(before) || info.Schema != sqlite.LatestSchema() || len(info.SHA256) != 64 {
		t.Fatalf("backup -o json: %+v (%v), want at least %d runs", info, err, len(before))
	}
	if len(before) < 50 {
		t.Fatalf("only %d runs acknowledged before the backup: no load", len(before))
	}

	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{secret, testMasterKey, strings.TrimPrefix(testMasterKey, "AGE-SECRET-KEY-")} {
		if bytes.Contains(bytes.ToLower(data), bytes.ToLower([]byte(clear))) {
			t.Fatalf("the backup holds %q in clear", clear)
		}
	}

	// The daemon holds the project: restore there is refused.
	if r := routines(t, dir, "restore", file); r.code != 2 || !strings.Contains(r.stderr, "stop it first") {
		t.Fatalf("restore while the daemon runs: %+v", r)
	}

	other := t.TempDir()
	r := routines(t, other, "restore", file)
	if r.code != 0 || !strings.Contains(r.stdout, "restored "+file) || !strings.Contains(r.stdout, info.SHA256) {
		t.Fatalf("restore: %+v", r)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(other, ".routines", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	finished := 0
	for _, a := range before {
		run, err := st.RunGet(t.Context(), a.id)
		if err != nil {
			t.Fatalf("run %s acknowledged before the backup: %v", a.id, err)
		}
		if !a.finished {
			continue
		}
		finished++
		lines, err := st.LogList(t.Context(), &store.LogListParams{RunID: a.id})
		want := fmt.Sprintf("got %d with ***", a.n)
		if err != nil || !logsHave(lines, want) || run.State != routine.StateSucceeded {
			t.Fatalf("run %s (%s): logs %+v (%v), want %q", a.id, run.State, lines, err, want)
		}
	}
	if finished == 0 {
		t.Fatal("no finished run acknowledged before the backup")
	}
	sec, err := st.SecretGet(t.Context(), store.DefaultNamespace, "HOOK_TOKEN")
	if err != nil || len(sec.Ciphertext) == 0 || bytes.Contains(sec.Ciphertext, []byte(secret)) {
		t.Fatalf("restored secret: %+v, %v", sec, err)
	}
	t.Logf("%d runs acknowledged before the backup (%d finished), %d in the backup (%d bytes)", len(before), finished, info.Runs, info.Size)

	// A daemon that died leaves its record: it blocks nothing.
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
	if r := routines(t, dir, "restore", file); r.code != 0 || !strings.Contains(r.stdout, "state.db.before-restore-") {
		t.Fatalf("restore after the daemon died: %+v", r)
	}
}

func logsHave(lines []routine.LogLine, text string) bool {
	for _, l := range lines {
		if strings.Contains(l.Text, text) {
			return true
		}
	}
	return false
}

func TestBackupRestoreErrors(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	if r := routines(t, empty, "backup", filepath.Join(t.TempDir(), "b.db")); r.code != 2 || !strings.Contains(r.stderr, "nothing to back up") {
		t.Fatalf("backup of a project without a store: %+v", r)
	}
	if r := routines(t, empty, "restore", filepath.Join(t.TempDir(), "none.db")); r.code != 1 || !strings.Contains(r.stderr, "sha256sum") {
		t.Fatalf("restore of a missing file: %+v", r)
	}
	if r := routines(t, empty, "--profile", "prod", "backup", "x.db"); r.code != 2 || !strings.Contains(r.stderr, "pg_dump") {
		t.Fatalf("backup with --profile: %+v", r)
	}
}

// damage overwrites the b-tree header of page n of the file (the page
// type, its first free block and cell count).
func damage(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := (n - 1) * 4096
	if n == 1 {
		off += 100
	}
	if _, err := f.WriteAt([]byte{0xff, 0xff, 0xff, 0xff, 0xff}, off); err != nil {
		t.Fatal(err)
	}
}

// A damaged store: doctor finds it and says what to do; commands that
// open it refuse it with the same advice, and a backup restores it.
func TestDoctorFindsADamagedStore(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: hi\nsteps:\n  - id: s\n    run: echo hi\n")
	for range 3 {
		if r := routines(t, dir, "run-once", dir); r.code != 0 {
			t.Fatalf("run-once: %+v", r)
		}
	}
	r := routines(t, dir, "doctor", "-o", "json")
	var rep struct {
		Store *struct {
			Status   string
			Problems []string
			Schema   int
			Latest   int
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Store == nil || rep.Store.Status != "ok" || rep.Store.Schema != rep.Store.Latest {
		t.Fatalf("doctor of a sound store: %+v (%v)", r, err)
	}
	file := filepath.Join(t.TempDir(), "good.db")
	if r := routines(t, dir, "backup", file); r.code != 0 || !strings.Contains(r.stdout, "runs    3 (succeeded 3)") {
		t.Fatalf("backup: %+v", r)
	}

	path := filepath.Join(dir, ".routines", "state.db")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	damage(t, path, fi.Size()/4096) // a page of the runs or logs written last
	for _, args := range [][]string{{"doctor"}, {"doctor", "--quick"}} {
		r := routines(t, dir, args...)
		if r.code != 1 || !strings.Contains(r.stdout, "DAMAGED") || !strings.Contains(r.stdout, "routines restore BACKUP") {
			t.Fatalf("%v of a damaged store: %+v", args, r)
		}
	}
	damage(t, path, 1) // the schema
	for _, args := range [][]string{{"runs"}, {"serve", dir, "--addr", "127.0.0.1:0"}} {
		r := routines(t, dir, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "is damaged") || !strings.Contains(r.stderr, "routines doctor") {
			t.Fatalf("%s on a damaged store: %+v", args[0], r)
		}
	}
	if r := routines(t, dir, "restore", file); r.code != 0 {
		t.Fatalf("restore: %+v", r)
	}
	if r := routines(t, dir, "doctor", "-o", "json"); !strings.Contains(r.stdout, `"status": "ok"`) {
		t.Fatalf("doctor after the restore: %+v", r)
	}
	if r := routines(t, dir, "runs"); r.code != 0 || strings.Count(r.stdout, "succeeded") != 3 {
		t.Fatalf("runs after the restore: %+v", r)
	}
}
