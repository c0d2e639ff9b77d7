// Package webhooktosqlite is the example of the sql step: orders posted to a
// webhook are checked by a bash step and stored in a SQLite table. Its test
// starts the daemon, posts orders the way a shop would, and reads the table.
package webhooktosqlite

import (
	"database/sql"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

// run is the part of the webhook's ?wait answer the test reads.
type run struct {
	State string `json:"state"`
	Steps []struct {
		ID      string         `json:"id"`
		State   string         `json:"state"`
		Outputs map[string]any `json:"outputs"`
	} `json:"steps"`
	Error *struct {
		Step       string `json:"step"`
		Message    string `json:"message"`
		StderrTail string `json:"stderr_tail"`
	} `json:"error"`
}

func (r *run) outputs(step string) map[string]any {
	for _, s := range r.Steps {
		if s.ID == step {
			return s.Outputs
		}
	}
	return nil
}

// post sends one order and waits for its run to end.
func post(t *testing.T, addr, body string) *run {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/hooks/orders?wait=20s", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r run
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %+v", body, resp.StatusCode, r)
	}
	return &r
}

func TestOrdersLandInSQLite(t *testing.T) {
	// A copy, so the checkout gets no .routines/ or data/ of its own.
	dir := clitest.CopyProject(t, ".", "data")
	addr, out := clitest.Serve(t, dir)

	for _, tt := range []struct {
		body     string
		state    string
		affected string // of the save step, when the run succeeds
		failure  string // in the stderr of the transform step of a failed run
	}{
		{`{"id":"A-1001","customer":"  Ada   Lovelace ","total":12.5}`, "succeeded", "1", ""},
		{`{"id":"A-1002","customer":"Robert'); DROP TABLE orders; --","total":"7"}`, "succeeded", "1", ""},
		// The shop retries a delivery: the first one stays.
		{`{"id":"A-1001","customer":"Someone Else","total":99}`, "succeeded", "0", ""},
		{`{"id":"A-1003","customer":"Grace Hopper","total":"12.345"}`, "failed", "", "order rejected: total must be an amount such as 12.50, got '12.345'"},
		{`{"id":"A 1004","customer":"Alan Turing","total":3}`, "failed", "", "order rejected: id must be"},
		{`{"customer":"Nobody"}`, "failed", "", "order rejected: id must be"},
		{`{"id":"A-1005","customer":" ","total":3}`, "failed", "", "order rejected: customer is missing"},
	} {
		r := post(t, addr, tt.body)
		if r.State != tt.state {
			t.Fatalf("%s: run %s, want %s: %+v\n%s", tt.body, r.State, tt.state, r, out)
		}
		if tt.state == "succeeded" {
			if got := r.outputs("save")["affected"]; got != tt.affected {
				t.Fatalf("%s: save affected %q, want %q: %+v", tt.body, got, tt.affected, r)
			}
			continue
		}
		if r.Error == nil || r.Error.Step != "transform" || !strings.Contains(r.Error.StderrTail, tt.failure) {
			t.Fatalf("%s: error %+v, want transform to fail with %q", tt.body, r.Error, tt.failure)
		}
	}

	db, err := sql.Open("sqlite", filepath.Join(dir, "data", "orders.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT id, customer, total_cents, received_at <> '' FROM orders ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type order struct {
		ID, Customer string
		TotalCents   int64
		Received     bool
	}
	var got []order
	for rows.Next() {
		var o order
		if err := rows.Scan(&o.ID, &o.Customer, &o.TotalCents, &o.Received); err != nil {
			t.Fatal(err)
		}
		got = append(got, o)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []order{
		{"A-1001", "Ada Lovelace", 1250, true},
		{"A-1002", "Robert'); DROP TABLE orders; --", 700, true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("orders\n%+v\nwant\n%+v", got, want)
	}
}

// TestRunOnceWithSQLSteps runs sql steps with `routines run-once`: params
// rendered from inputs, and the rows of one step read by the next.
func TestRunOnceWithSQLSteps(t *testing.T) {
	dir := t.TempDir()
	routine := `name: guestbook
inputs:
  name: { required: true }
steps:
  - id: sign
    sql:
      db: guests.db
      query: CREATE TABLE IF NOT EXISTS guests (name TEXT); INSERT INTO guests VALUES (?)
      params: ["{{ input.name }}"]
  - id: list
    sql: { db: guests.db, query: SELECT name FROM guests ORDER BY rowid }
  - id: show
    run: echo "guests=$GUESTS count=$COUNT"
    env:
      GUESTS: "{{ steps.list.outputs.rows }}"
      COUNT: "{{ steps.list.outputs.count }}"
`
	if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(routine), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"ada", "x'); DROP TABLE guests; --"} {
		code, stdout, stderr := clitest.RunCLI(t, "run-once", dir, "--input", "name="+name)
		if code != 0 {
			t.Fatalf("run %d: exit %d\n%s%s", i+1, code, stdout, stderr)
		}
		if i == 1 && !strings.Contains(stdout, `guests=[{"name":"ada"},{"name":"x'); DROP TABLE guests; --"}] count=2`) {
			t.Fatalf("run %d output:\n%s", i+1, stdout)
		}
	}
}

// TestRunOnceSQLConstraintIsNotRetried: a constraint violation fails the
// same way on every try, so retry: does not repeat it.
func TestRunOnceSQLConstraintIsNotRetried(t *testing.T) {
	dir := t.TempDir()
	routine := `name: once
steps:
  - id: insert
    sql: { query: "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)" }
    retry: { attempts: 3, initial: 10ms }
`
	if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(routine), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := clitest.RunCLI(t, "run-once", dir); code != 0 {
		t.Fatalf("first run: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr := clitest.RunCLI(t, "run-once", dir)
	if code == 0 || !strings.Contains(stdout+stderr, "statement 2 of 2: constraint failed: UNIQUE constraint failed: t.id") || strings.Contains(stdout+stderr, "retrying") {
		t.Fatalf("second run: exit %d\n%s%s", code, stdout, stderr)
	}
}
