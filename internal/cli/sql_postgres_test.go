package cli_test

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/pgtest"
)

// TestSQLPostgresThroughRunOnce runs sql steps on PostgreSQL through
// run-once, the database URL a secret that the env provider resolves:
// the rows land in the database, the next step reads them, and neither
// the URL nor its password shows in the output or the stored run.
func TestSQLPostgresThroughRunOnce(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.StartServer(t).Database(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	dir := writeRoutine(t, `name: orders-pg
secrets: [DATABASE_URL]
inputs:
  id: { required: true }
  total: { required: true }
steps:
  - id: save
    sql:
      db: "{{DATABASE_URL}}"
      query: |
        CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, total numeric(10,2) NOT NULL CHECK (total > 0));
        INSERT INTO orders (id, total) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING
      params: ["{{ input.id }}", "{{ input.total }}"]
  - id: read
    sql:
      db: "{{DATABASE_URL}}"
      query: SELECT id, total FROM orders WHERE id = $1
      params: ["{{ input.id }}"]
`)
	deps := cli.Deps{Getenv: secretEnv(t, map[string]string{"DATABASE_URL": dbURL})}
	run := func(args ...string) (int, string) {
		code, stdout, stderr := clitest.RunCLIWith(t, deps, append([]string{"--project", dir}, args...)...)
		if strings.Contains(stdout+stderr, dbURL) || strings.Contains(stdout+stderr, password) {
			t.Fatalf("the secret is in the output:\n%s\n%s", stdout, stderr)
		}
		return code, stdout + stderr
	}
	code, out := run("run-once", dir, "-i", "id=o-1", "-i", "total=12.5")
	if code != 0 {
		t.Fatalf("run-once: exit %d\n%s", code, out)
	}
	where := "postgres " + u.Host + u.Path
	for _, want := range []string{
		"[save] " + where + ": 2 statements, 0 rows returned, 1 row affected",
		"[read] " + where + ": 1 statement, 1 row returned, 0 rows affected",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var total string
	if err := conn.QueryRow(t.Context(), "SELECT total::text FROM orders WHERE id = 'o-1'").Scan(&total); err != nil || total != "12.50" {
		t.Fatalf("stored total %q %v", total, err)
	}

	// A constraint violation fails the run at once, though the step could
	// be retried: the same values would fail the same way.
	code, out = run("run-once", dir, "-i", "id=o-2", "-i", "total=-1")
	if code != 1 || !strings.Contains(out, `sql: statement 2 of 2: new row for relation "orders" violates check constraint "orders_total_check" (SQLSTATE 23514)`) {
		t.Fatalf("run-once with a bad total: exit %d\n%s", code, out)
	}
	code, out = run("runs", "-o", "json")
	var runs []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &runs); code != 0 || err != nil || len(runs) != 2 {
		t.Fatalf("runs: exit %d %v\n%s", code, err, out)
	}
	for _, r := range runs {
		code, out := run("show", r.ID, "-o", "json")
		var detail struct {
			State string `json:"state"`
			Error *struct {
				Step      string `json:"step"`
				Retryable bool   `json:"retryable"`
			} `json:"error"`
			Steps []struct {
				ID      string         `json:"id"`
				Outputs map[string]any `json:"outputs"`
			} `json:"steps"`
		}
		if err := json.Unmarshal([]byte(out), &detail); code != 0 || err != nil {
			t.Fatalf("show: exit %d %v\n%s", code, err, out)
		}
		switch detail.State {
		case "succeeded":
			if len(detail.Steps) != 2 || !reflect.DeepEqual(detail.Steps[1].Outputs["rows"], []any{map[string]any{"id": "o-1", "total": 12.5}}) {
				t.Fatalf("succeeded run %+v", detail)
			}
		case "failed":
			if detail.Error == nil || detail.Error.Step != "save" || detail.Error.Retryable {
				t.Fatalf("failed run %+v", detail)
			}
		default:
			t.Fatalf("run %+v", detail)
		}
	}
}
